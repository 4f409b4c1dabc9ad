"""The command as a user runs it: through plugtron's own command line (``plugtron.cli.main``)."""

import subprocess
import sys

from plugtron.cli import main


def test_counts_with_the_configs_tokenizer(tmp_path, capsys):
    text = tmp_path / "docs.txt"
    text.write_text("hello\n\nwörld!\n")
    assert main(["tokens", str(text)]) == 0  # ByteLevelTokenizer: one id per UTF-8 byte + EOD: 5+1 and 7+1
    assert capsys.readouterr().out.strip() == f"{text}: 2 documents, 14 tokens (7.0 per document, ByteLevelTokenizer)"
    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"body": "1 2 3"}\n{"body": "4"}\n')
    assert main(["tokens", str(ids), "--key", "body", "tokenizer.tokenizer_type=NullTokenizer", "tokenizer.vocab_size=10"]) == 0
    assert "2 documents, 6 tokens (3.0 per document, NullTokenizer)" in capsys.readouterr().out


def test_bad_input_is_one_message(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    assert main(["tokens", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"plugtron: error: {bad}:2: expected a JSON object with a 'text' string"
    assert main(["tokens", str(bad), "tokenizer.tokenizer_type=NoSuchTokenizer"]) == 2
    assert "tokenizer.tokenizer_type: expected a registered tokenizer" in capsys.readouterr().err


def test_listed_and_torch_free():
    code = ("import sys\nfrom plugtron.cli import main\nmain(['registry', 'list', 'command'])\n"
            "print('torch imported:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "torch imported: False" in out.stdout, out.stderr[-2000:]
    assert "tokens" in out.stdout and "plugtron-tokens 0.1.0" in out.stdout
