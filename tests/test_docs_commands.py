"""Every command block marked ``bash runnable`` in README.md and docs/*.md runs as written (the
convention: docs/writing-docs.md): each file's marked blocks, in order, in one fresh temp directory."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```bash runnable\n(.*?)^```$", re.S | re.M)


def runnable_blocks(text: str):
    return [m.group(1) for m in BLOCK.finditer(text)]


def _docs_with_blocks():
    return [p for p in DOCS if runnable_blocks(p.read_text(encoding="utf-8"))]


def test_the_marker_is_found_and_the_readme_walkthrough_is_marked():
    blocks = runnable_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any("plugtron train" in b and "plugtron generate" in b for b in blocks), blocks
    # the chat fine-tuning walkthrough (issue 25): import an HF model with a chat template, inspect, LoRA, chat
    assert any(all(step in b for step in ("chat_template=", "plugtron convert import-hf", "plugtron data inspect",
                                          "peft.dim", "plugtron generate", "--chat")) for b in blocks), blocks
    assert runnable_blocks("```bash runnable\ntrue\n```\n    ```bash runnable\n    false\n    ```\n") == ["true\n"]


@pytest.mark.slow
@pytest.mark.parametrize("doc", _docs_with_blocks(), ids=lambda p: p.name)
def test_marked_commands_run_as_written(doc, tmp_path):
    script = "\n".join(runnable_blocks(doc.read_text(encoding="utf-8")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    assert shutil.which("plugtron", path=env["PATH"]), "the plugtron command is not installed (pip install -e .)"
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"{doc.name}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
