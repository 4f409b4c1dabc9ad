"""The weight mapping: Hugging Face tensors <-> Megatron-Core GPTModel tensors (whole, un-sharded,
in the local layer spec's names; ``bridge`` renames for Transformer Engine's fused norms and
slices for tensor parallelism).

One ``Rule`` per Megatron tensor: the HF tensors it is made of, their expected shapes, and an
invertible op. Megatron's fused QKV is grouped by key/value head: for each of the ``ng`` groups,
its ``nh/ng`` query heads, then its key head, then its value head; a contiguous split of the rows
into TP parts therefore gives every rank whole groups. The gated MLP's ``linear_fc1`` is
``[gate; up]``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from plugtron.providers.hf.errors import ConversionError

Shape = Tuple[int, ...]


@dataclasses.dataclass
class Rule:
    mcore: str
    hf: Tuple[str, ...]
    shapes: Tuple[Shape, ...]
    fuse: Callable[..., torch.Tensor]  # hf tensors -> mcore tensor
    split: Callable[[torch.Tensor], Sequence[torch.Tensor]]  # inverse
    # Per HF tensor: None (the whole stored tensor), or i - the rule uses row i of a stored tensor
    # that stacks one entry per expert (gpt-oss's ``experts.gate_up_proj``); ``shapes`` is the row's.
    rows: Tuple = ()

    def row(self, i: int):
        return self.rows[i] if i < len(self.rows) else None


def _copy(name: str, mcore: str, shape: Shape) -> Rule:
    return Rule(mcore, (name,), (shape,), lambda t: t, lambda t: (t,))


def _transposed(name: str, mcore: str, shape: Shape) -> Rule:
    """GPT-2's Conv1D stores ``[in, out]``; Megatron's linear layers ``[out, in]``."""
    return Rule(mcore, (name,), (shape,), lambda t: t.t().contiguous(), lambda t: (t.t().contiguous(),))


def _concat(names: Tuple[str, str], mcore: str, shape: Shape) -> Rule:
    return Rule(mcore, names, (shape, shape), lambda a, b: torch.cat([a, b], 0), lambda t: t.chunk(2, 0))


def _qkv(names: Tuple[str, str, str], mcore: str, nh: int, ng: int, hd: int, rest: Shape) -> Rule:
    per = nh // ng

    def fuse(q, k, v):
        q = q.reshape(ng, per, hd, *rest)
        k, v = k.reshape(ng, 1, hd, *rest), v.reshape(ng, 1, hd, *rest)
        return torch.cat([q, k, v], 1).reshape(ng * (per + 2) * hd, *rest)

    def split(t):
        q, k, v = t.reshape(ng, per + 2, hd, *rest).split([per, 1, 1], 1)
        return (q.reshape(nh * hd, *rest).contiguous(), k.reshape(ng * hd, *rest).contiguous(),
                v.reshape(ng * hd, *rest).contiguous())

    shapes = ((nh * hd, *rest), (ng * hd, *rest), (ng * hd, *rest))
    return Rule(mcore, names, shapes, fuse, split)


def _gpt2_qkv(name: str, mcore: str, nh: int, hd: int, is_bias: bool) -> Rule:
    """GPT-2's ``c_attn`` is ``[h, 3h]`` = q|k|v columns; Megatron's MHA fuses per head."""
    h = nh * hd
    inner = _qkv(("q", "k", "v"), mcore, nh, nh, hd, () if is_bias else (h,))

    def fuse(t):
        t = t if is_bias else t.t()
        return inner.fuse(*t.split(h, 0))

    def split(t):
        qkv = torch.cat(list(inner.split(t)), 0)
        return (qkv if is_bias else qkv.t().contiguous(),)

    return Rule(mcore, (name,), ((3 * h,) if is_bias else (h, 3 * h),), fuse, split)


# Rule builders, public for the family modules kept in their own files (hf.gemma3_phi3).
copy_rule, concat_rule, qkv_rule = _copy, _concat, _qkv


def llama_rules(p, moe_prefix: str = "block_sparse_moe", experts=("w1", "w3", "w2")) -> List[Rule]:
    """Llama, Mistral, Qwen2 (QKV bias), Qwen3 (per-head QK norm), Mixtral and Qwen3-MoE (MoE: the
    ``moe_prefix`` module and the ``experts`` gate, up and down projection names) share one layout."""
    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd = p.num_query_groups or nh, p.kv_channels or h // nh
    f, V = p.ffn_hidden_size, p.vocab_size
    rules = [_copy("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        a = L + "self_attn."
        rules += [
            _copy(L + "input_layernorm.weight", M + "input_layernorm.weight", (h,)),
            _qkv((a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"),
                 M + "self_attention.linear_qkv.weight", nh, ng, hd, (h,)),
            _copy(a + "o_proj.weight", M + "self_attention.linear_proj.weight", (h, nh * hd)),
            _copy(L + "post_attention_layernorm.weight", M + "pre_mlp_layernorm.weight", (h,)),
        ]
        if p.qk_layernorm:  # Qwen3: one RMSNorm per head (weights of size head_dim), shared by all heads
            rules += [_copy(a + "q_norm.weight", M + "self_attention.q_layernorm.weight", (hd,)),
                      _copy(a + "k_norm.weight", M + "self_attention.k_layernorm.weight", (hd,))]
        if p.add_qkv_bias:
            rules.append(_qkv((a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"),
                              M + "self_attention.linear_qkv.bias", nh, ng, hd, ()))
        if p.num_moe_experts:
            fe, E = p.moe_ffn_hidden_size or f, p.num_moe_experts
            m = L + moe_prefix + "."
            rules.append(_copy(m + "gate.weight", M + "mlp.router.weight", (E, h)))
            for e in range(E):
                x, X = f"{m}experts.{e}.", f"{M}mlp.experts.local_experts.{e}."
                gate, up, down = (f"{x}{name}.weight" for name in experts)
                rules += [_concat((gate, up), X + "linear_fc1.weight", (fe, h)),
                          _copy(down, X + "linear_fc2.weight", (h, fe))]
        else:
            rules += [
                _concat((L + "mlp.gate_proj.weight", L + "mlp.up_proj.weight"), M + "mlp.linear_fc1.weight", (f, h)),
                _copy(L + "mlp.down_proj.weight", M + "mlp.linear_fc2.weight", (h, f)),
            ]
    rules.append(_copy("model.norm.weight", "decoder.final_layernorm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(_copy("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


def olmo2_rules(p) -> List[Rule]:
    """Llama's tensors, but the norms sit after the sublayers (in Megatron's bias-dropout-add
    slots; there is no pre-norm) and the QK norms span the whole q/k projections."""
    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd = p.num_query_groups or nh, p.kv_channels or h // nh
    replaced = ("input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_norm.weight",
                "self_attn.k_norm.weight")
    rules = [r for r in llama_rules(p) if not r.hf[0].endswith(replaced)]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        rules += [
            _copy(L + "post_attention_layernorm.weight", M + "self_attn_bda.norm.weight", (h,)),
            _copy(L + "post_feedforward_layernorm.weight", M + "mlp_bda.norm.weight", (h,)),
            _copy(L + "self_attn.q_norm.weight", M + "self_attention.q_layernorm.weight", (nh * hd,)),
            _copy(L + "self_attn.k_norm.weight", M + "self_attention.k_layernorm.weight", (ng * hd,)),
        ]
    return rules


def qwen3_moe_rules(p) -> List[Rule]:
    return llama_rules(p, moe_prefix="mlp", experts=("gate_proj", "up_proj", "down_proj"))


def gpt2_rules(p) -> List[Rule]:
    h, nh, f, V = p.hidden_size, p.num_attention_heads, p.ffn_hidden_size, p.vocab_size
    T = "transformer."
    rules = [_copy(T + "wte.weight", "embedding.word_embeddings.weight", (V, h)),
             _copy(T + "wpe.weight", "embedding.position_embeddings.weight", (p.max_position_embeddings or p.seq_length, h))]
    for i in range(p.num_layers):
        L, M = f"{T}h.{i}.", f"decoder.layers.{i}."
        for hf_norm, mc_norm in (("ln_1", "input_layernorm"), ("ln_2", "pre_mlp_layernorm")):
            rules += [_copy(f"{L}{hf_norm}.{w}", f"{M}{mc_norm}.{w}", (h,)) for w in ("weight", "bias")]
        rules += [
            _gpt2_qkv(L + "attn.c_attn.weight", M + "self_attention.linear_qkv.weight", nh, h // nh, False),
            _gpt2_qkv(L + "attn.c_attn.bias", M + "self_attention.linear_qkv.bias", nh, h // nh, True),
            _transposed(L + "attn.c_proj.weight", M + "self_attention.linear_proj.weight", (h, h)),
            _copy(L + "attn.c_proj.bias", M + "self_attention.linear_proj.bias", (h,)),
            _transposed(L + "mlp.c_fc.weight", M + "mlp.linear_fc1.weight", (h, f)),
            _copy(L + "mlp.c_fc.bias", M + "mlp.linear_fc1.bias", (f,)),
            _transposed(L + "mlp.c_proj.weight", M + "mlp.linear_fc2.weight", (f, h)),
            _copy(L + "mlp.c_proj.bias", M + "mlp.linear_fc2.bias", (h,)),
        ]
    rules += [_copy(T + f"ln_f.{w}", f"decoder.final_layernorm.{w}", (h,)) for w in ("weight", "bias")]
    return rules


def rules_for(family: str, provider) -> List[Rule]:
    from plugtron.providers.hf.configs import family_named

    own = family_named(family).weights  # a model-family package's own mapping
    if own is not None:
        return own(provider)
    return {"gpt2": gpt2_rules, "olmo2": olmo2_rules, "qwen3_moe": qwen3_moe_rules}.get(family, llama_rules)(provider)


# Tensors a Hugging Face checkpoint may hold that are not weights, or are duplicates by design.
def _ignorable(family: str, name: str, tied: bool) -> bool:
    if family == "gpt2" and (name.endswith((".attn.bias", ".attn.masked_bias")) or (tied and name == "lm_head.weight")):
        return True
    if tied and name == "lm_head.weight":
        return True
    return name.endswith("rotary_emb.inv_freq")


def _aliases(family: str, keys) -> Dict[str, str]:
    """GPT2Model checkpoints (the hub's ``gpt2``) lack the ``transformer.`` prefix."""
    if family == "gpt2" and not any(k.startswith("transformer.") for k in keys):
        return {"transformer." + k: k for k in keys if k != "lm_head.weight"}
    return {}


def hf_sources(family: str, provider, reader, where: str) -> Dict[str, Callable[[], torch.Tensor]]:
    """Every Megatron tensor of ``reader`` (``.keys()``, ``.shape(name)``, ``.get(name)``,
    ``.get_row(name, i)``) as a function that reads and fuses it when called: names and shapes
    (rows of stacked expert tensors included) are checked here, from the safetensors headers, before
    any data is read; missing, misshapen or left-over HF tensors are errors naming the tensor."""
    keys = set(reader.keys())
    alias = _aliases(family, keys)
    used, out = set(), {}
    rows_used: Dict[str, Tuple[int, set]] = {}  # stacked tensor -> (its rows, the rows the rules read)
    for rule in rules_for(family, provider):
        parts = []  # (stored name, row or None)
        for i, (name, shape) in enumerate(zip(rule.hf, rule.shapes)):
            stored = alias.get(name, name)
            if stored not in keys:
                raise ConversionError(f"{where}: tensor '{stored}' is missing (needed for {rule.mcore})")
            got = tuple(reader.shape(stored))
            row = rule.row(i)
            if row is not None:  # one row of a tensor stacking one entry per expert
                if not got or got[0] <= row or got[1:] != tuple(shape):
                    raise ConversionError(f"{where}: tensor '{stored}' has shape {got}, expected "
                                          f"({row + 1} or more, {', '.join(map(str, shape))}) from config.json")
                rows_used.setdefault(stored, (got[0], set()))[1].add(row)
            elif got != tuple(shape):
                raise ConversionError(
                    f"{where}: tensor '{stored}' has shape {got}, expected {tuple(shape)} from config.json"
                )
            used.add(stored)
            parts.append((stored, row))
        out[rule.mcore] = _reader_of(rule, parts, reader)
    for stored, (n, seen) in rows_used.items():
        if seen != set(range(n)):
            raise ConversionError(f"{where}: tensor '{stored}' has {n} rows (experts), config.json gives {len(seen)}")
    tied = provider.share_embeddings_and_output_weights
    from plugtron.providers.hf.configs import family_named

    dropped = family_named(family).dropped or (lambda _p, _name: False)
    extra = sorted(k for k in keys - used if not _ignorable(family, k, tied) and not dropped(provider, k))
    if extra:
        more = f" (and {len(extra) - 5} more)" if len(extra) > 5 else ""
        raise ConversionError(f"{where}: tensor(s) {', '.join(extra[:5])}{more} have no place in a "
                              f"{family} model of this config (unsupported variant?)")
    return out


def _reader_of(rule: Rule, parts: List[Tuple[str, Optional[int]]], reader) -> Callable[[], torch.Tensor]:
    # a row alone is read, not the stacked tensor: reading it whole once per expert would cost E times
    return lambda: rule.fuse(*(reader.get(n) if row is None else reader.get_row(n, row) for n, row in parts))


def hf_to_mcore(family: str, provider, reader, where: str) -> Dict[str, torch.Tensor]:
    """Every Megatron tensor from ``reader``, read whole (see ``hf_sources``)."""
    return {name: read() for name, read in hf_sources(family, provider, reader, where).items()}


# Written in float32 whatever the model's dtype: the sigmoid routers' score correction, a float32 buffer in
# transformers and in Megatron (a bf16 copy would round the biases that decide the top-k).
_FLOAT32 = (".e_score_correction_bias",)


def _export_dtype(name: str, dtype):
    return torch.float32 if dtype is not None and name.endswith(_FLOAT32) else dtype


def hf_specs(family: str, provider, dtype: torch.dtype) -> Dict[str, Tuple[Shape, torch.dtype]]:
    """Name -> (shape, dtype) of every HF tensor an export writes, in the mapping's order; a tensor
    stacking one row per expert (``Rule.rows``) has the rows' count as its first dimension."""
    specs: Dict[str, Tuple[Shape, torch.dtype]] = {}
    rows: Dict[str, set] = {}
    for rule in rules_for(family, provider):
        for i, (name, shape) in enumerate(zip(rule.hf, rule.shapes)):
            row = rule.row(i)
            if row is None:
                specs[name] = (tuple(shape), _export_dtype(name, dtype))
            else:
                rows.setdefault(name, set()).add(row)
                specs[name] = ((len(rows[name]), *shape), _export_dtype(name, dtype))
    for name, seen in rows.items():
        if seen != set(range(len(seen))):
            raise ConversionError(f"Megatron checkpoint: rows {sorted(seen)} of '{name}' are not 0..{len(seen) - 1}")
    return specs


def split_to_hf(rule: Rule, tensor: torch.Tensor, dtype=None) -> List[Tuple]:
    """The HF tensors of one Megatron tensor (whole, vocabulary padding removed): ``(name, tensor)``,
    or ``(name, tensor, row)`` for row ``row`` of a stacked HF tensor (``Rule.rows``)."""
    out = []
    for i, (name, shape, t) in enumerate(zip(rule.hf, rule.shapes, rule.split(tensor))):
        if tuple(t.shape) != tuple(shape):
            raise ConversionError(f"Megatron checkpoint: '{rule.mcore}' gives '{name}' of shape "
                                  f"{tuple(t.shape)}, expected {tuple(shape)}")
        t = t.to(_export_dtype(name, dtype)) if dtype is not None else t
        out.append((name, t) if rule.row(i) is None else (name, t, rule.row(i)))
    return out


def mcore_to_hf(family: str, provider, tensors: Dict[str, torch.Tensor], dtype=None) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    rows: Dict[str, Dict[int, torch.Tensor]] = {}  # stacked HF tensors, collected row by row
    for rule in rules_for(family, provider):
        if rule.mcore not in tensors:
            raise ConversionError(f"Megatron checkpoint: tensor '{rule.mcore}' is missing")
        for name, t, *row in split_to_hf(rule, tensors[rule.mcore], dtype):
            if row:
                rows.setdefault(name, {})[row[0]] = t
            else:
                out[name] = t
    for name, by_row in rows.items():
        if sorted(by_row) != list(range(len(by_row))):
            raise ConversionError(f"Megatron checkpoint: rows {sorted(by_row)} of '{name}' are not 0..{len(by_row) - 1}")
        out[name] = torch.stack([by_row[r] for r in range(len(by_row))], 0)
    return out


# The building blocks of a weight mapping, public for model-family packages (docs/plugins.md):
# copy_rule(hf_name, mcore_name, shape); concat_rule((gate, up), mcore, shape); qkv_rule((q, k, v),
# mcore, heads, query_groups, head_dim, rest) fuses by key/value group as Megatron does.
copy_rule, concat_rule, qkv_rule = _copy, _concat, _qkv
