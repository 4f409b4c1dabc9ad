"""Mixed-precision presets (Megatron Bridge's names + the older spellings): the settings each puts on
the model, optimizer and DDP configs, and the refusal of fp8 where Transformer Engine or the GPU
cannot run it (the GPU faked here; the real one in test_fp8_refusal_on_this_gpu)."""

import pytest
import torch

from plugtron.platform import machine
from plugtron.config import load_config
from plugtron.errors import UnsupportedOnThisMachine

BF16 = dict(bf16=True, fp16=False, params_dtype=torch.bfloat16, pipeline_dtype=torch.bfloat16, grad_reduce_in_fp32=True)
FP16 = dict(bf16=False, fp16=True, params_dtype=torch.float16, pipeline_dtype=torch.float16, grad_reduce_in_fp32=False)
FP32 = dict(bf16=False, fp16=False, params_dtype=torch.float32, pipeline_dtype=torch.float32, grad_reduce_in_fp32=False)
NO_FP8 = dict(fp8=None)
# Megatron Bridge's recipes (training/mixed_precision.py), field by field
DELAYED = dict(fp8="hybrid", fp8_recipe="delayed", fp8_margin=0, fp8_amax_history_len=1024,
               fp8_amax_compute_algo="max", fp8_param=True, first_last_layers_bf16=False,
               fp8_param_gather=True, reuse_grad_buf_for_mxfp8_param_ag=False)
CURRENT = dict(fp8="hybrid", fp8_recipe="tensorwise", fp8_amax_history_len=1, fp8_amax_compute_algo="most_recent",
               fp8_param=True, first_last_layers_bf16=True, num_layers_at_start_in_bf16=1,
               num_layers_at_end_in_bf16=1, fp8_param_gather=True, reuse_grad_buf_for_mxfp8_param_ag=False)
MXFP8 = dict(fp8="e4m3", fp8_recipe="mxfp8", fp8_param=True, first_last_layers_bf16=False,
             fp8_param_gather=True, reuse_grad_buf_for_mxfp8_param_ag=True)

CASES = {
    "bf16_mixed": {**BF16, **NO_FP8},
    "fp16_mixed": {**FP16, **NO_FP8},
    "bf16_with_fp8_delayed_scaling_mixed": {**BF16, **DELAYED},
    "bf16_with_fp8_current_scaling_mixed": {**BF16, **CURRENT},
    "bf16_with_mxfp8_mixed": {**BF16, **MXFP8},
    # older spellings (NeMo 2.0 / Lightning), kept working
    "bf16-mixed": {**BF16, **NO_FP8},
    "16-mixed": {**FP16, **NO_FP8},
    "fp16-mixed": {**FP16, **NO_FP8},
    "32": {**FP32, **NO_FP8},
    "fp32": {**FP32, **NO_FP8},
}
DDP_FIELDS = {"grad_reduce_in_fp32", "fp8_param_gather", "reuse_grad_buf_for_mxfp8_param_ag"}


def _validated(preset):
    cfg = load_config()
    cfg.mixed_precision = preset  # (the override "mixed_precision=32" would parse as the int 32)
    return cfg.validate()


@pytest.mark.parametrize("preset", list(CASES))
def test_preset_settings(preset):
    cfg = _validated(preset)
    for field, want in CASES[preset].items():
        if field in DDP_FIELDS:
            assert getattr(cfg.ddp, field) == want, f"ddp.{field}"
        else:
            assert getattr(cfg.model, field) == want, f"model.{field}"
        if field in ("bf16", "fp16", "params_dtype"):
            assert getattr(cfg.optimizer, field) == want, f"optimizer.{field}"
    if CASES[preset]["fp8"] is not None:
        assert cfg.optimizer.fp8_recipe == CASES[preset]["fp8_recipe"]
        assert cfg.optimizer.reuse_grad_buf_for_mxfp8_param_ag == CASES[preset]["reuse_grad_buf_for_mxfp8_param_ag"]


def test_unknown_preset_lists_the_names():
    from plugtron.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown preset 'bf16_fp8'.*bf16_with_fp8_delayed_scaling_mixed"):
        _validated("bf16_fp8")


