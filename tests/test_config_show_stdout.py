"""``plugtron config show ... > resolved.yaml`` gives a YAML file: log lines (the virtual-pipeline
note, plugin warnings) go to standard error. One subprocess (the logging set-up is per process) runs
``config show`` for several option combinations, each followed by a separator line."""

import subprocess
import sys

import yaml

COMBOS = [
    [],
    ["--world-size", "2", "model.pipeline_model_parallel_size=2", "model.virtual_pipeline_model_parallel_size=2"],
    ["moe_token_drop={}"],  # dense model: one warning
    ["deepep={}"],  # dense model: one warning
    ["--world-size", "2", "model.pipeline_model_parallel_size=2", "comm_overlap={}"],
    ["--section", "train", "train.train_iters=70"],
]
SEP = "#--- next ---"


def test_config_show_stdout_is_yaml_for_every_combination():
    code = ("import sys\nfrom plugtron.cli import main\n"
            f"for args in {COMBOS!r}:\n"
            "    rc = main(['config', 'show', *args])\n"
            f"    print({SEP!r} + ' rc=' + str(rc), flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "virtual pipeline on gloo" in proc.stderr  # the log line exists, on standard error
    parts = proc.stdout.split(SEP)
    assert len(parts) == len(COMBOS) + 1
    for args, text, tail in zip(COMBOS, parts, parts[1:]):
        assert tail.startswith(" rc=0"), (args, proc.stderr[-2000:])
        body = text.split("\n", 1)[1] if text.startswith(" rc=") else text  # drop the previous separator's rc
        doc = yaml.safe_load(body)
        assert isinstance(doc, dict) and doc, (args, body[:500])
        assert "[plugtron]" not in body, args
    last = yaml.safe_load(parts[-2].split("\n", 1)[1])
    assert last.get("train", last)["train_iters"] == 70
