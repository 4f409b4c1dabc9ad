"""best_loss: the lowest validation loss of a run, kept across resumes and added to every log record."""

import attrs


class BestLoss:
    """Tracks the best validation loss; ``plugins.best_loss.enabled: true`` switches it on."""

    @attrs.define(kw_only=True)
    class Settings:
        min_delta: float = attrs.field(default=0.0, metadata={"help": "smallest improvement that counts"})

    def __init__(self, config, settings):
        self.min_delta = settings.min_delta
        self.best = None  # (iteration, loss)

    def on_eval(self, state, split, metrics):
        if split == "valid" and (self.best is None or metrics["loss"] < self.best[1] - self.min_delta):
            self.best = (state.iteration, metrics["loss"])

    def collect_metrics(self, state):
        return {} if self.best is None else {"best_valid_loss": self.best[1]}

    def on_save(self, state, checkpoint_dir):
        return None if self.best is None else {"iteration": self.best[0], "loss": self.best[1]}

    def on_load(self, state, checkpoint_dir, plugin_state):
        if plugin_state is not None:
            self.best = (plugin_state["iteration"], plugin_state["loss"])
