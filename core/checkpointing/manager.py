"""``Checkpointer``: saves, publishes, retains, resumes and loads pretrained weights for the loop.

Every method is collective (all ranks call it at the same point of the loop). File-system
bookkeeping (staging, manifest, rename, tracker, retention) runs on global rank 0 between barriers;
the checkpoint's sharded data is written by every rank through Megatron's ``dist_checkpointing``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

import torch

from plugtron import distributed
from plugtron.checkpointing import layout, plugin_states, publish
from plugtron.checkpointing import contents as ckstate
from plugtron.checkpointing.loading import agree, load_into, load_weights
from plugtron.errors import CheckpointError

log = logging.getLogger("plugtron")


class Checkpointer:
    def __init__(self, cfg, hooks):
        self.cfg, self.ck, self.hooks = cfg, cfg.checkpoint, hooks
        self._save_strategy = None
        self._async_queue = None
        self._pending: Optional[int] = None  # iteration of an async save not yet published
        self._saves = 0
        if self.ck.save and distributed.is_rank0():
            from plugtron.checkpointing import tokenizer_files

            tokenizer_files.remember(cfg.tokenizer)  # each save copies these bytes (see tokenizer_files)

    # ---- saving ---------------------------------------------------------------------------------
    def save(self, state) -> None:
        """Write a checkpoint of ``state`` under ``checkpoint.save`` and publish it (or, with
        ``async_save``, start writing and publish when the write is done)."""
        root, it = self.ck.save, state.iteration
        self.finalize(blocking=True)  # the previous async save first: publication stays in order
        staging = publish.open_staging(root, it)
        if self.ck.ckpt_format == "torch":
            self._save_torch(state, staging)
            request = None
        else:
            request = self._save_dist(state, staging)
        self._save_small_files(state, staging)
        if request is None:
            self._publish(it, state)
        else:
            from plugtron.checkpointing.async_save import schedule

            request.add_finalize_fn(lambda: self._publish(it, state))
            self._async_queue = schedule(self._async_queue, request)
            self._pending = it

    def _save_dist(self, state, staging: str):
        from megatron.core import dist_checkpointing

        from plugtron.checkpointing import write_queue

        write_queue.start()  # before Megatron spawns its helper: a script needs no __main__ guard
        sd = ckstate.sharded_state_dict(state, with_optimizer=self.ck.save_optim, is_loading=False)
        first, self._saves = self._saves == 0, self._saves + 1
        return dist_checkpointing.save(
            sd, staging, sharded_strategy=self._strategy(), async_sharded_save=self.ck.async_save,
            # the cross-rank shard-coverage check is a collective; with a structure assumed constant
            # it is run on the first save only
            validate_access_integrity=first or not self.ck.ckpt_assume_constant_structure,
        )

    def _strategy(self):
        """torch_dist writer; spread over data-parallel replicas with ``fully_parallel_save``;
        plans cached across saves with ``ckpt_assume_constant_structure``. Kept for the run so the
        caches live."""
        if self._save_strategy is None:
            from megatron.core import parallel_state as ps
            from megatron.core.dist_checkpointing.strategies.fully_parallel import FullyParallelSaveStrategyWrapper
            from megatron.core.dist_checkpointing.strategies.torch import TorchDistSaveShardedStrategy

            strategy = TorchDistSaveShardedStrategy("torch_dist", 1, cached_metadata=self.ck.ckpt_assume_constant_structure)
            if self.ck.fully_parallel_save and ps.get_data_parallel_world_size() > 1:
                strategy = FullyParallelSaveStrategyWrapper(
                    strategy, ps.get_data_parallel_group(with_context_parallel=True), self.ck.ckpt_assume_constant_structure
                )
            self._save_strategy = strategy
        return self._save_strategy

    def _save_torch(self, state, staging: str) -> None:
        """``ckpt_format: torch``: one file, single process (validate() enforces world size 1)."""
        blob = {}
        for key, chunk in zip(ckstate.model_keys(len(state.model)), state.model):
            sd = ckstate.unwrap(chunk).state_dict()
            if ckstate.adapter_only(self.cfg):  # peft: the adapters only
                keep = ckstate.trainable_names(chunk)
                sd = {k: v for k, v in sd.items() if k in keep}
            blob[key] = sd
        if self.ck.save_optim:
            blob["optimizer"] = state.optimizer.state_dict()
            blob["opt_param_scheduler"] = state.scheduler.state_dict()
        os.makedirs(os.path.join(staging, "mp_rank_00"))
        torch.save(blob, os.path.join(staging, "mp_rank_00", "model_optim_rng.pt"))

    def _save_small_files(self, state, staging: str) -> None:
        """Per-rank RNG and plugin states; rank 0 adds train state and the resolved config."""
        rank = distributed.rank()
        if self.ck.save_rng:
            ckstate.save_rank_file(staging, "rng", rank, ckstate.capture_rng())
        plugin_states.save(self.hooks, state, staging, rank, self.hooks.dist_label)
        if rank == 0:
            torch.save(self._train_state(state), os.path.join(staging, layout.TRAIN_STATE))
            publish.write_run_config(staging, self.cfg)

    def _train_state(self, state) -> Dict[str, Any]:
        return {**{k: torch.tensor(v) for k, v in state.counters().items()},
                "has_optimizer": self.ck.save_optim, "has_rng": self.ck.save_rng,
                "ckpt_format": self.ck.ckpt_format, "layout": ckstate.parallel_layout(self.cfg),
                # peft: adapters only; the base they need (also in run_config.yaml)
                "adapter_only": ckstate.adapter_only(self.cfg),
                # absolute: generate and merge find the base from any working directory
                "base_checkpoint": self.ck.pretrained_checkpoint and os.path.abspath(self.ck.pretrained_checkpoint)}

    def _publish(self, it: int, state) -> None:
        """Collective. After every rank's files are written: manifest, rename, tracker, retention;
        then ``on_checkpoint_published`` on every rank (``publish`` ends with a barrier, so the
        directory is visible to all of them)."""
        root = self.ck.save

        def after_tracker() -> None:  # rank 0
            # the same bytes as the published train_state.pt, for tools that read only the top level
            with open(os.path.join(layout.iter_path(root, it), layout.TRAIN_STATE), "rb") as f:
                layout.atomic_write(os.path.join(root, layout.LATEST_TRAIN_STATE), f.read())
            removed = layout.apply_retention(root, self.ck.most_recent_k)
            log.info(f"checkpoint: saved {layout.iter_path(root, it)}"
                     + (f" (removed iterations {removed})" if removed else ""))

        publish.publish(root, it, then=after_tracker)
        if self._pending == it:
            self._pending = None
        self.hooks.on_checkpoint_published(state, layout.iter_path(root, it))

    def finalize(self, blocking: bool = False) -> None:
        """Publish a finished async save (collective on every rank: Megatron agrees across ranks
        that the write is done). ``blocking`` waits for it."""
        if self._async_queue is not None:
            self._async_queue.maybe_finalize_async_calls(blocking=blocking, no_dist=False)

    def close(self) -> None:
        if self._async_queue is not None:
            self.finalize(blocking=True)
            self._async_queue.close()
            self._async_queue = None

    # ---- loading ----------------------------------------------------------------------------------
    def resume(self, state) -> Optional[str]:
        """Load the checkpoint ``checkpoint.load`` names (a save directory's newest, or one
        ``iter_XXXXXXX`` directory; see ``paths``) into ``state``; ``None`` if there is none yet
        (and ``exit_on_missing_checkpoint`` is off)."""
        from plugtron.checkpointing.paths import resolve_load

        root = self.ck.load
        try:
            ckpt_dir, error = resolve_load(root), None
        except CheckpointError as exc:
            ckpt_dir, error = None, str(exc)
        agree(error)
        if ckpt_dir is None:
            if self.ck.exit_on_missing_checkpoint:
                raise CheckpointError(f"checkpoint.load: no checkpoint in {root} and checkpoint.exit_on_missing_checkpoint is set")
            if distributed.is_rank0():
                log.info(f"checkpoint: no checkpoint in {root}; starting from scratch")
            return None
        from plugtron.checkpointing.loading import load_into

        load_into(self, state, ckpt_dir)
        return ckpt_dir

    def load_pretrained(self, model, optimizer=None) -> str:
        """Weights only from ``checkpoint.pretrained_checkpoint`` into the chunks ``model`` (and the
        ``optimizer``'s main params if it is built); step 0, fresh optimizer."""
        path = self.ck.pretrained_checkpoint
        from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint

        if is_nemo2_checkpoint(path):  # weights/ + context/: NeMo 2.0's layout
            from plugtron.checkpointing.loading import load_nemo2_weights

            load_nemo2_weights(self, model, optimizer, path, "checkpoint.pretrained_checkpoint")
            return path
        try:
            ckpt_dir, error = layout.resolve_checkpoint_dir(path, "checkpoint.pretrained_checkpoint"), None
        except CheckpointError as exc:
            ckpt_dir, error = None, str(exc)
        agree(error)
        load_weights(self, model, optimizer, ckpt_dir, "checkpoint.pretrained_checkpoint")
        return ckpt_dir
