"""Reading checkpoints back: full resume (``checkpoint.load``) and weights only
(``checkpoint.pretrained_checkpoint``). Every function is collective."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

from plugtron import distributed
from plugtron.checkpointing import contents as ckstate
from plugtron.checkpointing import layout, manifest, safe_pickle, schedule_check
from plugtron.checkpointing import plugin_states as plugin_state_files
from plugtron.checkpointing.load_errors import describe, root_causes
from plugtron.errors import CheckpointError

log = logging.getLogger("plugtron")


def agree(error: Optional[str]) -> None:
    """Raise on every rank if any rank has an error (collective): a failure found on one rank alone
    would otherwise leave the others waiting in the next collective forever."""
    (failed,) = distributed.any_rank(error is not None)
    if failed and not error:
        error = "another rank failed to read the checkpoint (its message is in that rank's log)"
    if error:
        raise CheckpointError(error)


def verify_before_reading(ckpt_dir: str, require_manifest: bool = True) -> None:
    """Collective. Before anything of ``ckpt_dir`` is read: the manifest (every file listed, present
    with its size on every rank; the CRC32 pass - every byte read once - dealt over the ranks and
    over threads on each), then the ``.metadata`` index through the restricted unpickler. Without
    ``require_manifest`` (pretrained weights from another Megatron tool) a missing manifest skips
    the first part; nothing skips the second."""
    error = None
    try:
        if require_manifest or os.path.isfile(os.path.join(ckpt_dir, manifest.MANIFEST)):
            entries = manifest.read_manifest(ckpt_dir)
            manifest.check_listing(ckpt_dir, entries)
            manifest.check_crcs(ckpt_dir, entries, manifest.my_share(entries, distributed.rank(), distributed.world_size()))
    except CheckpointError as exc:
        error = str(exc)
    agree(error)  # every file is verified by some rank before any rank reads one
    try:
        if os.path.isfile(os.path.join(ckpt_dir, ".metadata")):
            safe_pickle.load_metadata(os.path.join(ckpt_dir, ".metadata"))
    except CheckpointError as exc:
        error = str(exc)
    agree(error)


def _read(path: str) -> Any:
    try:
        return ckstate.load_weights_only(path), None
    except CheckpointError as exc:
        return None, str(exc)


def _read_or_raise(path: str) -> Any:
    return ckstate.load_weights_only(path)  # raises CheckpointError naming the file


def _dist_load(ck, sharded_sd: Dict[str, Any], ckpt_dir: str, what: str, hint: str = "") -> Dict[str, Any]:
    from megatron.core import dist_checkpointing
    from megatron.core import parallel_state as ps
    from megatron.core.dist_checkpointing.serialization import get_default_load_sharded_strategy
    from megatron.core.dist_checkpointing.strategies.fully_parallel import FullyParallelLoadStrategyWrapper

    from plugtron.checkpointing import fast_reader

    strategy = get_default_load_sharded_strategy(ckpt_dir)
    if ck.fully_parallel_load and ps.get_data_parallel_world_size() > 1:
        strategy = FullyParallelLoadStrategyWrapper(strategy, ps.get_data_parallel_group(with_context_parallel=True))
    try:
        with safe_pickle.safe_loads(), fast_reader.patched():
            return dist_checkpointing.load(sharded_sd, ckpt_dir, sharded_strategy=strategy, strict=ck.dist_ckpt_strictness)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # torch's CheckpointException is a BaseException; all mean "does not fit"
        if all(isinstance(c, CheckpointError) for c in root_causes(exc)):  # plugtron's reader named the file
            raise CheckpointError(f"{ckpt_dir}: cannot load {what}: " + "; ".join(dict.fromkeys(map(str, root_causes(exc))))) from exc
        raise CheckpointError(f"{ckpt_dir}: cannot load {what}: {describe(exc)}{hint}") from exc


def load_into(ckptr, state, ckpt_dir: str) -> None:
    """Resume: model, optimizer, scheduler, RNG, counters and plugin states from ``ckpt_dir``."""
    ck = ckptr.ck
    verify_before_reading(ckpt_dir)
    ts, error = _read(os.path.join(ckpt_dir, layout.TRAIN_STATE))
    agree(error)
    saved_layout = ts["layout"]
    same_layout = saved_layout == ckstate.parallel_layout(ckptr.cfg)
    has_opt = bool(ts["has_optimizer"])
    with_opt = ck.load_optim and has_opt
    main_only = not ck.load_optim and ck.load_main_params_from_ckpt and has_opt
    if ck.load_optim and not has_opt and distributed.is_rank0():
        log.warning(f"checkpoint: {ckpt_dir} was saved with save_optim=false; the optimizer starts fresh")

    _check_adapter_only(ckptr.cfg, ckpt_dir, ts)
    if ts["ckpt_format"] == "torch":
        loaded = _read_or_raise(os.path.join(ckpt_dir, "mp_rank_00", "model_optim_rng.pt"))
    else:
        sd = ckstate.sharded_state_dict(state, with_optimizer=with_opt or main_only, is_loading=True)
        hint = "" if same_layout else (
            f" (saved with {saved_layout}, loading into {ckstate.parallel_layout(ckptr.cfg)}; "
            "to load the weights alone set checkpoint.load_optim=false)"
        )
        what = "model and optimizer state" if with_opt else "model weights"
        loaded = _dist_load(ck, sd, ckpt_dir, what, hint)
    if with_opt and "opt_param_scheduler" in loaded:  # same values on every rank: all raise together
        problems = schedule_check.mismatches(state.scheduler, loaded["opt_param_scheduler"],
                                             ckptr.cfg.train.global_batch_size)
        if problems:
            raise CheckpointError(schedule_check.message(ckpt_dir, problems, ckptr.cfg.train.train_iters))
    ckstate.restore_model(state.model, loaded, trainable_only=ckstate.adapter_only(ckptr.cfg))
    if with_opt or main_only:
        ckstate.restore_optimizer(state, loaded, main_params_only=main_only)
    else:
        state.optimizer.reload_model_params()  # fp32 main params from the loaded (half) weights

    for key in ("iteration", "consumed_train_samples", "skipped_train_iterations"):
        setattr(state, key, int(ts[key]))
    state.floating_point_operations_so_far = float(ts["floating_point_operations_so_far"])
    _restore_rng(ck, ckpt_dir, ts, same_layout)
    plugin_states = _plugin_states(ckpt_dir, saved_layout["world_size"] == ckstate.parallel_layout(ckptr.cfg)["world_size"],
                                   ckptr.hooks.enabled())
    if distributed.is_rank0():
        log.info(f"checkpoint: resumed from {ckpt_dir} at iteration {state.iteration} "
                 f"({state.consumed_train_samples} samples consumed)")
    ckptr.hooks.on_load(state, ckpt_dir, plugin_states)


def _check_adapter_only(cfg, ckpt_dir: str, ts: Dict[str, Any]) -> None:
    """An adapter checkpoint resumes only in a peft run (on top of its base), and a peft run
    resumes only from an adapter checkpoint. Same decision on every rank (same files)."""
    saved, wanted = bool(ts.get("adapter_only", False)), ckstate.adapter_only(cfg)
    base = ts.get("base_checkpoint")
    if saved and not wanted:
        agree(f"checkpoint.load: {ckpt_dir} holds adapters only (saved by a peft run on the base {base}); resume it "
              f"with its peft section and checkpoint.pretrained_checkpoint={base}, or merge it first "
              f"(plugtron peft merge {ckpt_dir} OUT_DIR)")
    if wanted and not saved:
        agree(f"checkpoint.load: {ckpt_dir} is a full checkpoint, not an adapter checkpoint of a peft run; to train "
              f"adapters on it set checkpoint.pretrained_checkpoint={ckpt_dir} and point checkpoint.load elsewhere")
    if saved and base and os.path.realpath(str(base)) != os.path.realpath(str(cfg.checkpoint.pretrained_checkpoint)):
        if distributed.is_rank0():
            log.warning(f"checkpoint: {ckpt_dir} was trained on the base {base}; this run loads "
                        f"{cfg.checkpoint.pretrained_checkpoint} (fine if it is the same model, moved)")


def _restore_rng(ck, ckpt_dir: str, ts: Dict[str, Any], same_layout: bool) -> None:
    if not (ck.load_rng and ts["has_rng"]):
        return
    if not same_layout:
        if distributed.is_rank0():
            log.warning("checkpoint: parallel layout changed since the save; RNG states are not restored "
                        "(each rank's generator belongs to its old position)")
        return
    rng, error = _read(ckstate.rank_file(ckpt_dir, "rng", distributed.rank()))
    agree(error)
    ckstate.restore_rng(rng)


def _plugin_states(ckpt_dir: str, same_world: bool, enabled) -> Dict[str, Any]:
    """Each rank's own plugin states; rank 0's when the world size changed."""
    states, error = plugin_state_files.load(ckpt_dir, distributed.rank() if same_world else 0, enabled)
    agree(error)
    return states


def load_weights(ckptr, model, optimizer, ckpt_dir: str, key: str) -> None:
    """Model weights only (pretrained / converted checkpoints) into the chunks ``model`` (and the
    ``optimizer``'s main params, if it exists yet); optimizer state and counters untouched."""
    verify_before_reading(ckpt_dir, require_manifest=False)  # another tool's checkpoint may lack one
    ts_path = os.path.join(ckpt_dir, layout.TRAIN_STATE)
    if os.path.isfile(ts_path):
        ts, error = _read(ts_path)
        agree(error)
        if ts.get("adapter_only"):
            agree(f"{key}: {ckpt_dir} holds adapters only (a peft run's checkpoint), not a model; use the base it "
                  f"was trained on ({ts.get('base_checkpoint')}), or merge the adapters first (plugtron peft merge)")
    if os.path.isfile(os.path.join(ckpt_dir, "mp_rank_00", "model_optim_rng.pt")):
        loaded = _read_or_raise(os.path.join(ckpt_dir, "mp_rank_00", "model_optim_rng.pt"))
    else:
        if not os.path.isfile(os.path.join(ckpt_dir, ".metadata")):
            agree(f"{key}: {ckpt_dir} is not a Megatron checkpoint (no .metadata inside)")
        sd = ckstate.model_sharded_state_dict(model)
        hint = " (is it a checkpoint of this model? compare its run_config.yaml with the model section)"
        loaded = _dist_load(ckptr.ck, sd, ckpt_dir, "model weights", hint)
    put_weights(model, optimizer, loaded, f"{key}: {ckpt_dir}", f"pretrained weights from {ckpt_dir}")


def put_weights(model, optimizer, loaded, source: str, what: str) -> None:
    """Loaded model weights into the chunks and the optimizer's main params (when the optimizer is
    built already), for every weights-only source (plugtron or NeMo 2.0 checkpoints). ``source``
    prefixes the error if they do not fit."""
    try:
        ckstate.restore_model(model, loaded)
    except (RuntimeError, CheckpointError) as exc:
        raise CheckpointError(f"{source} does not fit this model: {str(exc).splitlines()[0][:300]}") from None
    if optimizer is not None:
        optimizer.reload_model_params()
    if distributed.is_rank0():
        log.info(f"checkpoint: loaded {what}")


def load_nemo2_weights(ckptr, model, optimizer, path: str, key: str) -> None:
    """Model weights of a NeMo 2.0 checkpoint directory (``weights/`` + ``context/``, see
    ``plugtron.migrate.nemo2_checkpoint``). Its architecture fields must equal the configured model's;
    its tensors are keyed ``module.<Megatron key>``, so the model's sharded state dict is built with
    that prefix and it reshards like a plugtron checkpoint. Collective."""
    from plugtron.migrate import nemo2_checkpoint as nemo2

    try:
        mismatches, error = nemo2.architecture_mismatches(path, ckptr.cfg.model), None
    except CheckpointError as exc:
        mismatches, error = [], str(exc)
    agree(error)
    if mismatches:
        agree(f"{key}: {path} is a NeMo 2.0 checkpoint of another architecture than the model section "
              f"(context/model.yaml vs model): " + "; ".join(mismatches))
    ckpt_dir = nemo2.weights_dir(path)
    if not os.path.isfile(os.path.join(ckpt_dir, ".metadata")):
        agree(f"{key}: {ckpt_dir} is not a Megatron distributed checkpoint (no .metadata inside)")
    verify_before_reading(ckpt_dir, require_manifest=False)  # NeMo writes no manifest; .metadata still restricted
    agree(nemo2.vocab_padding_mismatch(ckpt_dir, [ckstate.unwrap(c) for c in model]))
    sd = {k: ckstate.unwrap(c).sharded_state_dict(prefix=nemo2.KEY_PREFIX, metadata=dict(ckstate.SHARDED_METADATA))
          for k, c in zip(ckstate.model_keys(len(model)), model)}
    loaded = _dist_load(ckptr.ck, sd, ckpt_dir, "NeMo 2.0 model weights",
                        " (is it a checkpoint of this model? compare context/model.yaml with the model section)")
    stripped = {k: {name[len(nemo2.KEY_PREFIX):] if name.startswith(nemo2.KEY_PREFIX) else name: v
                    for name, v in loaded[k].items()} for k in sd}
    put_weights(model, optimizer, stripped, f"{key}: {path}", f"NeMo 2.0 weights from {ckpt_dir}")
