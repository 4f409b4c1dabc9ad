"""The console progress: a first line right after the run's first step (a print, not an on_log
record), an ETA averaged over a window of steps, and logger.logging_level honoured."""

import logging
from types import SimpleNamespace

from plugtron.testing import run_training
from plugtron.training.metrics import ETA_WINDOW, LogWindow, StepMetrics

from helpers import LogRecords


def test_first_line_after_step_one_while_on_log_keeps_its_interval(caplog):
    sees = LogRecords()
    with caplog.at_level(logging.INFO, logger="plugtron"):
        run_training(["logger.log_interval=3", "train.train_iters=4", "logger.metrics_file=false"], plugins={"sees": sees})
    seen = [r["iteration"] for r in sees.records]
    lines = [r.getMessage() for r in caplog.records]
    first = [i for i, m in enumerate(lines) if m.startswith("first step done: iteration 1/4 | loss ")]
    regular = [i for i, m in enumerate(lines) if m.startswith("iter ")]
    assert len(first) == 1 and len(regular) == 2 and first[0] < regular[0]
    assert seen == [3, 4]  # the early line fired no hook


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_eta_is_a_window_mean_that_one_slow_step_barely_moves():
    clock = _Clock()
    state = SimpleNamespace(iteration=0)
    cfg = SimpleNamespace(train=SimpleNamespace(train_iters=1000))
    window = LogWindow(cfg, state, clock=clock)

    def step(seconds):
        clock.t += seconds
        state.iteration += 1
        window.add(StepMetrics(iteration=state.iteration, loss=None, grad_norm=None, lr=0.0, skipped=False))

    step(30.0)  # a slow first step (warm-up) ...
    for _ in range(ETA_WINDOW):
        step(1.0)
    assert window.eta_s() == 1.0 * (1000 - state.iteration)  # ... has aged out of the window
    step(21.0)  # one slow step: +20 s spread over the window, not a 21x jump
    assert abs(window.eta_s() - 2.0 * (1000 - state.iteration)) < 1e-9


def test_logging_level_hides_info_lines(caplog):
    with caplog.at_level(logging.DEBUG):  # the root captures everything: only plugtron's own level filters
        run_training(["logger.logging_level=30", "train.train_iters=2", "logger.metrics_file=false"])
    assert not [r for r in caplog.records if r.name == "plugtron" and r.levelno < logging.WARNING]
    logging.getLogger("plugtron").setLevel(logging.NOTSET)
