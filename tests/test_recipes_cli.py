"""``plugtron recipes list|show`` and ``config show --section/--diff/--world-size`` (in process)."""

import subprocess
import sys

from plugtron.cli import main
from plugtron.config import yaml_io
from plugtron.recipes import names


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_recipes_list_is_one_line_each_and_torch_free():
    code = "import sys\nfrom plugtron.cli import main\nmain(['recipes', 'list'])\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "False"
    assert [line.split()[0] for line in out[:-1]] == names()
    assert any(line.startswith("llama31_405b_pretrain") and " 256 procs " in line for line in out)


def test_train_help_lists_recipes(capsys):
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    out = " ".join(capsys.readouterr().out.split())
    assert "tiny_llama" in out and "llama3_8b_pretrain" in out and "mixtral_8x7b_peft" in out


def test_recipes_show_validates_at_the_recipe_world_size(capsys):
    rc, out, _ = _run(capsys, "recipes", "show", "llama3_70b_pretrain")
    assert rc == 0 and out.startswith("# recipe llama3_70b_pretrain (plugtron.recipes.llama3_70b_pretrain_config), "
                                      "validated for 32 process(es)")
    data = yaml_io.loads(out)
    assert (data["model"]["tensor_model_parallel_size"], data["model"]["virtual_pipeline_model_parallel_size"]) == (4, 5)
    assert data["dataset"]["sequence_length"] == 8192


def test_recipes_show_names_what_to_set_first(capsys):
    rc, out, _ = _run(capsys, "recipes", "show", "qwen25_7b_peft")
    assert rc == 0 and "#   dataset.dataset_root: required" in out and "#   peft: requires checkpoint.pretrained_checkpoint" in out
    assert yaml_io.loads(out)["peft"]["dim"] == 32


def test_unknown_recipe_is_one_message(capsys):
    rc, _, err = _run(capsys, "recipes", "show", "llama3_8b")
    assert rc == 2 and err.startswith("plugtron: error: config: 1 error\n  recipe: unknown recipe 'llama3_8b' (did you mean")


def test_config_show_section_and_world_size(capsys):
    rc, out, _ = _run(capsys, "config", "show", "--recipe", "llama3_8b_pretrain", "--world-size", "8", "--section", "train")
    assert rc == 0 and list(yaml_io.loads(out)) == ["train"] and "global_batch_size: 512" in out
    rc, _, err = _run(capsys, "config", "show", "--section", "trian")
    assert rc == 2 and "--section: unknown section 'trian'; sections: model, train," in err


def test_config_show_diff_prints_only_changes(capsys):
    rc, out, _ = _run(capsys, "config", "show", "train.train_iters=77", "optimizer.lr=0.001", "--diff")
    assert rc == 0
    data = yaml_io.loads(out)
    assert data["train"] == {"train_iters": 77} and data["optimizer"] == {"lr": 0.001}
    assert set(data) == {"train", "optimizer", "scheduler"}  # the schedule's derived steps follow train_iters
    rc, out, _ = _run(capsys, "config", "show", "--diff", "--recipe", "tiny_llama")
    assert rc == 0 and out == "# no value differs from recipe 'tiny_llama'\n"
    rc, out, _ = _run(capsys, "config", "show", "model.num_layers=2", "--diff", "--section", "model")
    assert yaml_io.loads(out) == {"model": {"num_layers": 2}}


def test_overrides_may_follow_the_recipe_option(capsys):
    """`config show CONFIG --recipe NAME key=value`: the words after the option are overrides too."""
    rc, out, _ = _run(capsys, "config", "show", "--recipe", "tiny_llama", "train.train_iters=30", "--section", "train")
    assert rc == 0 and yaml_io.loads(out)["train"]["train_iters"] == 30
    try:
        main(["config", "show", "--recipe", "tiny", "--bogus"])
    except SystemExit as exit:
        assert exit.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    else:
        raise AssertionError("an unknown option must be refused")


def test_train_with_an_unknown_recipe_answers_before_torch():
    code = ("import sys\nfrom plugtron.cli import main\nrc = main(['train', '--recipe', 'llama3_8b'])\n"
            "print(rc, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().endswith("2 False")
    assert "unknown recipe 'llama3_8b' (did you mean llama3_8b_peft, llama3_8b_pretrain, llama3_8b_sft?)" in proc.stderr


def test_recipes_show_section_and_diff(capsys):
    """Issue 29, point 12: ``recipes show`` takes ``--section`` and ``--diff`` (against recipe 'none')."""
    rc, out, _ = _run(capsys, "recipes", "show", "tiny", "--section", "train")
    assert rc == 0 and set(yaml_io.loads(out)) == {"train"}
    rc, out, _ = _run(capsys, "recipes", "show", "tiny", "--diff")
    diff = yaml_io.loads(out)
    assert diff["train"]["train_iters"] == 300 and diff["model"]["num_layers"] == 4
    assert "exit_signal" not in diff["train"]  # a value the recipe leaves at the bare default is not shown
    rc, out, _ = _run(capsys, "recipes", "show", "tiny", "--diff", "--section", "optimizer")
    assert set(yaml_io.loads(out)) == {"optimizer"}
    rc, _, err = _run(capsys, "recipes", "show", "tiny", "--section", "trian")
    assert rc == 2 and "--section: unknown section 'trian'" in err
