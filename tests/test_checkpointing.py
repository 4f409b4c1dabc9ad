"""Checkpoints on real Megatron-Core: layout, bit-identical resume, retention, async save,
pretrained weights, and clear errors for missing, corrupt or foreign checkpoints (single process).
Crash, preemption and re-layout tests with several processes are in test_checkpoint_crashes.py."""

import os
import shutil

import pytest
import torch

from plugtron.checkpointing import layout
from plugtron.config import from_yaml, load_config
from plugtron.errors import CheckpointError, ConfigError
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL, Counter, WeightsDigest

BASE = SMALL + ["train.eval_interval=null", "train.train_iters=8"]


def run(overrides, *plugins):
    pm = PluginManager()
    for plugin in plugins:  # named by class: plugin state is saved under the plugin's name
        pm.register(type(plugin).__name__.lower(), plugin)
    return train(load_config(None, BASE + list(overrides)), plugin_manager=pm)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One run of 8 iterations saving every one (8 saves) with most_recent_k=2: 7 and 8 remain."""
    root = tmp_path_factory.mktemp("saved") / "ckpt"
    digest = WeightsDigest()
    summary = run([f"checkpoint.save={root}", "checkpoint.save_interval=1", "checkpoint.most_recent_k=2",
                   "checkpoint.ckpt_assume_constant_structure=true"], digest)
    return root, summary, digest.value


@pytest.mark.parametrize("precision", ["null", "bf16-mixed"])
def test_resume_is_bit_identical(tmp_path, precision):
    """20 steps straight vs 10 steps, stop, resume for 10: same per-step losses and final weights."""
    mp = [f"mixed_precision={precision}", "train.train_iters=20"]
    ref_digest = WeightsDigest()
    ref = run(mp, ref_digest)
    ck = [f"checkpoint.save={tmp_path}", f"checkpoint.load={tmp_path}"]
    counter = Counter()
    first = run(mp + ck + ["train.exit_interval=10"], counter)
    assert first["iteration"] == 10 and first["stop_reason"] == "exit_interval 10 reached"
    digest, counter = WeightsDigest(), Counter()
    second = run(mp + ck, digest, counter)
    assert first["losses"] + second["losses"] == ref["losses"]  # exact float equality
    assert digest.value == ref_digest.value
    assert counter.loaded["steps"] == 10 and torch.equal(counter.loaded["tensor"], torch.arange(3))
    assert counter.steps == 20  # the plugin's own state continued across the resume


def test_layout_retention_and_run_config(saved):
    root, summary, _ = saved
    assert sorted(os.listdir(root)) == sorted(["iter_0000007", "iter_0000008", layout.LATEST_TRAIN_STATE, layout.TRACKER,
                                            "metrics.jsonl"])  # the metrics_file plugin (on by default)
    assert (root / layout.TRACKER).read_text() == "8\n"
    it = root / "iter_0000008"
    names = set(os.listdir(it))
    assert {".metadata", "common.pt", "metadata.json", "train_state.pt", "run_config.yaml", "manifest.json", "rng"} <= names
    assert any(n.endswith(".distcp") for n in names) and os.listdir(it / "rng") == ["rank_00000.pt"]
    assert (root / layout.LATEST_TRAIN_STATE).read_bytes() == (it / "train_state.pt").read_bytes()
    ts = torch.load(it / "train_state.pt", weights_only=True)
    assert int(ts["iteration"]) == 8 and int(ts["consumed_train_samples"]) == 64
    assert int(ts["skipped_train_iterations"]) == 0 and float(ts["floating_point_operations_so_far"]) > 0
    cfg = load_config(None, BASE + [f"checkpoint.save={root}", "checkpoint.save_interval=1", "checkpoint.most_recent_k=2",
                                    "checkpoint.ckpt_assume_constant_structure=true"])
    assert from_yaml((it / "run_config.yaml").read_text()) == cfg.validate()
    layout.verify(str(it))  # every file matches its manifest entry


def test_async_save_does_not_block_the_loop(tmp_path):
    seen = []

    class Watch:
        def on_step(self, state, metrics):  # runs before the loop polls the async save
            if metrics.iteration == 3:
                seen.append((os.path.isdir(layout.staging_path(str(tmp_path), 2)), os.path.isdir(layout.iter_path(str(tmp_path), 2))))

    ref = run(["train.train_iters=6"])
    got = run(["train.train_iters=6", f"checkpoint.save={tmp_path}", "checkpoint.save_interval=2", "checkpoint.async_save=true"], Watch())
    assert seen == [(True, False)]  # step 3 ran while the save of step 2 was still unpublished
    assert got["losses"] == ref["losses"]
    assert layout.complete_iterations(str(tmp_path)) == [2, 4, 6] and layout.read_tracker(str(tmp_path)) == 6
    for it in (2, 4, 6):
        layout.verify(layout.iter_path(str(tmp_path), it))


def test_torch_format_resume(tmp_path):
    ref = run([])
    ck = [f"checkpoint.save={tmp_path}", f"checkpoint.load={tmp_path}", "checkpoint.ckpt_format=torch"]
    first = run(ck + ["train.exit_interval=3"])
    blob = torch.load(tmp_path / "iter_0000003" / "mp_rank_00" / "model_optim_rng.pt", weights_only=True)
    assert {"model", "optimizer", "opt_param_scheduler"} <= set(blob)
    assert first["losses"] + run(ck)["losses"] == ref["losses"]


def test_missing_checkpoint_starts_fresh_or_fails(tmp_path):
    empty = tmp_path / "empty"
    assert run([f"checkpoint.load={empty}", "train.train_iters=2"])["iteration"] == 2
    with pytest.raises(CheckpointError, match="no checkpoint in .*exit_on_missing_checkpoint"):
        run([f"checkpoint.load={empty}", "checkpoint.exit_on_missing_checkpoint=true"])


def test_pretrained_checkpoint_loads_weights_only(saved, tmp_path):
    root, trained, _ = saved
    fresh = run(["train.train_iters=2"])
    got = run([f"checkpoint.pretrained_checkpoint={root}", "train.train_iters=2", f"checkpoint.save={tmp_path}"])
    assert len(got["losses"]) == 2 and got["iteration"] == 2  # starts at step 0
    assert got["losses"][0] < fresh["losses"][0] - 0.3  # the trained weights are in
    ts = torch.load(tmp_path / "iter_0000002" / "train_state.pt", weights_only=True)
    assert int(ts["consumed_train_samples"]) == 16  # counters were not taken from the pretrained run


def test_pretrained_checkpoint_errors(saved, tmp_path):
    root, _, _ = saved
    with pytest.raises(CheckpointError, match=r"checkpoint.pretrained_checkpoint: .*nowhere does not exist"):
        run([f"checkpoint.pretrained_checkpoint={tmp_path / 'nowhere'}"])
    (tmp_path / "notckpt").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        run([f"checkpoint.pretrained_checkpoint={tmp_path / 'notckpt'}"])
    # a model field contradicting the checkpoint's run_config.yaml: refused before anything is built
    with pytest.raises(ConfigError, match=r"model.hidden_size: 32 \(command line\) contradicts the checkpoint's 64 "):
        run([f"checkpoint.pretrained_checkpoint={root}", "model.hidden_size=32"])
    cfg = load_config(None, BASE + [f"checkpoint.pretrained_checkpoint={root}"])
    cfg.model.hidden_size = 32  # set in Python after loading: the weights do not fit, said when loading them
    with pytest.raises(CheckpointError, match="cannot load model weights.*hidden|cannot load model weights.*shape"):
        train(cfg)


def _copy(saved, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(saved[0], root)
    return root, root / "iter_0000008"


def test_truncated_file_is_named(saved, tmp_path):
    root, it = _copy(saved, tmp_path)
    victim = next(p for p in sorted(it.iterdir()) if p.suffix == ".distcp")
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{victim.name}: 100 bytes, expected \d+; the file is truncated"):
        run([f"checkpoint.load={root}"])


def test_corrupted_byte_is_named(saved, tmp_path):
    root, it = _copy(saved, tmp_path)
    data = bytearray((it / "common.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (it / "common.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="common.pt: CRC32 mismatch"):
        run([f"checkpoint.load={root}"])


def test_pickled_code_is_refused(saved, tmp_path):
    """A train_state.pt carrying a pickled callable is refused by weights_only loading, even with a
    matching manifest (an attacker can rewrite both)."""
    root, it = _copy(saved, tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"iteration": Evil()}, it / "train_state.pt")
    layout.write_manifest(str(it))
    with pytest.raises(CheckpointError, match="train_state.pt: unreadable"):
        run([f"checkpoint.load={root}"])


def test_bad_tracker(saved, tmp_path):
    root, _ = _copy(saved, tmp_path)
    (root / layout.TRACKER).write_text("latest\n")
    with pytest.raises(CheckpointError, match="latest_checkpointed_iteration.txt: expected an iteration number"):
        run([f"checkpoint.load={root}"])
    (root / layout.TRACKER).write_text("12\n")
    with pytest.raises(CheckpointError, match="names iteration 12, but .*iter_0000012 does not exist"):
        run([f"checkpoint.load={root}"])


def test_cli_reports_checkpoint_errors_without_traceback(saved, tmp_path, capsys):
    from plugtron.cli import main

    root, it = _copy(saved, tmp_path)
    (it / "manifest.json").unlink()
    rc = main(["train", *BASE, f"checkpoint.load={root}"])
    err = capsys.readouterr().err
    assert rc == 2 and "manifest.json: missing" in err and "Traceback" not in err
    assert os.path.isdir(saved[0] / "iter_0000008")  # nothing already saved was touched


def test_leftovers_of_interrupted_saves_are_ignored_and_cleaned(saved, tmp_path):
    root, _ = _copy(saved, tmp_path)
    (root / "iter_0000010.staging").mkdir()  # a save killed mid-write
    (root / "iter_0000010.staging" / "__0_0.distcp").write_bytes(b"partial")
    assert layout.latest_iteration(str(root)) == 8
    got = run([f"checkpoint.load={root}", f"checkpoint.save={root}", "train.train_iters=9",
               "scheduler.override_opt_param_scheduler=true"])
    assert got["iteration"] == 9 and not (root / "iter_0000010.staging").exists()


def test_config_checks():
    with pytest.raises(ConfigError, match="checkpoint.ckpt_format: 'torch' is single-process only"):
        load_config(None, BASE + ["checkpoint.ckpt_format=torch", "checkpoint.save=/tmp/x"]).validate(world_size=2)
    with pytest.raises(ConfigError, match="checkpoint.save_interval: set checkpoint.save"):
        load_config(None, BASE + ["checkpoint.save_interval=5"]).validate()
    with pytest.raises(ConfigError, match="checkpoint.async_save: needs ckpt_format 'torch_dist'"):
        load_config(None, BASE + ["checkpoint.ckpt_format=torch", "checkpoint.async_save=true"]).validate()


def test_schedule_change_on_resume_is_a_clear_error(saved, tmp_path):
    root, _ = _copy(saved, tmp_path)
    with pytest.raises(CheckpointError, match="override_opt_param_scheduler=true"):
        run([f"checkpoint.load={root}", "train.train_iters=12"])


def test_checkpoint_object_entries_are_loaded_weights_only():
    """Megatron/torch unpickle object entries of a dist checkpoint with weights_only=False; plugtron's
    loads run under torch's force-weights-only switch, so a pickled callable is refused."""
    import io

    from plugtron.checkpointing.safe_pickle import safe_loads as weights_only_loads

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    buf = io.BytesIO()
    torch.save([Evil()], buf)
    with weights_only_loads(), pytest.raises(Exception, match="Weights only load failed"):
        buf.seek(0)
        torch.load(buf, weights_only=False)
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


