"""plugtron.run: the overrides each NeMo-Run plugin emits, the executor settings it makes, and a
run.Script task executed by NeMo-Run's LocalExecutor whose overrides reach the checkpoint's
run_config.yaml. The tests that use NeMo-Run itself need the nemo-run extra
(``pip install 'plugtron[nemo-run]'``, also in the test extra; it pins leptonai < 0.28, which
nemo_run 0.11 needs) and say so when it is missing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import SMALL

from plugtron.config import load_config, parse_overrides
from plugtron.run import overrides


def _nemo_run():
    try:
        import nemo_run
    except ImportError as err:
        pytest.skip(f"needs the nemo-run extra, pip install 'plugtron[nemo-run]' (import nemo_run: {err})")
    return nemo_run


def test_without_nemo_run_the_plugins_name_the_extra(monkeypatch):
    import plugtron.run

    monkeypatch.setitem(sys.modules, "nemo_run", None)
    monkeypatch.setitem(sys.modules, "plugtron.run.plugins", None)
    with pytest.raises(ImportError, match=r"plugtron.run.NsysPlugin needs NeMo-Run: pip install 'plugtron\[nemo-run\]'"):
        plugtron.run.NsysPlugin
    with pytest.raises(ImportError, match=r"plugtron_script needs NeMo-Run"):
        plugtron.run.plugtron_script()


def test_override_values_read_back_as_written():
    assert overrides.yaml_value([0, 3]) == "[0,3]" and overrides.yaml_value(True) == "true"
    args = overrides.wandb("2024", entity="team", name="run one", save_dir="/tmp/wandb")
    assert args[0] == "logger.wandb_project='2024'"  # a bare 2024 would be read as a number
    # The logger.wandb_* fields belong to the wandb plugin (another branch); here: the values parse as strings.
    assert parse_overrides(args)["logger"] == {"wandb_project": "2024", "wandb_entity": "team",
                                               "wandb_exp_name": "run one", "wandb_save_dir": "/tmp/wandb"}


def test_training_path_does_not_import_plugtron_run():
    code = ("import sys, plugtron.training, plugtron.cli.main; "
            "assert 'plugtron.run' not in sys.modules and 'nemo_run' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def _setup(plugin, executor, args=()):
    from plugtron.run import plugtron_script

    task = plugtron_script(overrides=list(args))
    plugin.setup(task, executor)
    return task.args[3:]  # after "train --recipe tiny"


def _slurm():
    run = _nemo_run()

    return run.SlurmExecutor(account="acct", tunnel=run.LocalTunnel(job_dir="/tmp"))


def test_each_plugin_emits_plugtron_overrides_and_sets_the_executor(monkeypatch):
    run = _nemo_run()

    from plugtron.run import FaultTolerancePlugin, NsysPlugin, PreemptionPlugin, PyTorchProfilerPlugin, WandbPlugin

    slurm = _slurm()
    nsys = _setup(NsysPlugin(profile_step_start=10, profile_step_end=12, profile_ranks=[0, 1]), slurm)
    assert nsys == ["profiling.use_nsys_profiler=true", "profiling.profile_step_start=10",
                    "profiling.profile_step_end=12", "profiling.profile_ranks=[0,1]", "profiling.record_shapes=false"]
    launcher = slurm.get_launcher()
    assert launcher.nsys_profile and launcher.nsys_trace == ["nvtx", "cuda"] and "%q{SLURM_PROCID}" in launcher.nsys_filename

    torch_prof = _setup(PyTorchProfilerPlugin(profile_step_start=2, profile_step_end=4, record_memory_history=True),
                        run.LocalExecutor())
    cfg = load_config(None, SMALL + nsys[1:] + torch_prof)  # the values are plugtron's, typed as it reads them
    p = cfg.profiling
    assert (p.use_pytorch_profiler, p.record_memory_history, p.profile_step_start, p.profile_ranks) == (True, True, 2, [0])
    assert load_config(None, nsys).profiling.use_nsys_profiler

    slurm = _slurm()
    assert _setup(PreemptionPlugin(preempt_time=120), slurm) == ["train.exit_signal_handler=true"]
    assert slurm.signal == "TERM@120"
    local = run.LocalExecutor()
    _setup(PreemptionPlugin(), local)
    assert not hasattr(local, "signal")

    local = run.LocalExecutor()
    ft = _setup(FaultTolerancePlugin(), local)
    assert ft == ["ft.enable_ft_package=true", "ft.calc_ft_timeouts=true"]
    assert load_config(None, ft).ft.calc_ft_timeouts
    assert isinstance(local.launcher, run.FaultTolerance) and local.launcher.max_restarts == 3 and local.retries == 2

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    local = run.LocalExecutor()
    assert _setup(WandbPlugin(project="p"), local) == [] and "WANDB_API_KEY" not in local.env_vars
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert _setup(WandbPlugin(project="p", name="n"), local) == ["logger.wandb_project=p", "logger.wandb_exp_name=n",
                                                               "logger.wandb_save_dir=/nemo_run/wandb"]
    assert local.env_vars["WANDB_API_KEY"] == "k"


def test_plugins_refuse_tasks_that_are_not_scripts():
    run = _nemo_run()

    from plugtron.run import PreemptionPlugin

    with pytest.raises(TypeError, match="work on run.Script tasks"):
        PreemptionPlugin().setup(run.Partial(print, "x"), run.LocalExecutor())


@pytest.mark.slow  # NeMo-Run starts the training as a subprocess (tens of seconds on a busy CPU)
def test_a_script_task_trains_through_the_local_executor(tmp_path, monkeypatch):
    run = _nemo_run()

    from plugtron.run import PreemptionPlugin, WandbPlugin, plugtron_script

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run.config.set_nemorun_home(str(tmp_path / "nemo_run"))
    ckpt = tmp_path / "ckpt"
    task = plugtron_script(overrides=SMALL + ["train.train_iters=2", "train.eval_interval=null",
                                              f"checkpoint.save={ckpt}"], python=sys.executable)
    run.run(task, executor=run.LocalExecutor(env_vars={"OMP_NUM_THREADS": "1"}), name="tiny",
            plugins=[PreemptionPlugin(preempt_time=30), WandbPlugin(project="p")], tail_logs=False)
    logs = "".join(p.read_text() for p in (tmp_path / "nemo_run").rglob("*.log"))
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2", logs[-3000:]
    saved = yaml.safe_load((ckpt / "iter_0000002" / "run_config.yaml").read_text())
    assert saved["train"]["exit_signal_handler"] is True  # PreemptionPlugin's override reached the config
    assert saved["train"]["train_iters"] == 2
    # no WANDB_API_KEY: the W&B plugin added nothing (the logger's wandb_* fields keep their defaults)
    assert {k: v for k, v in saved["logger"].items() if k.startswith("wandb_") and v is not None} == {}
    assert os.environ.get("WANDB_API_KEY") is None
