"""The loop on real Megatron-Core: loss falls, hooks fire in the documented order, and TP/DP/PP
runs on 2 gloo processes agree with one process."""

import pytest

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager, hook_names
from plugtron.training import train

from helpers import SMALL, torchrun_runs


class Transcript:
    """Records every hook call, in order, with the step it saw."""

    def __init__(self):
        self.calls = []

    def configure_model(self, config, provider):
        self.calls.append("configure_model")

    def transform_model(self, config, model):
        assert model and not any(hasattr(c, "no_sync") for c in model)  # bare chunks: DDP comes after
        self.calls.append("transform_model")

    def on_train_start(self, state):
        self.calls.append(f"on_train_start@{state.iteration}")

    def on_step_start(self, state):
        self.calls.append(f"on_step_start@{state.iteration}")

    def on_before_optimizer_step(self, state):
        chunk = state.model[0]
        assert any(p.main_grad.abs().sum() > 0 for p in chunk.parameters())  # reduced gradients are there
        self.calls.append(f"on_before_optimizer_step@{state.iteration}")

    def on_step(self, state, metrics):
        assert metrics.loss is not None and metrics.grad_norm is not None and metrics.lr >= 0
        self.calls.append(f"on_step@{metrics.iteration}")

    def collect_metrics(self, state, split):
        self.calls.append(f"collect_metrics{'' if split == 'train' else ':' + split}@{state.iteration}")
        return {"transcript_calls": len(self.calls)}

    def on_log(self, state, log):
        assert set(log) >= {"iteration", "loss", "lr", "grad_norm", "tokens_per_sec", "elapsed_s", "eta_s"}
        assert log["transcript_calls"] == len(self.calls)  # collect_metrics' dict merged into the record
        self.calls.append(f"on_log@{log['iteration']}")

    def on_eval_start(self, state, split):
        self.calls.append(f"on_eval_start:{split}@{state.iteration}")

    def on_eval(self, state, split, metrics):
        assert metrics["loss"] > 0
        self.calls.append(f"on_eval:{split}@{state.iteration}")

    def on_eval_log(self, state, split, log):
        assert log["transcript_calls"] == len(self.calls) and log["iteration"] == state.iteration
        self.calls.append(f"on_eval_log:{split}@{state.iteration}")

    def on_before_save(self, state):
        self.calls.append(f"on_before_save@{state.iteration}")

    def on_save(self, state, checkpoint_dir):
        self.calls.append(f"on_save@{state.iteration}")

    def on_checkpoint_published(self, state, checkpoint_dir):
        import os

        assert os.path.isfile(os.path.join(checkpoint_dir, "manifest.json"))  # complete and visible
        self.calls.append(f"on_checkpoint_published:{os.path.basename(checkpoint_dir)}@{state.iteration}")

    def on_load(self, state, checkpoint_dir, plugin_state):
        assert plugin_state is None  # on_save returned nothing: nothing saved for this plugin
        self.calls.append(f"on_load@{state.iteration}")

    def on_train_end(self, state):
        self.calls.append(f"on_train_end@{state.iteration}")

    def on_exception(self, state, exc):
        self.calls.append(f"on_exception:{type(exc).__name__}")


def test_golden_hook_transcript(tmp_path):
    """Every hook of a real run, in order: 3 steps with eval and checkpoints, then a resume."""
    ckpt = f"checkpoint.save={tmp_path}"
    pm = PluginManager()
    rec = Transcript()
    pm.register("transcript", rec)
    cfg = load_config(None, SMALL + ["train.train_iters=3", "train.eval_interval=2", "train.eval_iters=1",
                                     "logger.log_interval=2", ckpt, "checkpoint.save_interval=2"])
    train(cfg, plugin_manager=pm)
    assert rec.calls == [
        "configure_model", "transform_model",
        "on_train_start@0",
        "on_step_start@0", "on_before_optimizer_step@0", "on_step@1",
        "on_step_start@1", "on_before_optimizer_step@1", "on_step@2", "collect_metrics@2", "on_log@2",
        "on_eval_start:valid@2", "on_eval:valid@2", "collect_metrics:valid@2", "on_eval_log:valid@2", "on_before_save@2", "on_save@2", "on_checkpoint_published:iter_0000002@2",
        "on_step_start@2", "on_before_optimizer_step@2", "on_step@3", "collect_metrics@3", "on_log@3",
        "on_before_save@3", "on_save@3", "on_checkpoint_published:iter_0000003@3",  # save-last
        "on_train_end@3",
    ]
    pm = PluginManager()
    rec = Transcript()
    pm.register("transcript", rec)
    train(load_config(None, SMALL + ["train.train_iters=4", "train.eval_interval=null", "logger.log_interval=2",
                                     "scheduler.override_opt_param_scheduler=true",  # train_iters grew
                                     ckpt, f"checkpoint.load={tmp_path}"]), plugin_manager=pm)
    assert rec.calls == [
        "configure_model", "transform_model",
        "on_load@3",
        "on_train_start@3",
        "on_step_start@3", "on_before_optimizer_step@3", "on_step@4", "collect_metrics@4", "on_log@4",
        "on_before_save@4", "on_save@4", "on_checkpoint_published:iter_0000004@4",
        "on_train_end@4",
    ]


