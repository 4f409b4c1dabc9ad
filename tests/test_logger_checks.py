"""Every logger backend's settings are checked before the model is built: a tracking store MLflow
refuses, a scheme no MLflow store handles, a directory that cannot be made or written is one config
error naming the field (with the alternatives that work), from ``config show`` where the config alone
decides and from the plugin load in ``train`` where this machine's file system does."""

import os

import pytest

from plugtron import cli
from plugtron.config import load_config
from plugtron.errors import ConfigError
from plugtron.plugin_manager import PluginManager


class NeverBuilt:
    def configure_model(self, config, provider):
        raise AssertionError("the model was about to be built")


def _load(overrides):
    cfg = load_config(None, overrides)
    cfg.validate()
    pm = PluginManager()
    pm.register("never_built", NeverBuilt())
    return pm.load(cfg)


@pytest.mark.parametrize("uri", ["file:///tmp/plugtron-mlruns", "./mlruns", "/tmp/mlruns"])
def test_mlflow_file_store_is_refused_by_config_show_naming_the_field_and_the_alternatives(uri, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert cli.main(["config", "show", "logger.mlflow_experiment=e", f"logger.mlflow_tracking_uri={uri}"]) == 2
    err = capsys.readouterr().err
    assert f"logger.mlflow_tracking_uri: {uri!r} is MLflow's file store, which MLflow 3 refuses" in err
    assert "sqlite:///" in err and "http(s)://" in err and "Traceback" not in err
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own opt-out is honoured
    assert cli.main(["config", "show", "logger.mlflow_experiment=e", f"logger.mlflow_tracking_uri={uri}",
                     "--section", "logger"]) == 0


def test_mlflow_unknown_scheme_and_unwritable_sqlite_dir_stop_before_the_build(tmp_path):
    with pytest.raises(ConfigError, match=r"logger.mlflow_tracking_uri: 'nosuch://x': .*sqlite:///"):
        _load(["logger.mlflow_experiment=e", "logger.mlflow_tracking_uri=nosuch://x"])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"logger.mlflow_tracking_uri: .*afile is a file"):
        _load(["logger.mlflow_experiment=e", f"logger.mlflow_tracking_uri=sqlite:///{tmp_path}/afile/db/mlflow.db"])
    _load(["logger.mlflow_experiment=e", f"logger.mlflow_tracking_uri=sqlite:///{tmp_path}/ok/mlflow.db"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: the permission case needs a normal user")
def test_no_permission_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match=r"logger.tensorboard_dir: .*no permission to write"):
        _load([f"logger.tensorboard_dir={locked}/tb"])


@pytest.mark.parametrize("field,extra", [("logger.tensorboard_dir", []),
                                         ("logger.wandb_save_dir", ["logger.wandb_project=p", "logger.wandb_mode=offline"])])
def test_directories_that_cannot_be_made_stop_before_the_build(tmp_path, field, extra):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=rf"{field}: .* cannot be a directory: .*afile is a file"):
        _load([f"{field}={tmp_path}/afile/sub", *extra])
