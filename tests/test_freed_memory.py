"""``platform.freed_memory``: the conversion commands fix glibc's mmap threshold so freed tensors
leave the process (their memory bound depends on it; see tests/test_hf_streaming.py), unless the
user set ``MALLOC_MMAP_THRESHOLD_`` themselves."""

import subprocess
import sys

import pytest

from plugtron.platform import freed_memory

CHILD = "from plugtron.platform.freed_memory import release_freed_memory as r; print(r())"


def _glibc() -> bool:
    import platform

    return platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="glibc's mallopt only")
def test_it_sets_the_threshold_on_glibc():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True,
                         env={k: v for k, v in __import__("os").environ.items() if k != "MALLOC_MMAP_THRESHOLD_"})
    assert out.stdout.strip() == "True"


def test_the_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    monkeypatch.setattr(freed_memory.ctypes, "CDLL", lambda *a: pytest.fail("mallopt called over the user's setting"))
    assert freed_memory.release_freed_memory() is False


@pytest.mark.parametrize("command", ["plugtron.providers.hf.commands:cmd_import_hf",
                                     "plugtron.providers.hf.commands:cmd_export_hf",
                                     "plugtron.providers.peft.commands:cmd_merge"])
def test_the_streaming_commands_call_it_first(command, monkeypatch):
    import importlib

    module, name = command.split(":")
    calls = []

    class Stop(Exception):
        pass

    def fake_release():
        calls.append(1)
        raise Stop  # the command's work is not this test's

    monkeypatch.setattr(freed_memory, "release_freed_memory", fake_release)
    with pytest.raises(Stop):
        getattr(importlib.import_module(module), name)(None)
    assert calls == [1]
