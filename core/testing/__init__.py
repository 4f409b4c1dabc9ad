"""``plugtron.testing``: test a plugin the way it will run - in a tiny real training, in process.

    from plugtron.testing import run_training, resume, fake_state, fake_metrics

* :func:`run_training` trains a tiny GPT (2 layers, hidden 64, one micro-batch of 4 x 64 tokens per
  step, 4 steps, evaluation at steps 2 and 4, a checkpoint at the end) on the bundled corpus with
  your overrides and plugins - plugin objects, or names of installed plugins - and returns a :class:`RunResult`: the losses, the eval results, the
  ordered hook transcript (``"on_step@3"``, ``"on_eval:valid@2"``...) and the checkpoint directory.
* :func:`resume` continues a result's checkpoint (``checkpoint.load``) with the first run's whole
  configuration (overrides and plugin options; yours change keys on top), to test on_save/on_load.
* :func:`fake_state` / :func:`fake_metrics`: a ``TrainState`` / ``StepMetrics`` for pure unit tests of
  a hook, ranks included (``fake_state(rank=1)``), without Megatron.

Installed as a pytest plugin (entry point ``pytest11``), which adds the ``plugtron_run`` fixture
(:mod:`plugtron.testing.fixtures`). Megatron is imported once per pytest process, on first use; a
tiny run then costs a few seconds on a CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

TINY = ["model.num_layers=2", "model.hidden_size=64", "model.seq_length=64", "dataset.sequence_length=64",
        "model.make_vocab_size_divisible_by=256", "train.micro_batch_size=4", "train.global_batch_size=4",
        "scheduler.lr_warmup_iters=1", "logger.log_interval=1", "train.train_iters=4",
        "train.eval_interval=2", "train.eval_iters=1"]

Plugins = Union[Mapping[str, Any], Sequence[Any]]


@dataclass
class RunResult:
    """What one tiny training produced."""

    losses: List[float]  # per step (last pipeline stage)
    eval: Dict[str, List[tuple]]  # split -> [(iteration, loss)]
    transcript: List[str]  # every hook call in order: "configure_model", "on_step@1", "on_eval:valid@2"
    checkpoint_dir: Optional[str]  # the checkpoint.save directory (None with save=False)
    plugins: Dict[str, Any]  # name -> the plugin object that ran (yours and the enabled installed ones)
    # train()'s whole summary: "losses", "eval", "iteration", "consumed_train_samples", "stop_reason",
    # "stop" (None, or {"reason", "save_requested", "saved", "note"}), "eval_records" ({split: [record]})
    summary: Dict[str, Any] = field(default_factory=dict)
    overrides: List[str] = field(default_factory=list)  # every override the run used (TINY, yours, the plugins')
    recipe: str = "tiny"

    @property
    def stop(self) -> Optional[Dict[str, Any]]:
        """How a requested stop ended (``None`` if the run was not stopped): ``{"reason", "save_requested",
        "saved", "note"}``; ``note`` says why a requested save did not happen (no ``checkpoint.save``)."""
        return self.summary.get("stop")

    @property
    def eval_records(self) -> Dict[str, List[Dict[str, Any]]]:
        """Every evaluation's record as loggers received it (``on_eval_log``), by split: the loop's
        ``loss``/``ppl``/``iters``, the plugins' ``collect_metrics(state, split)`` keys, ``stop_reason``."""
        return self.summary.get("eval_records", {})


def _named(plugins: Plugins) -> Dict[str, Any]:
    if isinstance(plugins, Mapping):
        return dict(plugins)
    if isinstance(plugins, (str, bytes)):
        raise TypeError(f"plugins: expected a list of plugin objects or names, or a dict name -> plugin; got the "
                        f"string {plugins!r} (write [{plugins!r}])")
    out: Dict[str, Any] = {}
    for i, p in enumerate(plugins):
        if isinstance(p, (Mapping, list, tuple, set, int, float, bytes)) or p is None:
            hint = " (pass the dict itself as plugins=, not inside a list)" if isinstance(p, Mapping) else ""
            raise TypeError(f"plugins[{i}]: expected a plugin object or the name of an installed plugin, got "
                            f"{type(p).__name__} {p!r:.60}{hint}")
        out[p if isinstance(p, str) else type(p).__name__.lower()] = p
    return out


def tiny_for(overrides: Iterable[str]) -> List[str]:
    """:data:`TINY`, without its pretraining-data setting when ``overrides`` pick SFT data
    (``dataset.dataset_root=...``: a ``FinetuningDatasetConfig``, whose length is ``dataset.seq_length``)."""
    if any(o.startswith("dataset.dataset_root=") for o in overrides):
        return [o for o in TINY if not o.startswith("dataset.")]
    return list(TINY)


