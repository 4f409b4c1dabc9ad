"""Megatron-Core's experimental features (former NeMo ``MegatronEnableExperimentalCallback``).

Toggle: ``dist.enable_megatron_core_experimental``. Megatron-Core gates features it does not yet
promise to keep (``@experimental_fn`` / ``@experimental_cls``, and code paths that check
``megatron.core.config.is_experimental_enabled()``) behind one process-wide flag. This plugin sets
it in ``configure_model`` - before any model, DDP wrapper or optimizer is built, which is when those
checks run - and puts the previous value back when the run ends or fails, so a later run in the
same process (tests, notebooks) does not inherit it.
"""

from __future__ import annotations

from plugtron.hookspecs import hookimpl
from plugtron.plugins.teardown import ReleaseAtEnd


class MegatronExperimental(ReleaseAtEnd):  # release() at on_train_end and on_exception
    def __init__(self, config):
        self._previous = None

    @hookimpl
    def configure_model(self, config, provider):
        from megatron.core import config as mcore_config

        self._previous = mcore_config.is_experimental_enabled()
        mcore_config.set_experimental_flag(True)

    def release(self) -> None:
        if self._previous is not None:
            from megatron.core import config as mcore_config

            mcore_config.set_experimental_flag(self._previous)
            self._previous = None