def test_mxfp8_param_gather_needs_the_grad_buffer_reuse():
    from plugtron.errors import ConfigError

    cfg = load_config(overrides=["mixed_precision=bf16_with_mxfp8_mixed"])
    mp = cfg.resolved_mixed_precision()
    mp.reuse_grad_buf_for_mxfp8_param_ag = False
    cfg.mixed_precision = mp
    with pytest.raises(ConfigError, match="reuse_grad_buf_for_mxfp8_param_ag: must be true"):
        cfg.validate()


FP8_PRESETS = ["bf16_with_fp8_delayed_scaling_mixed", "bf16_with_fp8_current_scaling_mixed", "bf16_with_mxfp8_mixed"]


@pytest.mark.parametrize("preset", FP8_PRESETS)
@pytest.mark.parametrize("capability,device,ok", [
    ((8, 0), "NVIDIA A100-SXM4-80GB", False),
    ((8, 9), "NVIDIA L40S", None),  # fp8 yes, mxfp8 no
    ((9, 0), "NVIDIA H100 80GB HBM3", None),
    ((10, 0), "NVIDIA B200", True),
])
def test_fp8_needs_the_gpu_generation(preset, capability, device, ok):
    cfg = _validated(preset)
    cfg.model.transformer_impl = "transformer_engine"
    if ok is None:
        ok = preset != "bf16_with_mxfp8_mixed"
    problems = machine.fp8_problems(cfg, te=True, capability=capability, device=device)
    if ok:
        assert problems == []
    else:
        assert len(problems) == 1
        need = "10.0 (Blackwell)" if preset == "bf16_with_mxfp8_mixed" else "8.9"
        assert f"mixed_precision {preset!r}: the " in problems[0]
        assert f"needs compute capability >= {need}" in problems[0]
        assert f"({device}) has {capability[0]}.{capability[1]}" in problems[0]


@pytest.mark.parametrize("preset", FP8_PRESETS)
def test_fp8_needs_transformer_engine(preset):
    cfg = _validated(preset)
    problems = machine.fp8_problems(cfg, te=False, capability=(10, 0))
    assert problems == [f"mixed_precision {preset!r}: fp8 runs in Transformer Engine's layers, and "
                        "transformer_engine is not installed (pip install 'transformer-engine[pytorch]'), or use "
                        "mixed_precision bf16_mixed"]
    cfg.model.transformer_impl = "local"  # TE installed but the local spec asked for
    assert "needs model.transformer_impl 'transformer_engine', got 'local'" in \
        machine.fp8_problems(cfg, te=True, capability=(10, 0))[0]


def test_bf16_is_never_refused_for_fp8():
    assert machine.fp8_problems(_validated("bf16_mixed"), te=False, capability=None) == []


def test_machine_check_refuses_fp8_on_a_faked_old_gpu(monkeypatch):
    cfg = _validated("bf16_with_fp8_delayed_scaling_mixed")
    cfg.model.transformer_impl = "transformer_engine"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(machine, "te_importable", lambda: True)
    with pytest.raises(UnsupportedOnThisMachine, match=r"needs compute capability >= 8.9; this GPU "
                                                       r"\(NVIDIA A100-SXM4-80GB\) has 8.0"):
        machine.check(cfg)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    machine.check(cfg)  # Hopper with TE: accepted


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without CUDA")
def test_machine_check_refuses_fp8_without_cuda():
    cfg = _validated("bf16_with_fp8_current_scaling_mixed")
    with pytest.raises(UnsupportedOnThisMachine, match="needs a CUDA GPU of compute capability >= 8.9; this machine has none"):
        machine.check(cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real GPU: checks its real compute capability")
def test_fp8_refusal_on_this_gpu():
    cap = torch.cuda.get_device_capability()
    cfg = _validated("bf16_with_mxfp8_mixed")
    cfg.model.transformer_impl = "transformer_engine"
    problems = machine.fp8_problems(cfg, te=True, capability=cap, device=torch.cuda.get_device_name())
    assert (problems == []) == (cap >= (10, 0))
    cfg = _validated("bf16_with_fp8_delayed_scaling_mixed")
    cfg.model.transformer_impl = "transformer_engine"
    problems = machine.fp8_problems(cfg, te=True, capability=cap)
    assert (problems == []) == (cap >= (8, 9))
    if not machine.te_importable():  # the real check refuses: no Transformer Engine on this machine
        with pytest.raises(UnsupportedOnThisMachine, match="transformer_engine is not installed"):
            machine.check(cfg)
