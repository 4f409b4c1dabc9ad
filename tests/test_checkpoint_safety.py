"""Bad checkpoint paths and tampered checkpoints never lose a checkpoint and never run code: every
case is one ``CheckpointError`` naming the path, raised before the first step, with the files on
disk untouched (issue 16, "Data loss and code execution")."""

import hashlib
import os
import pickle
import re
import shutil

import pytest

from plugtron.checkpointing import layout, manifest, paths
from plugtron.config import load_config
from plugtron.errors import CheckpointError
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL

BASE = SMALL + ["train.eval_interval=null", "train.train_iters=3"]


class Steps:
    def __init__(self):
        self.started = 0

    def on_step_start(self, state):
        self.started += 1


def run(overrides):
    """Train; returns (summary or the CheckpointError, steps started)."""
    pm, steps = PluginManager(), Steps()
    pm.register("steps", steps)
    try:
        return train(load_config(None, BASE + list(overrides)), plugin_manager=pm), steps.started
    except CheckpointError as exc:
        return exc, steps.started


def refused(overrides, match):
    got, started = run(overrides)
    assert isinstance(got, CheckpointError), got
    assert started == 0  # before the first step
    assert re.search(match, str(got)), str(got)
    return str(got)


def tree_digest(root):
    """Names, bytes and mtimes of every file under ``root``: equal iff nothing was touched."""
    h = hashlib.sha256()
    for dirpath, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            h.update(p.encode() + open(p, "rb").read() + str(os.stat(p).st_mtime_ns).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Iterations 1, 2, 3 of one run."""
    root = tmp_path_factory.mktemp("saved") / "R"
    summary, _ = run([f"checkpoint.save={root}", "checkpoint.save_interval=1"])
    assert summary["iteration"] == 3
    return root


@pytest.fixture
def R(saved, tmp_path):
    root = tmp_path / "R"
    shutil.copytree(saved, root)
    return root


# ---- item 1: where load and save point ------------------------------------------------------------
def test_resume_path_one_level_too_deep_keeps_the_checkpoints(R):
    """load=R/iter_0000002 with save=R used to start from scratch and overwrite R/iter_0000002."""
    before = tree_digest(R)
    msg = refused([f"checkpoint.load={R / 'iter_0000002'}", f"checkpoint.save={R}"],
                  r"holds checkpoints up to iteration 3, newer than the resumed .*iter_0000002")
    assert f"checkpoint.load={R}" in msg
    assert tree_digest(R) == before


@pytest.mark.parametrize("name", [layout.TRACKER, layout.LATEST_TRAIN_STATE, "iter_0000002/train_state.pt"])
def test_load_naming_a_file_is_refused(R, name):
    before = tree_digest(R)
    msg = refused([f"checkpoint.load={R / name}", f"checkpoint.save={R}"], r"checkpoint.load: .* is a file")
    if name == layout.TRACKER:
        assert f"set checkpoint.load to its directory {R}" in msg
    assert tree_digest(R) == before


def test_load_of_an_iter_directory_resumes_exactly_that_iteration(R, tmp_path):
    got, started = run([f"checkpoint.load={R / 'iter_0000002'}", f"checkpoint.save={tmp_path / 'branch'}"])
    assert got["iteration"] == 3 and started == 1  # resumed at 2, one step to 3
    assert layout.complete_iterations(str(tmp_path / "branch")) == [3]
    got, started = run([f"checkpoint.load={R / 'iter_0000003'}", f"checkpoint.save={R}"])  # the newest: allowed
    assert got["iteration"] == 3 and started == 0


def test_fresh_run_never_overwrites_published_checkpoints(R, tmp_path):
    before = tree_digest(R)
    msg = refused([f"checkpoint.save={R}"], r"already holds checkpoints \(newest: .*iter_0000003\) and this run does not resume")
    assert f"checkpoint.load={R}" in msg and "another checkpoint.save directory" in msg
    refused([f"checkpoint.pretrained_checkpoint={R}", f"checkpoint.save={R}"], "does not resume from them")
    other = tmp_path / "other"
    shutil.copytree(R, other)
    refused([f"checkpoint.load={other}", f"checkpoint.save={R}"], "of another run than the one resumed")
    refused([f"checkpoint.load={tmp_path / 'nothing_yet'}", f"checkpoint.save={R}"], "does not resume from them")
    assert tree_digest(R) == before


def test_load_that_exists_but_holds_no_checkpoint(R, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README").write_text("not a checkpoint")
    refused([f"checkpoint.load={tmp_path / 'notes'}"], r"holds no checkpoint .* but is not empty \(README\)")
    shutil.rmtree(R / "iter_0000003")
    (R / "iter_0000003").mkdir()  # an iter_ directory without its files
    refused([f"checkpoint.load={R / 'iter_0000003'}"], "iter_0000003 is not a complete checkpoint")
    empty = tmp_path / "empty"
    (empty / "iter_0000001.staging").mkdir(parents=True)  # a first save that was killed: nothing to resume
    got, started = run([f"checkpoint.load={empty}", f"checkpoint.save={empty}"])
    assert got["iteration"] == 3 and started == 3


# ---- item 4: a save that cannot happen fails before training --------------------------------------
def test_unusable_save_path_fails_before_the_first_step(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused([f"checkpoint.save={afile}"], r"checkpoint.save: .*afile is a file; expected a directory")
    refused([f"checkpoint.save={afile / 'sub'}"], r"checkpoint.save: cannot create the directory .*afile/sub: Not a directory")
    assert afile.read_text() == "x"


def test_unwritable_save_directory_is_named(tmp_path, monkeypatch):
    """Root may write anywhere (the tests run as root), so a failing write is simulated."""
    import builtins

    real_open = builtins.open

    def no_write(file, mode="r", *args, **kwargs):
        if "w" in mode and ".plugtron-write-probe" in str(file):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_write)
    with pytest.raises(CheckpointError, match=r"checkpoint.save: cannot write in .*ro: Permission denied"):
        paths.check_writable(str(tmp_path / "ro"))


def test_bad_pretrained_checkpoint_fails_before_the_first_step(tmp_path):
    refused([f"checkpoint.pretrained_checkpoint={tmp_path / 'nowhere'}"], "pretrained_checkpoint: .*nowhere does not exist")


# ---- item 5: junk in the tracker and the manifest --------------------------------------------------
@pytest.mark.parametrize("junk", ["²".encode(), "3²".encode(), b"1" * 5000, b"\xff\xfe", b"-1", b""])
def test_tracker_junk_is_a_clear_error(R, junk):
    (R / layout.TRACKER).write_bytes(junk)
    with pytest.raises(CheckpointError, match="latest_checkpointed_iteration.txt: expected an iteration number"):
        layout.latest_iteration(str(R))
    refused([f"checkpoint.load={R}", f"checkpoint.save={R}"], "expected an iteration number")


@pytest.mark.parametrize("text, match", [
    ("{not json", "unreadable manifest"),
    ("[]", "malformed manifest"),
    ('{"format": 1, "files": []}', "malformed manifest"),
    ('{"format": 1, "files": {"common.pt": {"size": "12", "crc32": 1}}}', "malformed entry 'common.pt'"),
    ('{"format": 1, "files": {"common.pt": 5}}', "malformed entry 'common.pt'"),
    ("[" * 100000, "unreadable manifest"),
])
def test_malformed_manifest_is_a_clear_error(R, text, match):
    (R / "iter_0000003" / manifest.MANIFEST).write_text(text)
    with pytest.raises(CheckpointError, match=f"manifest.json: {match}"):
        layout.verify(str(R / "iter_0000003"))


def test_manifest_must_list_every_file(R):
    it = R / "iter_0000003"
    (it / "extra.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="extra.pt: not listed in manifest.json"):
        layout.verify(str(it))
    (it / "extra.pt").unlink()
    (it / "common.pt").unlink()
    with pytest.raises(CheckpointError, match="common.pt: missing from the checkpoint"):
        layout.verify(str(it))


# ---- item 2: a tampered .metadata never runs code ---------------------------------------------------
class _Marker:
    """Unpickling this creates ``path`` (what an attacker's payload would do instead)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tamper(it, marker, rebuild_manifest):
    md = it / ".metadata"
    evil = pickle.dumps(_Marker(marker), protocol=4)
    size = md.stat().st_size
    assert len(evil) < size
    md.write_bytes(evil + b"\0" * (size - len(evil)))  # same size: only the CRC tells
    if rebuild_manifest:
        manifest.write_manifest(str(it))


@pytest.mark.parametrize("rebuild, match", [(False, r"\.metadata: CRC32 mismatch"),
                                             (True, r"\.metadata: refused to unpickle _?io\.open")])
def test_tampered_metadata_never_runs(R, tmp_path, rebuild, match):
    marker = tmp_path / "pwned"
    _tamper(R / "iter_0000003", marker, rebuild)
    refused([f"checkpoint.load={R}", f"checkpoint.save={R}"], match)
    assert not marker.exists()
    refused([f"checkpoint.pretrained_checkpoint={R}", f"checkpoint.save={tmp_path / 'new'}"], match)
    assert not marker.exists()


def test_pretrained_checkpoint_without_manifest_still_reads_metadata_safely(R, tmp_path):
    marker = tmp_path / "pwned"
    _tamper(R / "iter_0000003", marker, rebuild_manifest=False)
    (R / "iter_0000003" / manifest.MANIFEST).unlink()  # another tool's checkpoint has none
    refused([f"checkpoint.pretrained_checkpoint={R}", f"checkpoint.save={tmp_path / 'new'}"],
            r"\.metadata: refused to unpickle _?io\.open")
    assert not marker.exists()


def test_torch_reader_is_hooked_only_while_loading(R, tmp_path):
    """Megatron reads .metadata through torch's FileSystemReader: inside ``safe_loads`` that read is
    restricted too (defence in depth behind the check before loading), outside it is torch's own."""
    from torch.distributed.checkpoint import FileSystemReader

    from plugtron.checkpointing.safe_pickle import safe_loads

    it, marker = R / "iter_0000003", tmp_path / "pwned"
    original = FileSystemReader.read_metadata
    with safe_loads():
        good = FileSystemReader(str(R / "iter_0000002")).read_metadata()
        assert "embedding.word_embeddings.weight" in good.state_dict_metadata
        _tamper(it, marker, rebuild_manifest=True)
        with pytest.raises(CheckpointError, match=r"iter_0000003/\.metadata: refused to unpickle"):
            FileSystemReader(str(it)).read_metadata()
    assert FileSystemReader.read_metadata is original and "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ
    assert not marker.exists()


def test_export_hf_verifies_and_reads_metadata_safely(R, tmp_path):
    from plugtron.providers.hf import megatron_side

    marker = tmp_path / "pwned"
    _tamper(R / "iter_0000003", marker, rebuild_manifest=False)
    with pytest.raises(CheckpointError, match=r"\.metadata: CRC32 mismatch"):
        megatron_side.checkpoint_dir(R)
    manifest.write_manifest(str(R / "iter_0000003"))
    with pytest.raises(CheckpointError, match=r"\.metadata: refused to unpickle _?io\.open"):
        megatron_side.checkpoint_dir(R)
    assert not marker.exists()
