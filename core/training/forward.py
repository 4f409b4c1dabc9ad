"""The GPT forward step and its loss, as Megatron-Core's schedules call them (``forward_step_func``).

Its own module so that model kinds (``plugtron.providers.model_kind``) and the training step both
use it without importing each other.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, Optional

import torch


def loss_func(loss_mask: torch.Tensor, output_tensor: torch.Tensor, per_token: bool = False,
              real_tokens: Optional[torch.Tensor] = None):
    """The loss of one micro batch over its unmasked tokens, in the form Megatron's schedule expects.

    ``per_token`` (``model.calculate_per_token_loss``): Megatron's 3-tuple ``(sum, tokens, report)``.
    The schedule backpropagates the sum as it is and ``finalize_model_grads`` divides the gradients
    by the tokens of the whole global batch (all micro batches, all data-parallel ranks): one token
    mean over the global batch, the objective of ``transformers``' Trainer (>= 4.46). Otherwise
    the micro batch's token mean (the schedule divides it by the number of micro batches).

    ``real_tokens`` (SFT batches: each row's non-padding positions, already on the device) rides
    along in the report as ``"real tokens"``; ``step.mean_loss`` sums it in the loss's reduction."""
    losses = output_tensor.float().view(-1)
    mask = loss_mask.view(-1).float()
    total = torch.sum(losses * mask)
    if per_token:
        tokens = mask.sum().to(torch.int)  # the schedule sums these into an int tensor
        return total, tokens, _report(torch.stack([total.detach(), mask.sum()]), real_tokens)
    loss = total / mask.sum().clamp(min=1.0)
    # clone: Megatron's schedule divides the returned loss by num_microbatches *in place*.
    return loss, _report(loss.detach().clone(), real_tokens)


def _report(lm_loss: torch.Tensor, real_tokens: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
    report = {"lm loss": lm_loss}
    if real_tokens is not None:
        report["real tokens"] = real_tokens.sum()
    return report


def loss_function(loss_mask: torch.Tensor, model, real_tokens: Optional[torch.Tensor] = None):
    """``loss_func`` for ``model`` (a chunk, DDP-wrapped or not): per token when its config asks."""
    from megatron.core.utils import get_model_config

    per_token = bool(getattr(get_model_config(model), "calculate_per_token_loss", False))
    return partial(loss_func, loss_mask, per_token=per_token, real_tokens=real_tokens)


def thd_packed_seq_params(batch: Dict[str, Any], model) -> Optional[Any]:
    """Megatron's ``PackedSeqParams`` (THD layout, from the row's ``cu_seqlens``) when ``batch`` is a
    packed SFT row and ``model`` runs Transformer Engine layers; else None.

    Without TE (the local spec, e.g. on CPU) the packed row's block-diagonal ``attention_mask`` keeps
    the examples apart instead: Megatron's local ``DotProductAttention`` rejects packed_seq_params."""
    if batch.get("cu_seqlens") is None:
        return None
    from megatron.core.utils import get_model_config

    from plugtron.providers.gpt import uses_te_layers

    if not uses_te_layers(get_model_config(model)):
        return None
    from plugtron.data.sft import packed_seq_params

    return packed_seq_params(batch["cu_seqlens"], batch["max_seqlen"])


def forward_step(data_iterator, model):
    batch = next(data_iterator)
    packed = thd_packed_seq_params(batch, model)
    if packed is not None:
        # THD: TE's attention takes the example boundaries from cu_seqlens; no s x s mask
        output = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"],
                       packed_seq_params=packed)
    else:
        output = model(
            batch["tokens"], batch["position_ids"], batch["attention_mask"], labels=batch["labels"]
        )
    return output, loss_function(batch["loss_mask"], model, batch.get("real_tokens"))
