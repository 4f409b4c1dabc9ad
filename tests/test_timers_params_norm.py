"""The timers and params_norm plugins: their metrics reach every log record (so every logger), with
plausible values; params_norm matches a direct computation over the weights."""

import math

import torch

from plugtron.testing import run_training


class Sees:
    def __init__(self):
        self.records = []
        self.final_norm = None

    def on_log(self, state, log):
        self.records.append(dict(log))

    def on_train_end(self, state):
        self.final_norm = math.sqrt(sum(float((p.detach().float() ** 2).sum()) for c in state.model for p in c.parameters()))


def test_timers_split_the_step_and_time_the_eval():
    sees = Sees()
    run_training(["logger.log_timers_to_tensorboard=true", "logger.metrics_file=false"], plugins={"sees": sees})
    recs = sees.records
    assert [r["iteration"] for r in recs] == [1, 2, 3, 4]
    for r in recs:
        assert r["time_fwd_bwd_ms"] > 0 and r["time_optimizer_ms"] > 0
        # both phases are inside the step the loop timed (log_interval=1: one step per record)
        assert r["time_fwd_bwd_ms"] + r["time_optimizer_ms"] <= r["step_time_s"] * 1000 * 1.05 + 1
    assert "time_eval_ms" not in recs[0] and recs[2]["time_eval_ms"] > 0  # the eval at 2, seen from 3 on


def test_params_norm_is_the_l2_norm_of_the_weights():
    sees = Sees()
    run_training(["logger.log_params_norm=true", "logger.metrics_file=false"], plugins={"sees": sees})
    norms = [r["params_norm"] for r in sees.records]
    assert len(norms) == 4 and all(n > 0 for n in norms)
    # one process: no duplicates to skip (no TP, untied embeddings), so it is the plain norm of all weights
    assert abs(norms[-1] - sees.final_norm) <= 1e-4 * sees.final_norm
    assert norms[0] != norms[-1]  # it follows training
