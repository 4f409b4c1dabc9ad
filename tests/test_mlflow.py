"""The mlflow plugin on its default local store (SQLite in <output dir>/mlruns; MLflow 3 refuses
its plain-file store by default): params are the flattened config, metrics per log step (a
contributed one included) and eval, the final checkpoint path as a tag; FAILED after a raising
plugin, KILLED after a signal stop; the run id survives a resume; a missing package is one config
error naming the extra."""

import os
import signal
import sys

import pytest

from plugtron.config import load_config
from plugtron.errors import ConfigError, PluginError
from plugtron.plugin_manager import PluginManager
from plugtron.plugins.mlflow import CHECKPOINT_TAG, flatten
from plugtron.testing import resume, run_training


class Contributes:
    def collect_metrics(self, state):
        return {"test_metric": 10.0 * state.iteration}


class RaiseAt:
    def __init__(self, at, exc=RuntimeError):
        self.at, self.exc = at, exc

    def on_step(self, state, metrics):
        if state.iteration == self.at:
            raise self.exc(f"simulated failure at {self.at}")


class SignalAt:
    """Sends this process the preemption signal after step ``at``: the preemption plugin stops the run."""

    def __init__(self, at):
        self.at = at

    def on_step(self, state, metrics):
        if state.iteration == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def _client(out_dir):
    from mlflow.tracking import MlflowClient

    db = out_dir / "mlruns" / "mlflow.db"
    assert db.exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    [run] = client.search_runs([client.get_experiment_by_name("plugtron-test").experiment_id])
    return client, run


def _history(client, run, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


def _mlflow(*extra):
    return ["logger.mlflow_experiment=plugtron-test", "logger.mlflow_run_name=tiny", "logger.mlflow_tags={team: llm}",
            "logger.metrics_file=false", *extra]


def test_params_metrics_tags_and_checkpoint_path(tmp_path):
    ckpt = tmp_path / "ckpt"
    res = run_training(_mlflow(), plugins={"contributes": Contributes()}, checkpoint_dir=str(ckpt))
    client, run = _client(ckpt)  # the output directory: where checkpoints and metrics.jsonl go
    assert f"mlflow ui --backend-store-uri sqlite:///{ckpt / 'mlruns' / 'mlflow.db'}" in res.plugins["run_summary"].text
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny" and run.data.tags["team"] == "llm"
    params = run.data.params
    assert params["train.train_iters"] == "4" and params["model.hidden_size"] == "64"
    assert params["logger.mlflow_experiment"] == "plugtron-test"
    assert len(params) > 100  # more than one MLflow batch: the batching works
    assert [s for s, _ in _history(client, run, "train/loss")] == [1, 2, 3, 4]
    assert _history(client, run, "train/test_metric") == [(i, 10.0 * i) for i in (1, 2, 3, 4)]
    assert [s for s, _ in _history(client, run, "valid/loss")] == [2, 4]
    assert run.data.tags[CHECKPOINT_TAG] == os.path.join(str(ckpt), "iter_0000004")


def test_raising_plugin_marks_failed_and_resume_continues_the_run(tmp_path):
    ckpt = tmp_path / "ckpt"
    first = run_training(_mlflow("checkpoint.save_interval=2"), checkpoint_dir=str(ckpt))
    client, run = _client(ckpt)
    with pytest.raises(PluginError, match="simulated failure at 5"):
        resume(first, _mlflow(), plugins={"raise": RaiseAt(5)}, train_iters=6)
    client, again = _client(ckpt)  # still exactly one run
    assert again.info.run_id == run.info.run_id and again.info.status == "FAILED"


def test_signal_stop_marks_killed(tmp_path):
    run_training(_mlflow("train.exit_signal_handler=true", "train.train_iters=6"), plugins={"sig": SignalAt(2)},
                 checkpoint_dir=str(tmp_path))
    client, run = _client(tmp_path)
    assert run.info.status == "KILLED"
    saved = sorted(d for d in os.listdir(tmp_path) if d.startswith("iter_"))
    assert saved and saved[-1] < "iter_0000006"  # stopped early, and saved there
    assert run.data.tags[CHECKPOINT_TAG] == os.path.join(str(tmp_path), saved[-1])  # the preemption save


def test_long_values_are_cut_to_mlflows_limit():
    [(key, value)] = flatten({"a": {"b": "x" * 7000}})
    assert key == "a.b" and len(value) == 6000 and value.endswith("...")


def test_missing_package_is_one_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ConfigError) as info:
        PluginManager().load(load_config(None, ["logger.mlflow_experiment=e"]))
    assert "logger.mlflow_experiment" in str(info.value) and "plugtron[mlflow]" in str(info.value)


def test_rank_nonzero_opens_no_run_and_saves_no_state():
    from plugtron.plugins.mlflow import MLflow
    from plugtron.testing import fake_state

    plugin = MLflow(load_config(None, _mlflow("logger.mlflow_tracking_uri=sqlite:////nonexistent/x.db")))
    plugin.on_train_start(fake_state(0, rank=1, world_size=2))  # would fail on the path if it tried
    assert plugin.client is None and plugin.on_save(fake_state(2, rank=1, world_size=2), "x") is None
