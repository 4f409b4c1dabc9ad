"""Manual garbage collection (former NeMo ``GarbageCollectionCallback``).

Toggle: ``train.manual_gc``. Python's automatic GC triggers at unpredictable allocation counts and
on large runs stalls ranks at different moments, which shows up as stragglers in every collective.
This plugin disables it, collects every ``train.manual_gc_interval`` iterations (0: never during
training) and, with ``train.manual_gc_eval``, before and after each evaluation. The previous GC
state is restored when training ends or fails.
"""

from __future__ import annotations

import gc

from plugtron.hookspecs import hookimpl
from plugtron.plugins.teardown import ReleaseAtEnd


class ManualGC(ReleaseAtEnd):  # release() at on_train_end and on_exception
    def __init__(self, config):
        self.interval = config.train.manual_gc_interval
        self.around_eval = config.train.manual_gc_eval
        self._was_enabled = None
        self.collections = 0  # observable in tests and logs

    def _collect(self) -> None:
        gc.collect()  # cost: a full collection; all generations
        self.collections += 1

    @hookimpl
    def on_train_start(self, state):
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._collect()

    @hookimpl
    def on_step(self, state, metrics):
        if self.interval > 0 and metrics.iteration % self.interval == 0:
            self._collect()

    @hookimpl
    def on_eval_start(self, state, split):
        if self.around_eval:
            self._collect()

    @hookimpl
    def on_eval(self, state, split, metrics):
        if self.around_eval:
            self._collect()

    def release(self) -> None:
        if self._was_enabled:
            gc.enable()
        self._was_enabled = None
