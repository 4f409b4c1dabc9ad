"""The compile plugin (``compile={}``, plugins/torch_compile.py): the same losses as the uncompiled
run within 1e-4 over 20 steps with Inductor, checkpoints with the same keys that load both ways
(compiled -> uncompiled and back) and resume exactly, one warning and eager results where the
backend cannot compile, and named errors for what cannot work.

The Inductor tests are ``slow``: Inductor compiles the tiny layer once (the resumed runs reuse its
graphs in this process), which alone took ~3 min wall / 46 s CPU with a cold cache on the shared
2-core machine at load ~45, more than this suite's budget for a file. The rest runs with every suite."""

import logging

import pytest

from plugtron import testing

RUN = ["train.eval_interval=null", "train.train_iters=20", "logger.log_interval=10"]
SAVE = ["checkpoint.save_interval=10"]


class Keys:
    """Records the model's state-dict keys at the end of a run (what a checkpoint is made of)."""

    def __init__(self):
        self.keys = None

    def on_train_end(self, state):
        self.keys = sorted(k for chunk in state.model for k in chunk.state_dict())


def _resume(from_dir, overrides=()):
    return testing.run_training([*RUN, f"checkpoint.load={from_dir}/iter_0000010", *overrides])


def _saved_keys(iter_dir):
    from torch.distributed.checkpoint import FileSystemReader

    return set(FileSystemReader(str(iter_dir)).read_metadata().state_dict_metadata)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("compile")
    plain_keys, compiled_keys = Keys(), Keys()
    plain = testing.run_training(RUN + SAVE, [plain_keys], checkpoint_dir=str(d / "plain"))
    compiled = testing.run_training(RUN + SAVE + ["compile={}"], [compiled_keys], checkpoint_dir=str(d / "compiled"))
    return {
        "dir": d, "plain": plain, "compiled": compiled, "keys": (plain_keys.keys, compiled_keys.keys),
        "compiled_to_plain": _resume(d / "compiled"),
        "plain_to_compiled": _resume(d / "plain", ["compile={}"]),
        "compiled_to_compiled": _resume(d / "compiled", ["compile={}"]),
    }


@pytest.mark.slow
def test_inductor_losses_match_the_uncompiled_run_over_20_steps(runs):
    plain, compiled = runs["plain"].losses, runs["compiled"].losses
    assert len(plain) == len(compiled) == 20
    assert compiled == pytest.approx(plain, abs=1e-4)
    assert runs["compiled"].plugins["compile"].compiled == ["chunk0.decoder.layers.0", "chunk0.decoder.layers.1"]
    assert runs["compiled"].plugins["compile"].fell_back == {}


@pytest.mark.slow
def test_checkpoints_have_the_same_keys_compiled_or_not(runs):
    plain_keys, compiled_keys = runs["keys"]
    assert plain_keys == compiled_keys and not [k for k in compiled_keys if "_orig_mod" in k]
    d = runs["dir"]
    on_disk = _saved_keys(d / "compiled" / "iter_0000010")
    assert on_disk == _saved_keys(d / "plain" / "iter_0000010") and not [k for k in on_disk if "_orig_mod" in k]


@pytest.mark.slow
def test_resume_loads_both_ways_and_a_compiled_resume_is_exact(runs):
    plain, compiled = runs["plain"].losses, runs["compiled"].losses
    assert runs["compiled_to_compiled"].losses == compiled[10:]  # bit for bit: same graphs, same state
    assert runs["compiled_to_plain"].losses == pytest.approx(compiled[10:], abs=1e-4)
    assert runs["plain_to_compiled"].losses == pytest.approx(plain[10:], abs=1e-4)


def test_a_backend_that_cannot_compile_falls_back_with_one_warning(caplog):
    import torch._dynamo

    def failing(gm, example_inputs):
        raise RuntimeError("this backend compiles nothing")

    torch._dynamo.register_backend(failing, name="plugtron_test_failing")
    three = RUN + ["train.exit_interval=3"]  # the 20-step schedule, stopped after 3 steps
    plain = testing.run_training(three)
    with caplog.at_level(logging.WARNING, logger="plugtron"):
        result = testing.run_training(three + ["compile={backend: plugtron_test_failing}"])
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("compile:")]
    assert len(warned) == 1, warned
    assert "could not compile TransformerLayer (chunk0.decoder.layers.0 and 1 more)" in warned[0]
    assert "this backend compiles nothing" in warned[0] and "run uncompiled" in warned[0]
    assert len(result.losses) == 3 and result.losses == plain.losses  # eager from the first step: the same arithmetic


def test_an_unknown_backend_is_a_config_error_before_anything_is_built():
    from plugtron.errors import ConfigError

    with pytest.raises(ConfigError, match=r"compile.backend: expected a torch.compile backend \(.*inductor.*\), got 'nope'"):
        testing.run_training(["compile={backend: nope}"])


def test_without_a_cpp_compiler_inductor_warns_and_leaves_the_model_uncompiled(monkeypatch, caplog):
    import torch
    from torch._inductor import cpp_builder
    from torch._inductor.exc import InvalidCxxCompiler

    from plugtron.config import load_config
    from plugtron.plugins.torch_compile import Compile

    def no_compiler():
        raise InvalidCxxCompiler()

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config(None, ["compile={}"])
    plugin = Compile(cfg)
    layer = torch.nn.Linear(2, 2)
    with caplog.at_level(logging.WARNING, logger="plugtron"):
        plugin.transform_model(cfg, [layer])
    assert layer._compiled_call_impl is None and plugin.compiled == []
    assert [r.getMessage() for r in caplog.records] == [
        "compile: Inductor needs a C++ compiler on CPU and found none (InvalidCxxCompiler; install g++ or set CXX), "
        "or use compile.backend=aot_eager; the model runs uncompiled"]


def test_a_mode_for_another_backend_is_refused_by_config_show():
    from plugtron.cli.main import main

    assert main(["config", "show", "compile={backend: aot_eager, mode: max-autotune}"]) != 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["model.tensor_model_parallel_size=2", "model.pipeline_model_parallel_size=2"],
                         ids=["tp2", "pp2"])
def test_tensor_and_pipeline_parallel_runs_compile_and_match(tmp_path, layout):
    """Two gloo processes: the layers compile (no fallback warning) and the losses stay within 1e-4."""
    import json
    import re

    from helpers import torchrun

    base = [*testing.TINY, "train.eval_interval=null", "train.train_iters=4", layout]
    plain = torchrun(tmp_path, "plain", base)
    output = torchrun(tmp_path, "compiled", base + ["compile={}"], env={"TORCH_LOGS": "dynamo"}, read=False)
    assert re.search(r"torchdynamo start tracing forward .*transformer_layer.py", output), output[-3000:]
    assert "calling compiler function inductor" in output and "could not compile" not in output, output[-3000:]
    summaries = [json.loads((tmp_path / f"compiled.json.rank{r}").read_text()) for r in range(2)]
    compiled = next(s for s in summaries if s["losses"])
    assert len(plain["losses"]) == 4 and compiled["losses"] == pytest.approx(plain["losses"], abs=1e-4)
