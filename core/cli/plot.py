"""``plugtron plot RUN_DIR [RUN_DIR ...] [-o OUT.png]``: train and validation loss and throughput
against iteration, from each run's ``metrics.jsonl``, several runs overlaid (one colour per run).

matplotlib is the optional extra ``plugtron[plot]``, imported only by this command (``--help``
stays matplotlib- and torch-free); it draws with the Agg backend on a ``Figure`` of its own, so no
display is needed and no global pyplot state is touched.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

from plugtron.errors import DataError
from plugtron.metrics_records import FILE_NAME, read_records

EXTRA_HINT = "pip install 'plugtron[plot]'"
SIZE_IN, DPI = (12.0, 4.5), 100  # a 1200 x 450 pixel PNG


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="PNG of loss and throughput against iteration from runs' metrics.jsonl")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help=f"a directory holding {FILE_NAME} (checkpoint.save or logger.metrics_dir), or the file itself")
    p.add_argument("-o", "--output", metavar="OUT.png",
                   help=f"where to write the PNG (default: RUN_DIR/metrics.png for one run, ./metrics-compare.png for several)")


def _metrics_path(run: str) -> str:
    path = os.path.join(run, FILE_NAME) if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise DataError(f"{run}: no {FILE_NAME} here (expected a run's output directory - checkpoint.save or "
                        f"logger.metrics_dir - or the {FILE_NAME} file itself)")
    return path


def _labels(runs: Sequence[str]) -> List[str]:
    """Each run's directory name; the whole path where two names collide."""
    names = [os.path.basename(os.path.normpath(r if os.path.isdir(r) else os.path.dirname(r) or ".")) for r in runs]
    return [n if names.count(n) == 1 else os.path.normpath(r) for n, r in zip(names, runs)]


def _series(records: List[Dict], kind: str, key: str):
    points = [(r["iteration"], r[key]) for r in records if r.get("kind") == kind and isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def plot_runs(runs: Sequence[str], output: str):
    """Draw ``runs`` into ``output`` (PNG) and return the matplotlib ``Figure`` (tests inspect its lines)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DataError(f"plugtron plot needs matplotlib, which is not installed; install the extra: {EXTRA_HINT}") from None
    paths = [_metrics_path(r) for r in runs]  # every input checked before anything is drawn or written
    data = [read_records(p) for p in paths]
    for run, recs in zip(runs, data):
        if not any(r.get("kind") == "train" for r in recs):
            raise DataError(f"{run}: {FILE_NAME} holds no training record yet (nothing was logged)")

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, speed_ax = fig.subplots(1, 2)
    for i, (label, recs) in enumerate(zip(_labels(runs), data)):
        color = f"C{i % 10}"
        # every step's loss where the file has it (runs since "step" lines exist), else the log records'
        loss_kind = "step" if any(r.get("kind") == "step" for r in recs) else "train"
        loss_ax.plot(*_series(recs, loss_kind, "loss"), color=color, label=f"{label} train")
        its, vals = _series(recs, "valid", "loss")
        if its:
            loss_ax.plot(its, vals, color=color, linestyle="--", marker="o", markersize=4, label=f"{label} valid")
        speed_ax.plot(*_series(recs, "train", "tokens_per_sec"), color=color, label=label)
    loss_ax.set(title="loss", xlabel="iteration", ylabel="loss")
    speed_ax.set(title="throughput", xlabel="iteration", ylabel="tokens/s")
    for ax in (loss_ax, speed_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(output, format="png")
    return fig


def default_output(runs: Sequence[str]) -> str:
    if len(runs) == 1:
        run = runs[0]
        return os.path.join(run if os.path.isdir(run) else os.path.dirname(run) or ".", "metrics.png")
    return "metrics-compare.png"


def cmd_plot(ns) -> int:
    output = ns.output or default_output(ns.runs)
    plot_runs(ns.runs, output)
    print(os.path.abspath(output))
    return 0
