"""Mamba on CPU: plugtron's pure-PyTorch stand-ins for the mamba_ssm/causal_conv1d kernels.

Megatron-Core's own ``MambaMixer`` (forward and backward, its training path and its prefill path, then
decode steps) is compared with a reference written here the plainest way: a token-by-token loop over
the Mamba-2 recurrence (no chunking), a causal convolution as a sum over past positions. Then the
``tiny_mamba`` and ``tiny_hybrid`` recipes train with falling loss.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from plugtron.platform import cpu_shims
from plugtron.platform.mamba_ssd import mamba_chunk_scan_combined
from _mcore_helpers import single_process

cpu_shims.apply()


def sequential_ssm(x, dt, A, B, C, D, z=None, state=None):
    """x [b, l, h, p], dt [b, l, h] (already softplus'ed), A [h], B/C [b, l, g, n], D [h] -> y, state."""
    b, seqlen, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    state = torch.zeros(b, h, p, n, dtype=torch.float64) if state is None else state.double()
    ys = []
    for t in range(seqlen):
        y_t = []
        new_state = []
        for head in range(h):
            group = head // (h // g)
            decay = torch.exp(dt[:, t, head] * A[head])  # [b]
            s = state[:, head] * decay[:, None, None] + dt[:, t, head, None, None] * (
                x[:, t, head, :, None] * B[:, t, group, None, :])
            new_state.append(s)
            y_t.append((s * C[:, t, group, None, :]).sum(-1) + D[head] * x[:, t, head])
        state = torch.stack(new_state, dim=1)
        ys.append(torch.stack(y_t, dim=1))
    y = torch.stack(ys, dim=1)
    if z is not None:
        y = y * F.silu(z)
    return y, state


def causal_conv(x, weight, bias):
    """x [b, l, d], weight [d, w]: out[t] = bias + sum_k weight[:, k] * x[t - (w - 1) + k] (zeros before 0)."""
    width = weight.shape[1]
    out = []
    for t in range(x.shape[1]):
        acc = bias.clone().expand(x.shape[0], -1)
        for k in range(width):
            src = t - (width - 1) + k
            if src >= 0:
                acc = acc + weight[:, k] * x[:, src]
        out.append(acc)
    return torch.stack(out, dim=1)


def test_chunked_scan_equals_sequential_recurrence_with_groups_padding_and_initial_state():
    torch.manual_seed(0)
    b, seqlen, h, p, g, n = 2, 21, 4, 3, 2, 5  # 21 tokens in chunks of 8: padding in the last chunk
    x = torch.randn(b, seqlen, h, p, requires_grad=True)
    dt_raw = torch.randn(b, seqlen, h, requires_grad=True)
    A = -torch.rand(h).add(0.5).requires_grad_()
    B, C = (torch.randn(b, seqlen, g, n, requires_grad=True) for _ in range(2))
    D = torch.randn(h, requires_grad=True)
    z = torch.randn(b, seqlen, h, p, requires_grad=True)
    dt_bias = torch.randn(h, requires_grad=True)
    init = torch.randn(b, h, p, n, requires_grad=True)
    inputs = (x, dt_raw, A, B, C, D, z, dt_bias, init)

    y, final = mamba_chunk_scan_combined(x, dt_raw, A, B, C, 8, D=D, z=z, dt_bias=dt_bias, initial_states=init,
                                         dt_softplus=True, return_final_states=True)
    dt = F.softplus(dt_raw.double() + dt_bias.double())
    y_ref, final_ref = sequential_ssm(x.double(), dt, A.double(), B.double(), C.double(), D.double(), z.double(),
                                      init)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(final.double(), final_ref, rtol=1e-5, atol=1e-5)
    probe = torch.randn_like(y_ref)
    grads = torch.autograd.grad((y * probe).sum() + final.sum(), inputs)
    grads_ref = torch.autograd.grad((y_ref * probe).sum() + final_ref.sum(), inputs)
    for name, got, want in zip("x dt A B C D z dt_bias init".split(), grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)


def reference_mixer(mixer, hidden):
    """Megatron's MambaMixer computed from its parameters by the plain recurrence. hidden [l, b, d]."""
    h, p, g, n = mixer.nheads, mixer.headdim, mixer.ngroups, mixer.d_state
    d_inner = h * p
    zxbcdt = (hidden @ mixer.in_proj.weight.T).transpose(0, 1)  # [b, l, ...]
    z, xBC, dt = torch.split(zxbcdt, [d_inner, d_inner + 2 * g * n, h], dim=-1)
    xBC = F.silu(causal_conv(xBC, mixer.conv1d.weight[:, 0], mixer.conv1d.bias))
    x, B, C = torch.split(xBC, [d_inner, g * n, g * n], dim=-1)
    b, seqlen = x.shape[:2]
    dt = F.softplus(dt + mixer.dt_bias)
    A = -torch.exp(mixer.A_log)
    y, _ = sequential_ssm(x.reshape(b, seqlen, h, p), dt, A, B.reshape(b, seqlen, g, n), C.reshape(b, seqlen, g, n),
                          mixer.D)
    y = y.float().reshape(b, seqlen, d_inner) * F.silu(z)
    # Gated RMSNorm (norm after the gate), one normalisation per group of d_inner / g channels.
    grouped = y.reshape(b, seqlen, g, d_inner // g)
    y = (grouped / torch.sqrt(grouped.pow(2).mean(-1, keepdim=True) + mixer.norm.eps)).reshape(b, seqlen, d_inner)
    y = y * mixer.norm.weight
    return (y @ mixer.out_proj.weight.T).transpose(0, 1)


def _mixer(mem_eff_path: bool):
    from megatron.core.process_groups_config import ProcessGroupCollection
    from megatron.core.ssm.mamba_mixer import MambaMixer, MambaMixerSubmodules
    from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
    from megatron.core.transformer import TransformerConfig

    config = TransformerConfig(num_layers=1, hidden_size=32, num_attention_heads=1, mamba_state_dim=8,
                               mamba_head_dim=8, mamba_num_groups=2, use_cpu_initialization=True,
                               use_mamba_mem_eff_path=mem_eff_path)
    torch.manual_seed(1)
    mixer = MambaMixer(config, MambaMixerSubmodules(in_proj=ColumnParallelLinear, out_proj=RowParallelLinear),
                       d_model=32, chunk_size=8, pg_collection=ProcessGroupCollection.use_mpu_process_groups())
    with torch.no_grad():  # non-trivial values for every parameter the reference reads
        mixer.D.uniform_(-1, 1)
        mixer.norm.weight.uniform_(0.5, 1.5)
    return mixer


@pytest.mark.parametrize("mem_eff_path", [True, False], ids=["training_path", "prefill_path"])
def test_megatron_mamba_mixer_forward_backward_equals_sequential_reference(mem_eff_path):
    with single_process():
        mixer = _mixer(mem_eff_path)
        hidden = torch.randn(20, 2, 32)  # [l, b, d]: 20 tokens, chunks of 8
        out, bias = mixer(hidden)
        assert bias is None
        ref = reference_mixer(mixer, hidden)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        probe = torch.randn_like(out)
        params = [p for p in mixer.parameters()]
        assert len(params) == 8  # in_proj, conv1d weight/bias, dt_bias, A_log, D, norm, out_proj
        grads = torch.autograd.grad((out * probe).sum(), params)
        grads_ref = torch.autograd.grad((ref * probe).sum(), params)
        for (name, _), got, want in zip(mixer.named_parameters(), grads, grads_ref):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


def test_megatron_mamba_prefill_then_decode_steps_equal_the_full_forward():
    """Megatron's inference path: prefill fills the conv and SSM states (causal_conv1d_fn's input window,
    the scan's final state), then ``_decode`` runs causal_conv1d_update + selective_state_update."""
    with single_process(), torch.no_grad():
        mixer = _mixer(False).eval()
        hidden = torch.randn(12, 2, 32)
        full = reference_mixer(mixer, hidden)
        (conv_shape, ssm_shape) = mixer.mamba_state_shapes_per_request()
        conv_state, ssm_state = torch.zeros(2, *conv_shape), torch.zeros(2, *ssm_shape)
        zxbcdt, _ = mixer.in_proj(hidden[:7])
        prefill, _ = mixer.out_proj(mixer._ssm_prefill(zxbcdt, conv_state=conv_state, ssm_state=ssm_state))
        torch.testing.assert_close(prefill, full[:7], rtol=1e-5, atol=1e-5)
        for t in range(7, 12):
            step, _ = mixer._decode(hidden[t:t + 1], conv_state, ssm_state)
            torch.testing.assert_close(step, full[t:t + 1], rtol=1e-5, atol=1e-5)


def _train(recipe, iters):
    from plugtron.config import load_config
    from plugtron.training import train

    overrides = [f"train.train_iters={iters}", f"train.eval_interval={iters}", "train.eval_iters=1",
                 "logger.log_interval=1", "scheduler.lr_warmup_iters=2", "train.global_batch_size=4",
                 "train.micro_batch_size=4"]
    return train(load_config(None, overrides, recipe=recipe))["losses"]


@pytest.mark.parametrize("recipe", ["tiny_mamba", "tiny_hybrid"])
def test_mamba_recipes_train_on_cpu_with_falling_loss(recipe):
    losses = _train(recipe, 6)
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    # ~5.8 at the start (257 byte ids); bytes of English text are learned fast.
    assert sum(losses[-3:]) / 3 < losses[0] - 0.7, losses


def test_packed_sft_rows_are_refused_for_mamba_without_the_kernels(tmp_path):
    """Without TE only the attention mask separates a packed row's examples; a Mamba layer ignores it."""
    from plugtron.config import FinetuningDatasetConfig, PackedSequenceSpecs, load_config
    from plugtron.errors import ConfigError

    cfg = load_config(None, ["train.micro_batch_size=1"], recipe="tiny_mamba")
    cfg.dataset = FinetuningDatasetConfig(dataset_root=str(tmp_path), seq_length=128,
                                          packed_sequence_specs=PackedSequenceSpecs(packed_sequence_size=128))
    with pytest.raises(ConfigError, match="packed SFT rows are not supported for Mamba/hybrid models"):
        cfg.validate(1)
    cfg.dataset.packed_sequence_specs = None
    cfg.validate(1)  # the same run without packing is fine
