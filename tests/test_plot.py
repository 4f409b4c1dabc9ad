"""plugtron plot: a PNG of the expected size with one train-loss line per run (valid loss and
throughput too), the path printed; bad inputs are one message; --help stays matplotlib-free."""

import math
import subprocess
import sys

import pytest

from plugtron.cli import main
from plugtron.cli.plot import DPI, SIZE_IN, plot_runs
from plugtron.metrics_records import FILE_NAME, encode


def _run_dir(path, scale, n=20, nan_at=None):
    """A metrics.jsonl as the metrics_file plugin writes it (train every step, valid every 5)."""
    path.mkdir()
    lines = []
    for i in range(1, n + 1):
        loss = float("nan") if i == nan_at else scale * 5.0 / math.sqrt(i)
        lines.append(encode({"kind": "train", "iteration": i, "loss": loss, "tokens_per_sec": 1000.0 * scale + i}))
        if i % 5 == 0:
            lines.append(encode({"kind": "valid", "iteration": i, "loss": scale * 5.5 / math.sqrt(i), "ppl": 1.0, "iters": 1}))
    (path / FILE_NAME).write_text("\n".join(lines) + "\n")
    return str(path)


def test_two_runs_two_lines_expected_size_and_path_printed(tmp_path, capsys):
    from matplotlib.image import imread

    a, b = _run_dir(tmp_path / "run_a", 1.0, nan_at=7), _run_dir(tmp_path / "run_b", 0.8)
    out = tmp_path / "cmp.png"
    assert main(["plot", a, b, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    img = imread(str(out))
    assert img.shape[:2] == (int(SIZE_IN[1] * DPI), int(SIZE_IN[0] * DPI))

    fig = plot_runs([a, b], str(tmp_path / "again.png"))
    loss_ax, speed_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["run_a train", "run_a valid", "run_b train", "run_b valid"]
    assert [line.get_label() for line in speed_ax.get_lines()] == ["run_a", "run_b"]
    train_a = loss_ax.get_lines()[0]
    assert list(train_a.get_xdata()) == list(range(1, 21)) and math.isnan(train_a.get_ydata()[6])  # NaN: a gap
    assert list(loss_ax.get_lines()[1].get_xdata()) == [5, 10, 15, 20]
    assert loss_ax.get_lines()[0].get_color() != loss_ax.get_lines()[2].get_color()


def test_one_run_defaults_next_to_its_metrics(tmp_path, capsys):
    a = _run_dir(tmp_path / "run", 1.0)
    assert main(["plot", a]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "run" / "metrics.png")
    assert (tmp_path / "run" / "metrics.png").stat().st_size > 10_000


def test_a_directory_without_metrics_is_one_message(tmp_path, capsys):
    a = _run_dir(tmp_path / "run", 1.0)
    (tmp_path / "empty").mkdir()
    assert main(["plot", a, str(tmp_path / "empty"), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plugtron: error: ") and "empty: no metrics.jsonl here" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    a = _run_dir(tmp_path / "run", 1.0)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", a]) == 2
    assert "plugtron[plot]" in capsys.readouterr().err


def test_help_imports_neither_torch_nor_matplotlib():
    code = ("import sys\nfrom plugtron.cli import main\n"
            "try:\n    main(['plot', '--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]\nassert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "RUN_DIR" in proc.stdout
