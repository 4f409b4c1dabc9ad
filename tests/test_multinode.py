"""Multi-node launching: two torchrun agents on this machine meet through a c10d rendezvous as two
hosts would (``helpers.two_nodes``), and run ``python -m plugtron train``. Node-local state is what
differs between real nodes; the tests give each "node" its own cache directory or working directory
to stand in for it."""

import fcntl
import json
import threading
from pathlib import Path

import pytest

from helpers import SMALL, two_nodes

from plugtron.config import load_config
from plugtron.data.index_cache import LOCK_NAME, PROBE_PREFIX, writer_lock
from plugtron.training import train

COMMON = SMALL + ["train.train_iters=2", "train.eval_interval=null"]


def _first_loss(metrics_file: Path) -> float:
    records = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    return next(r["loss"] for r in records if r.get("kind") == "train" and r["iteration"] == 1)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["dp2-shared-cache", "tp2-node-local-caches"])
def test_two_nodes_match_one_process(tmp_path, layout):
    """DP=2 and TP=2 across two nodes give the first-step loss of one process with the same global
    batch. The index cache: shared by both nodes (built once by global rank 0, the other node loads
    it), or node-local (each node's own PLUGTRON_CACHE_DIR: before index_cache.prepare the second
    node crashed on rank 0's missing .npy files; now every rank builds in memory, with a warning)."""
    ref = train(load_config(None, COMMON))["losses"][0]
    ckpt = tmp_path / "ckpt"
    args = ["-m", "plugtron", "train", *COMMON, f"checkpoint.save={ckpt}"]
    if layout == "dp2-shared-cache":
        cache = tmp_path / "cache"
        results = two_nodes(args + [f"dataset.path_to_cache={cache}"])
    else:
        caches = [tmp_path / "node0-cache", tmp_path / "node1-cache"]
        results = two_nodes(args + ["model.tensor_model_parallel_size=2"],
                            envs=[{"PLUGTRON_CACHE_DIR": str(c)} for c in caches])
    for rc, out in results:
        assert rc == 0, out[-4000:]
    got = _first_loss(ckpt / "metrics.jsonl")
    assert abs(got - ref) < 1e-5, (got, ref)
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    output = "".join(out for _, out in results)
    if layout == "dp2-shared-cache":
        assert "not shared by all nodes" not in output
        built = sorted(p.name.split("-", 1)[1] for p in cache.iterdir() if p.suffix in (".npy", ".txt"))
        assert built == sorted(f"GPTDataset-{split}-{kind}" for split in ("train", "test")
                               for kind in ("description.txt", "document_index.npy", "sample_index.npy",
                                            "shuffle_index.npy")), built
        assert not list(cache.glob(PROBE_PREFIX + "*"))
    else:
        assert output.count("is not shared by all nodes") == 1, output[-4000:]
        assert not [p for c in caches for p in c.rglob("*.npy")]  # nothing half-shared was written


@pytest.mark.slow
def test_checkpoint_dir_not_shared_by_the_nodes_is_named(tmp_path):
    """A relative checkpoint.save resolves in each node's own working directory, as a node-local
    path would: every rank stops at the first save with one message, none writes a shard."""
    cwds = [tmp_path / "node0", tmp_path / "node1"]
    for c in cwds:
        c.mkdir()
    results = two_nodes(["-m", "plugtron", "train", *COMMON, "checkpoint.save=ckpt", f"dataset.path_to_cache={tmp_path / 'cache'}"], cwds=cwds)
    for rc, out in results:
        assert rc != 0, out[-4000:]  # the agent exits 1 when its worker exits 2 (plugtron's error code)
        assert "cannot see the directory rank 0 created there" in out, out[-4000:]
        assert "Traceback (most recent call last)" not in out.split("plugtron: error:")[0][-2000:]
    assert not [p for c in cwds for p in c.rglob("*.distcp")]


def test_cache_writer_waits_for_a_concurrent_build(tmp_path):
    """Two runs sharing one cache: the second one's writer blocks until the first releases the
    build lock, so it never reads half-written index files."""
    with open(tmp_path / LOCK_NAME, "a") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX)
        entered = threading.Event()

        def build():
            with writer_lock(str(tmp_path)):
                entered.set()

        worker = threading.Thread(target=build)
        worker.start()
        assert not entered.wait(0.5)  # still building elsewhere
        fcntl.flock(other_run, fcntl.LOCK_UN)
        assert entered.wait(10)
        worker.join()
