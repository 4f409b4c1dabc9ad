"""The ``plugin`` kind of ``plugtron plugins new``: a plugin class with typed options, a metric and
state kept in checkpoints, and its tests (a unit test on a fake state, a tiny training with a resume).
It works as written, so the package passes its own tests before its author changes a line."""

MODULE = '''\
"""$name: a plugtron plugin (written by `plugtron plugins new $name`).

It counts the optimizer steps of a run, adds the count to every log record as ``${name}_steps`` and
keeps it in checkpoints, so it survives a resume. Replace the hooks with your own: every hook and its
arguments are in ``plugtron.hookspecs``.
"""

import attrs

PLUGTRON_API = ">=1,<2"  # the plugtron plugin API this package is written for (plugtron.PLUGIN_API)


class $cls:
    """Counts the run's steps; ``plugins.$name.enabled: true`` switches it on."""

    @attrs.define(kw_only=True)
    class Settings:
        """``plugins.$name.options``: checked as strictly as the rest of the config."""

        start: int = attrs.field(default=0, metadata={"help": "the count before the first step"})

    def __init__(self, config, settings):
        self.steps = settings.start

    def on_step(self, state, metrics):
        self.steps += 1

    def collect_metrics(self, state):
        return {"${name}_steps": self.steps}

    def on_save(self, state, checkpoint_dir):
        return {"steps": self.steps}  # plain data: it comes back to on_load on resume

    def on_load(self, state, checkpoint_dir, plugin_state):
        if plugin_state is not None:
            self.steps = plugin_state["steps"]
'''

TEST = '''\
from plugtron.testing import fake_state

from $module import $cls


def test_counts_steps_from_its_start_option():
    plugin = $cls(None, $cls.Settings(start=10))
    for iteration in (1, 2, 3):
        plugin.on_step(fake_state(iteration), None)
    assert plugin.collect_metrics(fake_state(3)) == {"${name}_steps": 13}


def test_counts_a_tiny_training_and_survives_a_resume(plugtron_run):
    first = plugtron_run(["train.train_iters=4"], ["$name"])  # the installed plugin, enabled by name
    assert first.plugins["$name"].steps == 4
    again = plugtron_run.resume(first, [], ["$name"])  # 2 more steps from the checkpoint
    assert "on_load@4" in again.transcript
    assert again.plugins["$name"].steps == 6
'''

USAGE = '''
plugtron plugins show $name
plugtron config show plugins.$name.enabled=true plugins.$name.options.start=0 --section plugins
'''
