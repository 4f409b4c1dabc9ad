"""``ReleaseAtEnd``: a base class for plugins that change something process-wide (the GC, a signal
handler, a Megatron-Core flag, a profiler) and must put it back when the run ends - normally
(``on_train_end``) or with an exception (``on_exception``) - so that a later run in the same
process (tests, notebooks) starts clean. Not a plugin itself (no entry point).

A subclass implements ``release()``; it must be safe to call twice and when nothing was changed
(both hooks may fire, or neither change may have happened). A subclass that does more in one of the
two hooks overrides it and calls ``self.release()`` itself.
"""

from __future__ import annotations

import abc


class ReleaseAtEnd(abc.ABC):
    @abc.abstractmethod
    def release(self) -> None:
        """Undo what the plugin changed; a no-op when there is nothing (left) to undo."""

    def on_train_end(self, state):
        self.release()

    def on_exception(self, state, exc):
        self.release()