def test_async_save_publishes_after_a_later_step(tmp_path):
    """With async_save the checkpoint of step 2 is published (and its hook fires) only once the
    background write is done: at a later step or, at the latest, before the save-last."""
    pm = PluginManager()
    rec = Transcript()
    pm.register("transcript", rec)
    train(load_config(None, SMALL + ["train.train_iters=4", "train.eval_interval=null", "logger.log_interval=100",
                                     f"checkpoint.save={tmp_path}", "checkpoint.save_interval=2",
                                     "checkpoint.async_save=true"]), plugin_manager=pm)
    published = [c for c in rec.calls if c.startswith("on_checkpoint_published")]
    assert [c.split("@")[0] for c in published] == ["on_checkpoint_published:iter_0000002", "on_checkpoint_published:iter_0000004"]
    assert int(published[0].split("@")[1]) >= 2 and rec.calls.index(published[0]) > rec.calls.index("on_save@2")
    assert rec.calls.index(published[1]) > rec.calls.index("on_save@4") and rec.calls[-1] == "on_train_end@4"


def test_exception_hook_fires_and_error_propagates():
    class Boom:
        def on_step(self, state, metrics):
            raise RuntimeError("plugin failure")

    pm = PluginManager()
    rec = Transcript()
    pm.register("transcript", rec)
    pm.register("boom", Boom())
    from plugtron.errors import PluginError

    with pytest.raises(PluginError, match="plugin 'boom' .* raised in on_step: RuntimeError: plugin failure"):
        train(load_config(None, SMALL + ["train.train_iters=3", "train.eval_interval=null"]), plugin_manager=pm)
    assert rec.calls[-1] == "on_exception:PluginError"


def test_hooks_in_transcript_cover_the_specs():
    recorded = {c for c in Transcript.__dict__ if not c.startswith("_")}
    assert recorded == set(hook_names())


def test_loss_decreases_on_default_recipe():
    cfg = load_config(None, ["train.train_iters=40", "train.eval_interval=null", "logger.log_interval=10",
                             "scheduler.lr_warmup_iters=5"])
    losses = train(cfg)["losses"]
    assert len(losses) == 40
    assert losses[0] > 5.0  # ~ln(257) at init
    assert sum(losses[-5:]) / 5 < losses[0] - 1.5, losses


def test_manual_gc_plugin_in_a_real_run():
    import gc

    pm = PluginManager()
    cfg = load_config(None, SMALL + ["train.train_iters=4", "train.eval_interval=2", "train.eval_iters=1",
                                     "train.manual_gc=true", "train.manual_gc_interval=2"])
    train(cfg, plugin_manager=pm)
    plugin = pm.loaded["manual_gc"]
    assert plugin.collections == 1 + 2 + 4  # start, steps 2 and 4, around 2 evals
    assert gc.isenabled()


def _single(overrides):
    return train(load_config(None, overrides))


FIRST_STEP = SMALL + ["train.train_iters=2", "train.eval_interval=null"]
LEARNS = SMALL + ["model.num_layers=4", "train.train_iters=30", "train.eval_interval=null", "optimizer.lr=3e-3"]
TWO_PROCESS = {  # name -> (one-process overrides, the two-process layout)
    "tp2": (FIRST_STEP, ["model.tensor_model_parallel_size=2"]),
    "dp2": (FIRST_STEP, []),
    "pp2": (LEARNS, ["model.pipeline_model_parallel_size=2"]),
    "pp2-vpp2": (LEARNS, ["model.pipeline_model_parallel_size=2", "model.virtual_pipeline_model_parallel_size=2"]),
}


@pytest.fixture(scope="module")
def two_process(tmp_path_factory):
    """name -> (one-process losses, two-process losses): each reference run once, every layout in
    one two-process launch."""
    refs = {id(common): _single(common)["losses"] for common, _ in TWO_PROCESS.values()}
    got = torchrun_runs(tmp_path_factory.mktemp("two_process"), "run",
                        [common + layout for common, layout in TWO_PROCESS.values()])
    return {name: (refs[id(common)], summary["losses"]) for (name, (common, _)), summary in zip(TWO_PROCESS.items(), got)}


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp2", "dp2"])
def test_two_process_first_step_matches_one_process(two_process, layout):
    ref, got = two_process[layout]
    assert abs(got[0] - ref[0]) < 1e-5, (got, ref)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["pp2", "pp2-vpp2"])
def test_pipeline_parallel_learns(two_process, layout):
    ref, got = two_process[layout]
    assert len(got) == 30
    drop_ref, drop = ref[0] - min(ref[-5:]), got[0] - min(got[-5:])
    assert drop > 1.0 and drop > 0.7 * drop_ref, (got, ref)


def test_train_step_restores_training_mode_only_when_needed():
    import torch

    from plugtron.training.step import ensure_train_mode

    chunk = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(2, 2)))
    chunk.register_module("unused", None)
    chunk[1][0].eval()  # e.g. a plugin switched one submodule to eval
    ensure_train_mode(chunk)
    assert all(m.training for m in chunk.modules())
    chunk.eval()
    ensure_train_mode(chunk)
    assert all(m.training for m in chunk.modules())
