"""Padding rows of the vocabulary never change the function a model computes.

Megatron pads the embedding and output layer to a multiple of ``make_vocab_size_divisible_by x TP``
(every tensor-parallel shard the same size; round sizes for the GPU's matmuls). Left alone, each
padding row of the output layer adds ``exp(logit)`` to every softmax denominator and is trained
like a real token, so a padded model is a different model: a Hugging Face Llama of vocabulary 257
imported with 384 rows started 0.38 nats above ``transformers``' loss.

``mask_padding_logits`` sets the logits of the padding columns to the dtype's lowest finite value
on the output layer's own output, so everything downstream sees the unpadded model: Megatron's
cross-entropy (unfused, fused ``native``, Transformer Engine's), evaluation, generation, MTP.
``exp(lowest - max)`` is exactly 0, so the softmax, the loss and its gradient are those of the
unpadded model, the padding rows get a zero gradient (they never move, except by weight decay),
and, unlike -inf, ``0 * logit`` stays 0 (no NaN in an entropy a user computes from the logits).
"""

from __future__ import annotations

from typing import Optional

import torch


def padding_columns(output_layer, width: int, vocab_size: int) -> Optional[slice]:
    """The columns of this rank's logits (``width`` of them) that are padding, or None.

    The output layer's logits are this rank's vocabulary shard (``output_size_per_partition``
    columns starting at ``rank x that``) or, when gathered, the whole padded vocabulary."""
    from megatron.core import parallel_state as ps

    per_rank = output_layer.output_size_per_partition
    first = 0
    if width == per_rank and width != output_layer.output_size:  # a tensor-parallel shard
        first = ps.get_tensor_model_parallel_rank() * per_rank
    start = max(vocab_size - first, 0)
    return slice(start, width) if start < width else None


def mask_padding_logits(model, vocab_size: int) -> None:
    """Give ``model``'s padding logits (global columns >= ``vocab_size``) the lowest finite value
    of their dtype, in place, on every forward. A model without an output layer (a pipeline stage
    before the last) or without padding is left as it is."""
    layer = getattr(model, "output_layer", None)
    if layer is None or getattr(layer, "output_size", vocab_size) <= vocab_size:
        return
    if not hasattr(layer, "output_size_per_partition"):  # not Megatron's ColumnParallelLinear: say so
        raise TypeError(f"{type(layer).__name__}: cannot mask the vocabulary padding of this output layer")

    def hook(module, args, output):
        logits = output[0] if isinstance(output, tuple) else output
        cols = padding_columns(module, logits.shape[-1], vocab_size)
        if cols is not None:
            # in place on the slice: autograd passes a zero gradient to the overwritten columns
            logits[..., cols] = torch.finfo(logits.dtype).min
        return output

    layer.register_forward_hook(hook)
