"""benchmarks/mfu.py: the bf16 peak table, the MFU arithmetic, the FLOPs of Llama 3.2 1B against a
hand computation, the layer-spec choice, the no-GPU message and (tiny shape) the whole code path."""

import importlib.util
import os

import pytest
import torch

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "mfu.py")
_spec = importlib.util.spec_from_file_location("plugtron_bench_mfu", _PATH)
mfu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mfu)


@pytest.mark.parametrize("name,peak", [
    ("NVIDIA H100 80GB HBM3", 989.0),  # SXM5
    ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0),
    ("NVIDIA GH200 480GB", 989.0),
    ("NVIDIA B200", 2250.0),
    ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A100 80GB PCIe", 312.0),
])
def test_peak_lookup_by_device_name(name, peak):
    assert mfu.peak_bf16_tflops(name) == peak


def test_unknown_device_has_no_peak():
    assert mfu.peak_bf16_tflops("NVIDIA GeForce RTX 4090") is None


def test_mfu_arithmetic():
    # 494.5 TFLOP in one second on a 989 TFLOP/s part is half of its peak
    assert mfu.mfu(494.5e12, 1.0, 989.0) == pytest.approx(0.5)
    assert mfu.mfu(494.5e12, 2.0, 989.0) == pytest.approx(0.25)


def test_llama32_1b_flops_match_a_hand_count():
    a = mfu._args(["--seq-length", "2048", "--global-batch-size", "16", "--micro-batch-size", "4"])
    cfg = mfu.build_config(a, "local")
    from plugtron.training.flops import num_floating_point_operations

    # Llama 3.2 1B per token and layer: h 2048, 32 heads of 64, 8 KV groups, SwiGLU FFN 8192
    qkv = 2 * 2048 * 64 * (32 + 2 * 8)
    scores_and_values = 2 * 2 * 2048 * 64 * 32  # s = 2048
    out_proj = 2 * 64 * 32 * 2048
    mlp = 2 * 2048 * 8192 * 3  # gate, up, down
    per_token = 16 * (qkv + scores_and_values + out_proj + mlp) + 2 * 2048 * 128256  # + logits
    assert per_token == 2_739_929_088
    assert num_floating_point_operations(cfg) == 3 * per_token * 2048 * 16


def test_fusions_flag_turns_on_megatrons_compiled_fusions():
    cfg = mfu.build_config(mfu._args(["--fusions"]), "local")
    assert cfg.model.bias_activation_fusion and cfg.model.cross_entropy_loss_fusion
    assert cfg.model.cross_entropy_fusion_impl == "native"
    plain = mfu.build_config(mfu._args([]), "local")
    assert not plain.model.bias_activation_fusion and not plain.model.cross_entropy_loss_fusion


def test_tokens_per_step_sets_the_global_batch():
    a = mfu._args(["--seq-length", "1024", "--micro-batch-size", "2", "--tokens-per-step", "65536"])
    assert a.global_batch_size == 64
    with pytest.raises(SystemExit):
        mfu._args(["--seq-length", "1024", "--micro-batch-size", "2", "--tokens-per-step", "1000"])


def test_layer_spec_choice():
    assert mfu.choose_transformer_impl("auto", True) == ("transformer_engine", None)
    impl, note = mfu.choose_transformer_impl("auto", False)
    assert impl == "local" and "Transformer Engine is not importable" in note
    assert mfu.choose_transformer_impl("local", True) == ("local", None)
    with pytest.raises(SystemExit, match="--layer-spec te: Transformer Engine is not importable"):
        mfu.choose_transformer_impl("te", False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given on a machine without a GPU")
def test_without_a_gpu_it_says_so(capsys):
    assert mfu.main([]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--cpu-smoke" in err


def test_tiny_shape_runs_the_whole_path(capsys):
    rc = mfu.main(["--cpu-smoke", "--provider", "llama", "--num-layers", "1", "--hidden-size", "64",
                   "--seq-length", "32", "--micro-batch-size", "2", "--global-batch-size", "4",
                   "--steps", "2", "--warmup", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "tokens/s" in out and "TFLOP/s" in out
    assert "core attention SDPADotProductAttention" in out  # the local spec's attention, CPU and CUDA
    if torch.cuda.is_available():
        assert "MFU" in out
