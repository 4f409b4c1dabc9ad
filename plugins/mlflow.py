"""MLflow tracking (former NeMo ``MLFlowLogger``; Bridge's MLflow writer).

Toggle: ``logger.mlflow_experiment``. One MLflow run on global rank 0 in that experiment, named
``logger.mlflow_run_name``, tagged with ``logger.mlflow_tags``. Its params are the resolved config
flattened to dotted keys (``optimizer.lr``); every ``on_log`` record is logged at its iteration as
``train/<key>`` metrics - the loop's keys and every metric other plugins contribute through
``collect_metrics`` - and evaluations as ``valid/loss``, ``valid/ppl`` (``test/...``).

Where: ``logger.mlflow_tracking_uri`` (a server, ``sqlite:///...``, ...); unset, a local store in
``mlruns/`` of the run's output directory (the directory of ``metrics.jsonl``): an SQLite database
``mlruns/mlflow.db`` with artifacts in ``mlruns/artifacts``. Not MLflow's plain-file store: MLflow 3
refuses it by default (maintenance mode), so a ``file://`` or plain-path URI is a config error naming
the field and the stores that work, as are a scheme no MLflow store handles and an SQLite database in
a directory this machine cannot write (``plugtron.plugins.logger_checks``, before the model is built). View it with
``mlflow ui --backend-store-uri sqlite:///<dir>/mlruns/mlflow.db``.

Status: FINISHED at the end; FAILED when the run raises (``on_exception``); KILLED when it stops on
a signal (the preemption plugin's stop, or Ctrl-C). Each published checkpoint's path is the tag
``plugtron.checkpoint`` (at the end: the final one). The run id is saved with every checkpoint
(``on_save``), so a resumed training continues the same MLflow run.

Limits: MLflow takes at most 100 params per call and 6000 characters per value: params are sent in
batches of 100, longer values are cut (ending in ``...``). Cost: one store write per log step on rank 0.

MLflow is an optional extra (``pip install 'plugtron[mlflow]'``), imported only when this plugin is
enabled; enabling it without the package is a config error naming the extra.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterator, Optional, Tuple

from plugtron.errors import ConfigError
from plugtron.hookspecs import hookimpl
from plugtron.plugins import logger_checks
from plugtron.plugins.optional_package import missing_extra
from plugtron.metrics_records import numeric_items, output_dir

PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
MAX_VALUE = 6000  # MAX_PARAM_VAL_LENGTH
CHECKPOINT_TAG = "plugtron.checkpoint"


def flatten(tree: Any, prefix: str = "") -> Iterator[Tuple[str, str]]:
    """``("a.b.c", "value")`` for every leaf of nested dicts; lists and scalars are leaves."""
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            yield from flatten(v, f"{prefix}{k}.")
    else:
        text = str(tree)
        yield prefix[:-1], text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."


def default_tracking_uri(config) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(output_dir(config), "mlruns", "mlflow.db"))


class MLflow:
    @staticmethod
    def config_problems(config):
        missing = missing_extra("logger.mlflow_experiment", "mlflow", "mlflow")
        return missing or logger_checks.mlflow_uri_problems(config.logger.mlflow_tracking_uri)

    def __init__(self, config):
        # before the model is built: what MLflow would refuse at on_train_start on this machine
        uri = config.logger.mlflow_tracking_uri
        problems = logger_checks.mlflow_scheme_problems(uri) + [p for p in [logger_checks.sqlite_dir_problem(uri)] if p]
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.client = None
        self.run_id: Optional[str] = None  # from the checkpoint on resume

    @hookimpl
    def on_load(self, state, plugin_state):
        if plugin_state:
            self.run_id = plugin_state.get("run_id")

    def _open_run(self, client, lg) -> str:
        """The resumed run when the checkpoint names one this store has, else a new run."""
        from mlflow.exceptions import MlflowException

        if self.run_id is not None:
            try:
                client.update_run(self.run_id, status="RUNNING")
                return self.run_id
            except MlflowException:
                pass  # another store (tracking URI changed): start a new run
        uri = client.tracking_uri
        exp = client.get_experiment_by_name(lg.mlflow_experiment)
        if exp is not None:
            exp_id = exp.experiment_id
        else:
            artifacts = None
            if uri.startswith("sqlite:///") and lg.mlflow_tracking_uri is None:  # our local store
                artifacts = os.path.join(os.path.dirname(uri[len("sqlite:///"):]), "artifacts")
            exp_id = client.create_experiment(lg.mlflow_experiment, artifact_location=artifacts)
        return client.create_run(exp_id, run_name=lg.mlflow_run_name, tags=dict(lg.mlflow_tags or {})).info.run_id

    @hookimpl
    def on_train_start(self, state):
        if not state.is_rank0:
            return
        import yaml
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient  # the optional extra, checked by config_problems

        from plugtron.config import to_yaml

        lg = self.config.logger
        uri = lg.mlflow_tracking_uri or default_tracking_uri(self.config)
        if uri.startswith("sqlite:///"):
            os.makedirs(os.path.dirname(uri[len("sqlite:///"):]), exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri)
        resumed = self.run_id is not None
        self.run_id = self._open_run(self.client, lg)
        if resumed and self.client.get_run(self.run_id).data.params:
            return  # params are immutable in MLflow; the resumed run has them already
        params = [Param(k, v) for k, v in flatten(yaml.safe_load(to_yaml(self.config)))]
        for i in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + PARAMS_PER_BATCH])

    def _log(self, values: Dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    @hookimpl
    def on_log(self, state, log):
        if self.client is not None:
            self._log(numeric_items(log, "train"), log["iteration"])

    @hookimpl
    def on_eval_log(self, state, split, log):
        if self.client is not None:
            self._log(numeric_items(log, split, skip=("iteration", "iters")), state.iteration)

    @hookimpl
    def on_checkpoint_published(self, state, checkpoint_dir):
        if self.client is not None:
            self.client.set_tag(self.run_id, CHECKPOINT_TAG, os.path.abspath(checkpoint_dir))

    @hookimpl
    def on_save(self, state, checkpoint_dir):
        return {"run_id": self.run_id} if self.run_id is not None else None  # rank 0 only has one

    def _end(self, status: str) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.set_terminated(self.run_id, status=status)

    @hookimpl
    def on_train_end(self, state):
        signalled = bool(state.stop_reason) and "preemption" in state.stop_reason
        self._end("KILLED" if signalled else "FINISHED")

    @hookimpl
    def on_exception(self, state, exc):
        self._end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
