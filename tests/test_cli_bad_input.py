"""A sample of bad inputs through the real ``plugtron`` command: exit code 2, one
``plugtron: error:`` message naming the problem, no traceback. Most inputs are refused before torch is
imported (a fraction of a second each); two runs reach the torch-importing checks."""

import os
import shutil
import subprocess
import sys

import pytest

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")


def _bomb():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "x:\n" + "".join(f"  {ln}\n" for ln in lines) + "plugins:\n  p:\n    options:\n      boom: *i\n"


FILES = {
    "dup.yaml": b"train:\n  train_iters: 5\n  train_iters: 6\n",
    "latin1.yaml": "train:\n  name: caf\xe9\n".encode("latin-1"),
    "bomb.yaml": _bomb().encode(),
    "deep.yaml": b"plugins: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    "intkey.yaml": b"1: 2\n",
    "broken.yaml": b"tokenizer: [1,\n",
}

# (arguments, environment, text the one message must contain)
TORCH_FREE = [
    (["config", "show", "dup.yaml"], {}, "dup.yaml:3:3: duplicate key 'train_iters' (first at line 2)"),
    (["config", "show", "latin1.yaml"], {}, "not UTF-8 text (byte 0xe9"),
    (["config", "show", "bomb.yaml"], {}, "expands to more than 20000 values (the limit"),
    (["train", "deep.yaml"], {}, "nested deeper than 32 levels (the limit)"),
    (["plugins", "list", "intkey.yaml"], {}, "keys must be strings, got '1'"),
    (["config", "show", "/tmp/" + "x" * 5000 + ".yaml"], {}, "cannot read config file (File name too long)"),
    (["train", "optimizer.lr=1e-3", "optimizer.lr=3e-4"], {}, "optimizer.lr is given twice on the command line"),
    (["config", "show", "train.train_iters=" + "9" * 5000], {}, "integer with 5000 digits is too long"),
    (["config", "show"], {"WORLD_SIZE": "two"}, "WORLD_SIZE: expected a positive integer"),
    (["train"], {"WORLD_SIZE": "0"}, "WORLD_SIZE: expected a positive integer"),
    (["plugins", "list", "train.manual_gc=no"], {}, "train.manual_gc: expected bool (true or false), got str 'no'"),
    (["data", "preprocess", "--input", "in.jsonl", "--output-prefix", "out", "--config", "broken.yaml"], {},
     "broken.yaml:2:1: invalid YAML"),
]
WITH_TORCH = [
    (["config", "show", "dataset.blend=/data/wiki_text_document", "optimizer.lr=.nan", "rng.seed=1e25"], {},
     ["dataset.blend: expected a list (write [/data/wiki_text_document] for a single item)",
      "optimizer.lr: expected a finite float, got float nan", "rng.seed: expected int, got float 1e+25"]),
    (["train", "model.ffn_hidden_size=-512", "optimizer.optimizer=adamw", "optimizer.adam_beta1=1.5",
      "model.cuda_graph_scope=bogus", "dataset.split='1,2,3,4'"], {},
     ["model.ffn_hidden_size: expected >= 1", "optimizer.optimizer: expected a registered optimizer (`plugtron registry list optimizer`), got str 'adamw' (did you mean 'adam'?)",
      "optimizer.adam_beta1: expected a value in [0, 1)", "model.cuda_graph_scope: expected names from"]),
]


def _run(tmp_path, args, env):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    if "WORLD_SIZE" not in env:
        full_env.pop("WORLD_SIZE", None)
    return subprocess.run([PLUGTRON, *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=300)


def _assert_one_clean_error(proc):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "Exception ignored" not in out, out
    err = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.startswith("[plugtron] "))  # log lines share stderr
    assert err.startswith("plugtron: error: ") and err.count("plugtron: error") == 1, out
    return proc.stderr


@pytest.mark.parametrize("args, env, expected", TORCH_FREE, ids=[" ".join(a)[:40] for a, _, _ in TORCH_FREE])
def test_bad_input_refused_before_torch(tmp_path, args, env, expected):
    assert expected in _assert_one_clean_error(_run(tmp_path, args, env))


@pytest.mark.parametrize("args, env, expected", WITH_TORCH, ids=["structure", "validate"])
def test_bad_values_refused_all_at_once(tmp_path, args, env, expected):
    err = _assert_one_clean_error(_run(tmp_path, args, env))
    for text in expected:
        assert text in err, err


def test_torch_free_refusals_do_not_import_torch(tmp_path):
    """What keeps the sample above cheap: YAML and override errors are found before torch loads."""
    (tmp_path / "dup.yaml").write_bytes(FILES["dup.yaml"])
    code = ("import sys\nfrom plugtron.cli import main\nrc = main(['config', 'show', 'dup.yaml'])\n"
            "assert rc == 2 and 'torch' not in sys.modules, (rc, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_console_keeps_the_status_and_freezes_the_heap_for_a_quick_exit(capsys):
    """The plugtron command's entry (plugtron.cli.entry.console): main's exit status unchanged, then
    the heap collected and frozen, so the interpreter's shutdown does not walk it (it took seconds
    per process after every run)."""
    import gc

    from plugtron.cli.entry import console

    try:
        assert console(["train", "optimizer.lr=1e-3", "optimizer.lr=3e-4"]) == 2
        assert "given twice" in capsys.readouterr().err
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process lives on
