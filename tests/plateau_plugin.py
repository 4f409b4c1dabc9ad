"""plateau: stop (and save) after ``patience`` evaluations without improvement - the early-stopping
plugin of issue 28, written against docs/plugins.md; tests/test_plugin_authors.py runs it."""

import attrs


class Plateau:
    """Stops the run when the validation loss has not improved for ``patience`` evaluations."""

    @attrs.define(kw_only=True)
    class Settings:
        patience: int = attrs.field(default=3, metadata={"help": "evaluations without improvement before stopping"})
        min_delta: float = attrs.field(default=0.0, metadata={"help": "smallest improvement that counts"})

    checked = []  # (settings, config.plugins entry) seen by config_problems - for the tests

    @staticmethod
    def config_problems(config, settings):
        Plateau.checked.append((settings, config.plugins["plateau"]))
        t = config.train
        if not t.eval_interval:
            return ["train.eval_interval: plateau needs evaluations (set an interval)"]
        if t.eval_interval * settings.patience > t.train_iters:
            return [f"plugins.plateau.options.patience: {settings.patience} evaluations every {t.eval_interval} "
                    f"iterations cannot stop a run of train.train_iters={t.train_iters}"]
        return []

    def __init__(self, config, settings):
        self.settings = settings
        self.best, self.bad = None, 0

    def on_eval(self, state, split, metrics):
        if split != "valid":
            return
        if self.best is None or metrics["loss"] < self.best - self.settings.min_delta:
            self.best, self.bad = metrics["loss"], 0
        else:
            self.bad += 1
        if self.bad >= self.settings.patience:
            state.request_stop(f"plateau: no improvement in {self.bad} evaluations", save=True)

    def collect_metrics(self, state, split):
        return {} if split == "train" or self.best is None else {"best_loss": self.best, "evals_without_improvement": self.bad}

    def on_save(self, state, checkpoint_dir):
        return {"best": self.best, "bad": self.bad}

    def on_load(self, state, checkpoint_dir, plugin_state):
        if plugin_state is not None:
            self.best, self.bad = plugin_state["best"], plugin_state["bad"]
