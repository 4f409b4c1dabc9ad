"""Errors from loading are whole (issue 29, point 1): a checkpoint read that fails names the
checkpoint and the real cause in one line - not the first 300 characters of torch's
``CheckpointException`` (a per-rank traceback) - and ``--traceback`` shows the whole chain."""

import os
import shutil
import subprocess
import traceback as tb

import pytest
import yaml

from _hf_models import build, save

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")


def _raised_inside():
    try:
        raise KeyError("decoder.layers.2.mlp.linear_fc1.weight")
    except KeyError as exc:
        return exc


def test_describe_finds_each_rank_cause_in_a_checkpoint_exception():
    from torch.distributed.checkpoint.api import CheckpointException

    from plugtron.checkpointing.load_errors import describe

    inner = _raised_inside()
    wrapped = RuntimeError("reading failed")
    wrapped.__cause__ = inner
    exc = CheckpointException("load failed", {0: (wrapped, tb.extract_tb(inner.__traceback__)),
                                              1: (ValueError("shape (4, 8) vs (4, 16)"), None)})
    text = describe(exc)
    assert text == "KeyError: 'decoder.layers.2.mlp.linear_fc1.weight'; ValueError: shape (4, 8) vs (4, 16)"
    long = ValueError("x" * 5000)
    assert "more characters; --traceback shows all" in describe(long) and len(describe(long)) < 2200


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """An import whose run_config.yaml claims one layer more than its weights hold (manifest redone,
    so the read itself fails, not the verification)."""
    from plugtron.checkpointing import layout
    from plugtron.providers.hf import AutoBridge

    from _tokenizer_files import train_bpe

    root = tmp_path_factory.mktemp("loaderr")
    save(build("llama", vocab=300), root / "hf")
    train_bpe(str(root / "hf"), vocab_size=300)  # generate needs one
    AutoBridge.import_ckpt(str(root / "hf"), str(root / "ckpt"))
    it = root / "ckpt" / "iter_0000000"
    cfg = yaml.safe_load((it / "run_config.yaml").read_text())
    cfg["model"]["num_layers"] += 1
    (it / "run_config.yaml").write_text(yaml.safe_dump(cfg))
    os.remove(it / layout.MANIFEST)
    layout.write_manifest(str(it))
    return root


def _cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run([PLUGTRON, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_load_failure_is_one_whole_line_and_traceback_shows_the_chain(broken):
    proc = _cli("generate", str(broken / "ckpt"), "--prompt", "hi", "--max-new-tokens", "2", cwd=broken)
    assert proc.returncode == 2, proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("plugtron: error")]
    assert len(err) == 1 and "Traceback" not in proc.stderr and "RANK 0" not in proc.stderr, proc.stderr
    line = err[0]
    assert str(broken / "ckpt" / "iter_0000000") in line and "cannot load the model weights" in line, line
    # the real cause: the stacked layers' tensors hold 2 layers, the model wants 3
    assert "CheckpointingException: Global shape mismatch" in line and "(3, 64)" in line, line

    proc = _cli("--traceback", "generate", str(broken / "ckpt"), "--prompt", "hi", "--max-new-tokens", "2", cwd=broken)
    assert proc.returncode == 2
    assert "CheckpointException" in proc.stderr and "The above exception was the direct cause" in proc.stderr


def test_streamed_export_refuses_weights_that_do_not_match_the_config(broken):
    """The export reads tensor by tensor; a layer the weights do not hold is an error, never whatever
    memory the read left (before the check, this export succeeded with an uninitialised third layer)."""
    proc = _cli("convert", "export-hf", str(broken / "ckpt"), str(broken / "out"), cwd=broken)
    assert proc.returncode == 2, proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("plugtron: error")]
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "is saved with shape (2, 64)" in err[0] and "has (3, 64)" in err[0], err[0]
    assert not list((broken / "out").glob("*.safetensors"))  # no weights written (config.json is, first)


def test_streamed_export_reads_the_real_rows_of_a_differently_padded_vocabulary(tmp_path):
    """The shape check spares the vocabulary's padding rows: a checkpoint saved with more of them than
    the export's TP=1 model pads to (saved at a larger TP) still exports the original weights exactly."""
    import torch
    from safetensors.torch import load_file

    from plugtron.checkpointing import layout
    from plugtron.providers.hf import AutoBridge

    save(build("llama", vocab=301), tmp_path / "hf")
    AutoBridge.import_ckpt(str(tmp_path / "hf"), str(tmp_path / "ckpt"))
    it = tmp_path / "ckpt" / "iter_0000000"
    cfg = yaml.safe_load((it / "run_config.yaml").read_text())
    cfg["model"]["make_vocab_size_divisible_by"] = 1  # the export pads to 301 rows; 304 are saved
    (it / "run_config.yaml").write_text(yaml.safe_dump(cfg))
    os.remove(it / layout.MANIFEST)
    layout.write_manifest(str(it))
    AutoBridge.export_ckpt(str(tmp_path / "ckpt"), str(tmp_path / "out"))
    before, after = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    assert sorted(before) == sorted(after) and all(torch.equal(before[k], after[k]) for k in before)