def run_training(overrides: Iterable[str] = (), plugins: Plugins = (), checkpoint_dir: Optional[str] = None,
                 recipe: str = "tiny") -> RunResult:
    """Train the tiny model with ``overrides`` (after :data:`TINY`) and ``plugins``: objects to
    register as they are, or names of installed plugins to enable (``plugins.NAME.enabled=true``;
    their options go in ``overrides``). ``checkpoint_dir``: where to save (a final checkpoint; add
    ``checkpoint.save_interval=N`` for more); ``None``: no checkpoint. Runs on one CPU thread
    (restored afterwards): measured on a busy 2-core machine, a tiny run takes ~1 s so, ~3 s on two.
    Works from a plain script, no ``if __name__ == "__main__":`` guard needed. A config the checks
    refuse raises ``plugtron.errors.ConfigError``."""
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import train

    named = _named(plugins)
    extra = [f"plugins.{n}.enabled=true" for n, p in named.items() if isinstance(p, str)]
    if checkpoint_dir is not None:
        extra.append(f"checkpoint.save={checkpoint_dir}")
    overrides = [*tiny_for(overrides), *extra, *overrides]
    pm = PluginManager()
    transcript: List[str] = []
    pm.observers.append(lambda hook, where, plugins_called, seconds: transcript.append(hook + where))
    for name, obj in named.items():
        if not isinstance(obj, str):
            pm.register(name, obj)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small is fastest on one thread, also on a busy shared machine
    try:
        summary = train(load_config(None, overrides, recipe=recipe), plugin_manager=pm)
    finally:
        torch.set_num_threads(threads)
    return RunResult(losses=summary["losses"], eval=summary["eval"], transcript=transcript,
                     checkpoint_dir=checkpoint_dir, plugins=dict(pm.loaded), summary=summary, overrides=overrides,
                     recipe=recipe)


def resume(result: RunResult, overrides: Iterable[str] = (), plugins: Plugins = (), train_iters: Optional[int] = None,
           save: bool = True) -> RunResult:
    """Continue ``result``'s checkpoint with fresh ``plugins`` (the states they saved come back to
    their ``on_load``) for ``train_iters`` steps in all (default: 2 more than ``result`` ran).

    The resumed run keeps ``result``'s whole configuration - its recipe, every override it was given
    (``train.eval_interval=1``, ``plugins.NAME.options.KEY=...``) and the installed plugins it enabled
    by name - so it runs with the options the first run had; ``overrides`` change single keys on top
    of them. Plugin *objects* are not carried over: pass fresh ones in ``plugins``."""
    if result.checkpoint_dir is None:
        raise ValueError("resume: the run had no checkpoint; pass checkpoint_dir= to run_training")
    done = result.summary.get("iteration", len(result.losses))
    carried = [o for o in result.overrides if not o.startswith(("checkpoint.save=", "checkpoint.load="))]
    more = [f"checkpoint.load={result.checkpoint_dir}", f"train.train_iters={train_iters or done + 2}",
            "scheduler.override_opt_param_scheduler=true"]  # train_iters grew: the schedule follows the config
    return run_training([*carried, *more, *overrides], plugins, checkpoint_dir=result.checkpoint_dir if save else None,
                        recipe=result.recipe)


def fake_state(iteration: int = 0, config: Any = None, *, rank: int = 0, world_size: int = 1, dp_rank: int = 0,
               dp_size: int = 1, is_last_stage: bool = True, **fields: Any):
    """A ``TrainState`` for unit tests: counters and ranks as given, no model (``config`` defaults to
    an unvalidated default ``ConfigContainer``, built lazily only if you pass ``config=...``)."""
    from plugtron.training.ranks import RankInfo
    from plugtron.training.state import TrainState

    return TrainState(config=config, iteration=iteration, ranks=RankInfo(rank, world_size, dp_rank, dp_size, is_last_stage),
                      **fields)


def fake_metrics(iteration: int = 1, loss: Optional[float] = 2.0, grad_norm: Optional[float] = 1.0, lr: float = 1e-3,
                 skipped: bool = False):
    """A ``StepMetrics`` as ``on_step`` receives it (``loss`` a 0-d tensor, as on the last stage)."""
    import torch

    from plugtron.training.state import StepMetrics

    return StepMetrics(iteration=iteration, loss=None if loss is None else torch.tensor(float(loss)),
                       grad_norm=grad_norm, lr=lr, skipped=skipped)


__all__ = ["TINY", "RunResult", "run_training", "resume", "fake_state", "fake_metrics"]
