"""plugtron's user-facing errors. The CLI prints ``str(err)`` of these and exits non-zero, without a
traceback: each names the path (config key, file, plugin) and what was expected."""

from __future__ import annotations

from typing import Iterable, List


class PlugtronError(Exception):
    """Base class: an error whose message is complete on its own."""


class ConfigError(PlugtronError):
    """One or more config problems, all reported at once, each as ``path: message``."""

    def __init__(self, problems: Iterable[str], source: str = "config"):
        self.problems: List[str] = list(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} error{'s' if n != 1 else ''}"
        return head + "".join(f"\n  {p}" for p in self.problems)


class PluginError(PlugtronError):
    """A plugin could not be found, loaded, validated, or it raised inside a hook."""


class DataError(PlugtronError):
    """Input data is missing, empty or malformed."""


class CheckpointError(PlugtronError):
    """A checkpoint is missing, incomplete, corrupt or incompatible."""


class UnsupportedOnThisMachine(PlugtronError):
    """A feature that needs hardware or a package this machine lacks (CUDA, TE, DeepEP, ...)."""
