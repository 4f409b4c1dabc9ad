"""The manifest's CRC32 pass: zlib-ng over memory-mapped windows, combined per file, must give
exactly ``zlib.crc32`` of the whole file (the value older manifests recorded) for every size around
the window boundaries, with and without zlib-ng installed."""

from __future__ import annotations

import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugtron.checkpointing import manifest
from plugtron.errors import CheckpointError

WINDOW = 2 * 4096  # mmap offsets must be multiples of the page size


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.sampled_from([0, 1, 4095, WINDOW - 1, WINDOW, WINDOW + 1, 3 * WINDOW + 17]),
                      min_size=1, max_size=4),
       threads=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_windowed_crc_equals_zlib_of_the_whole_file(tmp_path_factory, monkeypatch_session, sizes, threads, seed):
    monkeypatch_session.setattr(manifest, "WINDOW", WINDOW)
    d = tmp_path_factory.mktemp("crc")
    rnd = __import__("random").Random(seed)
    paths, want = [], []
    for i, n in enumerate(sizes):
        data = rnd.randbytes(n)
        p = d / f"f{i}"
        p.write_bytes(data)
        paths.append(str(p))
        want.append(zlib.crc32(data))
    assert manifest.crcs(paths, threads) == want


@pytest.fixture(scope="module")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_without_zlib_ng_plain_zlib_gives_the_same_values(tmp_path, monkeypatch):
    data = os.urandom(3 * WINDOW + 5)
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(b"")
    monkeypatch.setattr(manifest, "_zng", None)
    assert manifest.crcs([str(tmp_path / "a"), str(tmp_path / "b")]) == [zlib.crc32(data), 0]


def test_zlib_ng_is_what_runs(tmp_path):
    """zlib-ng is a dependency: a plain install must take the fast path, not the fallback."""
    assert manifest._zng is not None


def test_a_file_that_shrank_after_the_listing_is_a_checkpoint_error(tmp_path, monkeypatch):
    p = tmp_path / "shrunk"
    p.write_bytes(os.urandom(100))
    real = os.path.getsize
    monkeypatch.setattr(manifest.os.path, "getsize", lambda x: 200 if str(x) == str(p) else real(x))
    with pytest.raises(CheckpointError, match="shrunk: unreadable"):
        manifest.crcs([str(p)])
