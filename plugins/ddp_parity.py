"""Data-parallel parity check (former NeMo ``DdpParityChecker``).

Toggle: ``train.check_weight_hash_across_dp_replicas_interval`` (Megatron-LM's
``--check-weight-hash-across-dp-replicas-interval``). Every that many iterations, after the
optimizer step, every data-parallel replica hashes its parameters and the hashes are compared across
replicas with Megatron-Core's ``check_param_hashes_across_dp_replicas``. Replicas that silently
drift apart (a non-deterministic kernel, a skipped all-reduce, a bit flip) would otherwise keep
training on different weights and save whichever rank 0 holds.

Cost: an all-gather of one SHA-1 per parameter over the data-parallel group (collective on every
rank), after copying every parameter to the CPU to hash it (a GPU-CPU sync): meant for an interval
of hundreds of steps, not every step.
"""

from __future__ import annotations

import logging

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")


class ReplicasDiverged(RuntimeError):
    """The data-parallel replicas no longer hold the same weights."""


class DDPParity:
    @staticmethod
    def config_problems(config):
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        interval = config.train.check_weight_hash_across_dp_replicas_interval
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            return ["train.check_weight_hash_across_dp_replicas_interval: expected an interval >= 1 "
                    f"(or null to switch the check off), got {interval!r}"]
        return []

    def __init__(self, config):
        self.interval = config.train.check_weight_hash_across_dp_replicas_interval
        self.checks = 0  # observable in tests and logs

    @hookimpl
    def on_step(self, state, metrics):
        if metrics.iteration % self.interval:
            return
        from megatron.core.utils import check_param_hashes_across_dp_replicas

        # cross_check: every rank compares every replica's hashes, so all ranks agree on the verdict
        # and raise together (no rank left waiting in the next collective).
        if not check_param_hashes_across_dp_replicas(state.model, cross_check=True):
            raise ReplicasDiverged(
                f"data-parallel replicas hold different weights after iteration {metrics.iteration} "
                "(Megatron's log above names the parameters)"
            )
        self.checks += 1
