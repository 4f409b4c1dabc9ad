from plugtron.testing import fake_state

from plugtron_example_plugin import BestLoss


def test_keeps_the_lowest_valid_loss():
    plugin = BestLoss(None, BestLoss.Settings(min_delta=0.1))
    for it, loss in [(2, 5.0), (4, 4.95), (6, 4.0)]:
        plugin.on_eval(fake_state(it), "valid", {"loss": loss})
    assert plugin.best == (6, 4.0)


def test_best_loss_survives_a_resume(plugtron_run):
    first = plugtron_run(["train.train_iters=4"], ["best_loss"])  # the installed plugin, by name
    best = first.plugins["best_loss"].best
    assert best == min(first.eval["valid"], key=lambda e: e[1])
    again = plugtron_run.resume(first, ["train.eval_interval=100"], ["best_loss"])
    assert again.plugins["best_loss"].best == best and "on_load@4" in again.transcript
