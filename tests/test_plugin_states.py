"""Plugin states in checkpoints (issue 9, defect 1): a state a checkpoint cannot hold is refused at
save time naming the plugin, before anything is published; on resume, states of plugins not enabled
now are skipped with one line, and a state that fails to load names its plugin."""

import logging
import os

import pytest
import torch

from plugtron.checkpointing import plugin_states
from plugtron.errors import CheckpointError, PluginError
from plugtron.testing import resume, run_training

from helpers import Counter


class SavesASet:
    def on_save(self, state, checkpoint_dir):
        return {"seen": {1, 2}}


@pytest.mark.parametrize("value,offender", [
    ({"seen": {1, 2}}, "state['seen']: builtins.set"),
    ([1, object()], "state[1]: builtins.object"),
    ({(1, 2): 3}, "a key of state: builtins.tuple"),
])
def test_a_state_that_cannot_load_is_refused_naming_plugin_and_type(value, offender):
    with pytest.raises(PluginError) as info:
        plugin_states.serialize("counter", value, "acme-plugins 1.0")
    msg = str(info.value)
    assert msg.startswith("plugin 'counter' (acme-plugins 1.0): on_save returned a state that a checkpoint cannot hold")
    assert offender in msg


def test_plain_states_round_trip():
    import io

    blob = plugin_states.serialize("c", {"steps": 3, "t": torch.arange(2), "xs": [1.0, None, "a"]}, "x")
    assert torch.load(io.BytesIO(blob), weights_only=True)["steps"] == 3


def test_bad_state_fails_the_save_and_publishes_nothing(tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(PluginError, match=r"plugin 'savesaset' \(registered in code\): on_save returned .* builtins.set"):
        run_training(["train.train_iters=2", "train.eval_interval=null"], [SavesASet()], checkpoint_dir=str(ckpt))
    assert sorted(os.listdir(ckpt)) == ["metrics.jsonl"]  # no iter_*, no .staging, no tracker (the metrics file is no checkpoint)


def test_states_of_disabled_plugins_are_skipped_and_broken_ones_named(tmp_path, caplog):
    first = run_training(["train.train_iters=2", "train.eval_interval=null"], {"counter": Counter()},
                         checkpoint_dir=str(tmp_path / "ckpt"))
    saved = plugin_states.path(os.path.join(first.checkpoint_dir, "iter_0000002"), "counter", 0)
    assert os.path.isfile(saved)
    with caplog.at_level(logging.INFO, logger="plugtron"):
        again = resume(first, ["train.eval_interval=null"], save=False)  # counter not enabled now
    assert again.losses and "skipping saved state of plugin(s) not enabled now: counter" in caplog.text
    back = Counter()
    resume(first, ["train.eval_interval=null"], {"counter": back}, save=False)
    assert back.loaded["steps"] == 2 and back.steps == 4
    with open(saved, "wb") as f:
        f.write(b"not a torch file")
    # the manifest catches the change first; without it the load names the plugin
    os.remove(os.path.join(first.checkpoint_dir, "iter_0000002", "manifest.json"))
    states, error = plugin_states.load(os.path.join(first.checkpoint_dir, "iter_0000002"), 0, ["counter"])
    assert error.startswith("state of plugin 'counter': ") and "rank_00000.pt: unreadable" in error
    with pytest.raises(CheckpointError):
        resume(first, ["train.eval_interval=null"], {"counter": Counter()}, save=False)