class MainParams:
    """Captures the optimizer's fp32 main parameters when saving and right after loading."""

    def __init__(self):
        self.saved = self.loaded = None

    @staticmethod
    def _main(state):
        opts = getattr(state.optimizer, "chained_optimizers", [state.optimizer])
        return [p.detach().clone() for o in opts for g in o.fp32_from_float16_groups for p in g]

    def on_save(self, state, checkpoint_dir):
        self.saved = self._main(state)

    def on_load(self, state, checkpoint_dir, plugin_state):
        self.loaded = self._main(state)


@pytest.mark.parametrize("from_ckpt", [True, False], ids=["load_main_params_from_ckpt", "from_bf16_weights"])
def test_main_params_without_optimizer_state(tmp_path, from_ckpt):
    """bf16 with load_optim=false: main params come from the checkpoint's fp32 copy when
    load_main_params_from_ckpt is set, else from the (rounded) bf16 weights."""
    mp = ["mixed_precision=bf16-mixed", f"checkpoint.save={tmp_path}"]
    saver = MainParams()
    run(mp + ["train.exit_interval=3"], saver)
    loader = MainParams()
    run(mp + [f"checkpoint.load={tmp_path}", "checkpoint.load_optim=false", "train.train_iters=8",
              f"checkpoint.load_main_params_from_ckpt={str(from_ckpt).lower()}"], loader)
    same = all(torch.equal(a, b) for a, b in zip(saver.saved, loader.loaded))
    assert same == from_ckpt
    if not from_ckpt:  # the fp32 copies are the bf16 weights, widened
        assert all(torch.equal(b, b.bfloat16().float()) for b in loader.loaded)


