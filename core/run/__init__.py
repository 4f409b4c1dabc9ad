"""``plugtron.run``: launching plugtron with NeMo-Run (``pip install 'plugtron[nemo-run]'``).

    import nemo_run as run
    from plugtron.run import PreemptionPlugin, WandbPlugin, plugtron_script

    task = plugtron_script(overrides=["train.train_iters=100"])          # python -m plugtron train ...
    run.run(task, executor=run.LocalExecutor(), plugins=[PreemptionPlugin(), WandbPlugin(project="p")])

The plugins carry Megatron Bridge's names and settings and emit plugtron overrides
(:mod:`plugtron.run.overrides`); see ``docs/launching.md``. Nothing in plugtron's training path
imports this package.
"""

from __future__ import annotations

from typing import Optional, Sequence

from plugtron.errors import ConfigError

PLUGINS = ("FaultTolerancePlugin", "NsysPlugin", "PreemptionPlugin", "PyTorchProfilerPlugin", "WandbPlugin")


def __getattr__(name: str):
    """The plugin classes subclass ``nemo_run.Plugin``, so nemo_run is imported on first use of one
    of them (``plugtron.run.overrides`` works without it)."""
    if name not in PLUGINS:
        raise AttributeError(f"module 'plugtron.run' has no attribute {name!r}")
    try:
        from plugtron.run import plugins
    except ImportError as err:  # optional extra: say which one, and why it failed here
        raise ImportError(f"plugtron.run.{name} needs NeMo-Run: pip install 'plugtron[nemo-run]' "
                          f"({type(err).__name__}: {err})") from err
    return getattr(plugins, name)


def plugtron_script(config: Optional[str] = None, overrides: Sequence[str] = (), recipe: str = "tiny",
                    python: str = "python"):
    """A ``run.Script`` for ``python -m plugtron train [--recipe R] [CONFIG.yaml] [overrides]``: the
    task NeMo-Run's executors launch (with ``launcher="torchrun"`` as ``torchrun ... -m plugtron``) and
    the plugins above extend. ``overrides`` are ``key=value`` strings, checked for form here."""
    try:
        import nemo_run as run
    except ImportError as err:
        raise ImportError(f"plugtron_script needs NeMo-Run: pip install 'plugtron[nemo-run]' ({type(err).__name__}: {err})") from err

    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError([f"override {o!r}: expected key=value" for o in bad], source="plugtron_script")
    args = ["train", "--recipe", recipe, *([config] if config else []), *overrides]
    return run.Script(path="plugtron", m=True, entrypoint=python, args=args)


__all__ = [*PLUGINS, "plugtron_script"]
