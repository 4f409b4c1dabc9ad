"""Communication overlap (former NeMo ``MegatronCommOverlapCallback``; Megatron Bridge's ``CommOverlapConfig``).

Toggle: ``comm_overlap`` (the section present, e.g. ``comm_overlap: {}``). Before anything is built
(``configure_model``) it writes NeMo's defaults for this parallel layout onto the model, DDP and
optimizer configs; every value set in the ``comm_overlap`` section wins over a default, and a model /
``ddp`` / ``optimizer`` field the user set explicitly is never touched (``config.is_user_set``).

NeMo's defaults:
- tensor-parallel overlap only as asked, and only with TP >= 2, sequence parallel and Transformer
  Engine (otherwise switched off with a warning);
- PP > 1 with virtual pipeline: ``overlap_p2p_comm=True, batch_p2p_comm=False``; PP > 1 without:
  the reverse; PP = 1: both off (gloo never gets batched p2p with virtual pipeline: it does not learn);
- DP > 1 with the distributed optimizer: ``ddp.bucket_size`` 128 MiB, ``overlap_grad_reduce``,
  ``overlap_param_gather``, and ``align_param_gather`` with PP > 1 and virtual pipeline;
  ``overlap_param_gather_with_optimizer_step`` stays off (NeMo: "an issue with checkpointing");
- ``defer_embedding_wgrad_compute=False``, ``wgrad_deferral_limit=-1``.
On a GPU with TP or CP > 1 a wrong ``CUDA_DEVICE_MAX_CONNECTIONS`` is one warning (it must be set
before CUDA starts, so the plugin cannot fix it).

With ``overlap_param_gather`` the parameters are all-gathered lazily, in the next forward pass, so
before every save the pending all-gather is forced (``on_before_save``; a collective over the
data-parallel group) - what Megatron-LM's ``disable_forward_pre_hook`` does around saves.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Tuple

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

BUCKET_SIZE = 128 * 1024 * 1024  # NeMo's default DDP bucket with DP > 1
MODEL_FIELDS = ("tp_comm_overlap", "overlap_p2p_comm", "batch_p2p_comm", "defer_embedding_wgrad_compute", "wgrad_deferral_limit")
DDP_FIELDS = ("overlap_grad_reduce", "overlap_param_gather", "align_param_gather", "bucket_size")
OPTIMIZER_FIELDS = ("overlap_param_gather_with_optimizer_step",)


def _have_transformer_engine() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformer_engine") is not None


def nemo_defaults(config) -> Dict[str, Any]:
    """NeMo's comm-overlap values for this config's parallel layout: ``{field: value}`` over
    ``MODEL_FIELDS + DDP_FIELDS + OPTIMIZER_FIELDS`` (validated config: ``data_parallel_size`` derived)."""
    m = config.model
    pp, vpp = m.pipeline_model_parallel_size, m.virtual_pipeline_model_parallel_size
    out: Dict[str, Any] = {"tp_comm_overlap": False, "defer_embedding_wgrad_compute": False, "wgrad_deferral_limit": -1,
                           "overlap_param_gather_with_optimizer_step": False}
    if pp > 1:
        out.update(overlap_p2p_comm=bool(vpp and vpp > 1), batch_p2p_comm=not (vpp and vpp > 1))
    else:
        out.update(overlap_p2p_comm=False, batch_p2p_comm=False)
    if config.data_parallel_size > 1 and config.optimizer.use_distributed_optimizer:
        out.update(bucket_size=BUCKET_SIZE, overlap_grad_reduce=True, overlap_param_gather=True)
        if pp > 1 and vpp and vpp > 1:
            out["align_param_gather"] = True
    return out


def _tp_overlap_blockers(config, cuda: bool) -> List[str]:
    m = config.model
    why = []
    if m.tensor_model_parallel_size < 2:
        why.append("model.tensor_model_parallel_size < 2")
    if not m.sequence_parallel:
        why.append("model.sequence_parallel is off")
    if not (cuda and _have_transformer_engine()):
        why.append("Transformer Engine on CUDA is not available")
    return why


def plan(config, cuda: bool) -> Tuple[Dict[Tuple[str, str], Any], List[str]]:
    """What the plugin sets: ``{(section, field): value}`` and the warnings, without changing anything."""
    values = nemo_defaults(config)
    user = {k: v for k, v in _section_values(config.comm_overlap).items() if v is not None}
    values.update(user)  # the comm_overlap section wins over NeMo's defaults
    warnings = []
    if values["tp_comm_overlap"]:
        blockers = _tp_overlap_blockers(config, cuda)
        if blockers:
            warnings.append(f"comm_overlap.tp_comm_overlap: switched off ({'; '.join(blockers)})")
            values["tp_comm_overlap"] = False
    if not cuda and config.model.virtual_pipeline_model_parallel_size and values.get("batch_p2p_comm"):
        warnings.append("comm_overlap: batch_p2p_comm kept off on gloo with virtual pipeline (it does not learn)")
        values["batch_p2p_comm"] = False
    changes = {}
    is_user_set = getattr(config, "is_user_set", lambda path: None)
    for section, fields in (("model", MODEL_FIELDS), ("ddp", DDP_FIELDS), ("optimizer", OPTIMIZER_FIELDS)):
        for name in fields:
            if name in values and (name in user or not is_user_set(f"{section}.{name}")):
                changes[(section, name)] = values[name]
    return changes, warnings


def _section_values(section) -> Dict[str, Any]:
    import attrs

    return attrs.asdict(section)


def _connections_advice(config) -> str:
    import torch

    m = config.model
    if m.tensor_model_parallel_size < 2 and m.context_parallel_size < 2:
        return ""
    want = "32" if torch.cuda.get_device_properties(0).major >= 10 else "1"
    have = os.environ.get("CUDA_DEVICE_MAX_CONNECTIONS")
    if have == want:
        return ""
    return (f"comm_overlap: set CUDA_DEVICE_MAX_CONNECTIONS={want} in the launch environment with TP or CP > 1 on this "
            f"GPU (it is {have or 'unset'}); it must be set before CUDA starts")


class CommOverlap:
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        co = config.comm_overlap
        if co is None:
            return []
        problems = []
        if co.overlap_param_gather and not config.optimizer.use_distributed_optimizer:
            problems.append("comm_overlap.overlap_param_gather: needs optimizer.use_distributed_optimizer=true")
        if co.align_param_gather and not (co.overlap_param_gather or co.overlap_param_gather is None):
            problems.append("comm_overlap.align_param_gather: needs overlap_param_gather")
        if co.bucket_size is not None and co.bucket_size <= 0:
            problems.append(f"comm_overlap.bucket_size: expected a number of elements > 0, got {co.bucket_size}")
        return problems

    def __init__(self, config):
        self.applied: Dict[Tuple[str, str], Any] = {}  # observable in tests
        self.param_gather = False

    @hookimpl
    def configure_model(self, config, provider):
        import torch

        cuda = torch.cuda.is_available()
        changes, warnings = plan(config, cuda)
        targets = {"model": provider, "ddp": config.ddp, "optimizer": config.optimizer}
        for (section, name), value in changes.items():
            setattr(targets[section], name, value)
        if config.ddp.overlap_param_gather:  # the optimizer reads its own copy of the switch
            config.optimizer.overlap_param_gather = True
        self.applied = changes
        self.param_gather = bool(config.ddp.overlap_param_gather and config.optimizer.use_distributed_optimizer)
        if cuda:
            advice = _connections_advice(config)
            if advice:
                warnings.append(advice)
        for w in warnings:
            log.warning(w)

    @hookimpl
    def on_before_save(self, state):
        if self.param_gather:  # the weights updated by the last step are gathered lazily: gather now
            for chunk in state.model:
                chunk.start_param_sync(force_sync=True)  # collective over the data-parallel group