def test_save_optim_false_resumes_weights_with_a_fresh_optimizer(tmp_path):
    ck = [f"checkpoint.save={tmp_path}", "checkpoint.save_optim=false"]
    run(ck + ["train.exit_interval=3"])
    blob_keys = torch.load(tmp_path / "iter_0000003" / "common.pt", weights_only=True).keys()
    assert "optimizer" not in blob_keys
    got = run(ck + [f"checkpoint.load={tmp_path}"])
    assert got["iteration"] == 8 and len(got["losses"]) == 5


def test_writer_results_queue_keeps_torch_out_of_its_manager(saved):
    """The saves reported through plugtron's queue of pickled bytes (plugtron.checkpointing.write_queue):
    Megatron's manager process never imported torch (it did: ~270 MB per rank, and 0.5-1.3 s of its
    shutdown at every process exit), and what is put comes back as it was, a writer's error too."""
    import multiprocessing

    from megatron.core.dist_checkpointing.strategies import filesystem_async
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.storage import WriteResult

    from plugtron.checkpointing.write_queue import PickledQueue

    queue = filesystem_async._results_queue
    assert isinstance(queue, PickledQueue)
    managers = [p for p in multiprocessing.active_children() if p.name.startswith("SyncManager")]
    assert managers
    for p in managers:
        with open(f"/proc/{p.pid}/maps") as f:
            assert "libtorch" not in f.read()
    result = {0: [WriteResult(index=None, size_in_bytes=3, storage_data=_StorageInfo("__0_0.distcp", 0, 3))]}
    queue.put(result)
    assert queue.get_nowait() == result
    queue.put(OSError(28, "No space left on device"))
    err = queue.get_nowait()
    assert isinstance(err, OSError) and err.errno == 28
