"""LoRA and DoRA under model and data parallelism (2 gloo processes): TP=2 (adapters sharded like the
layers they wrap), TP=2 with sequence parallelism, the distributed optimizer (DP=2) and pipeline parallelism (PP=2) follow the
one-process run's losses. DoRA at TP=2 (its magnitude split like a column-parallel layer's rows, a
TP replica on a row-parallel layer) also saves, resumes bit-identically, and ``peft merge`` of its
checkpoint gives the one-process run's merged weights. The base is a two-step checkpoint of the small GPT these layouts are
known to reproduce (``test_training``). (An imported tiny Llama's TP=2 loss used to differ from TP=1
through its vocabulary padding; that is fixed and tested in test_hf_training_parity_tp2.py.)"""

import pytest

from helpers import SMALL, torchrun_runs
from plugtron.config import load_config
from plugtron.training import train

STEPS = SMALL + ["train.train_iters=5", "train.eval_interval=null", "peft.dim=8", "optimizer.lr=1e-2",
                 "logger.metrics_file=false", "logger.run_summary=false"]
DORA = ["peft.method=dora", "checkpoint.save_interval=3"]
TP2 = ["model.tensor_model_parallel_size=2"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    train(load_config(None, SMALL + ["train.train_iters=2", "train.eval_interval=null", f"checkpoint.save={path}"]))
    return path


LAYOUTS = {"tp2": TP2,
           # sequence parallelism: column-parallel adapters gather the sequence, row-parallel ones keep their slice
           "tp2-sp": TP2 + ["model.sequence_parallel=true"],
           "dp2-distopt": ["optimizer.use_distributed_optimizer=true"],
           "pp2": ["model.pipeline_model_parallel_size=2"],
           "dora-tp2": DORA + TP2,
           # a row-parallel layer's magnitude then sees this rank's slice of the sequence: its gradient is summed over TP
           "dora-tp2-sp": DORA + TP2 + ["model.sequence_parallel=true"]}


@pytest.fixture(scope="module")
def runs(base, tmp_path_factory):
    """The one-process references (LoRA; DoRA, saved), every layout's run and the TP=2 DoRA run
    resumed from its step-3 checkpoint, all in one two-process launch."""
    tmp = tmp_path_factory.mktemp("layouts")
    common = STEPS + [f"checkpoint.pretrained_checkpoint={base}"]
    ref = {"lora": train(load_config(None, common))["losses"],
           "dora": train(load_config(None, common + DORA + [f"checkpoint.save={tmp / 'dora-1'}"]))["losses"]}
    resume = common + LAYOUTS["dora-tp2"] + [f"checkpoint.load={tmp / 'dora-tp2' / 'iter_0000003'}",
                                             f"checkpoint.save={tmp / 'dora-tp2-resumed'}"]
    got = torchrun_runs(tmp, "peft", [common + layout + [f"checkpoint.save={tmp / name}"]
                                      for name, layout in LAYOUTS.items()] + [resume])
    return tmp, ref, {name: summary["losses"] for name, summary in zip(list(LAYOUTS) + ["dora-tp2-resumed"], got)}


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_two_processes_follow_one(runs, layout):
    ref, got = runs[1]["dora" if layout.startswith("dora") else "lora"], runs[2][layout]
    assert len(got) == len(ref)
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-4, (got, ref)
    assert abs(got[-1] - got[0]) > 1e-3, got  # the adapters do train (B starts at zero)


def weights(root) -> dict:
    """Every parameter of the (verified) model checkpoint under ``root``, loaded at TP=1."""
    from plugtron.providers.hf import megatron_side

    path = megatron_side.checkpoint_dir(root)
    with megatron_side.megatron_world(1):
        _, model = megatron_side.load_verified(path, megatron_side.provider_of(path))
        return {k: p.detach().clone() for k, p in model.named_parameters()}


@pytest.mark.slow
def test_dora_at_tp2_resumes_and_merges_as_one_process(runs, base):
    from plugtron.providers.peft.merge import merge

    tmp, _, got = runs
    assert got["dora-tp2-resumed"] == got["dora-tp2"][3:]  # bit-identical
    one, two = (weights(merge(str(tmp / name), str(tmp / f"{name}-merged"))) for name in ("dora-1", "dora-tp2"))
    assert one.keys() == two.keys()
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-5, worst
    # the adapters moved every adapted weight (column- and row-parallel layers alike): not a vacuous equality
    before = weights(base)
    for layer in ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"):
        key = f"decoder.layers.0.{'self_attention' if layer in ('linear_qkv', 'linear_proj') else 'mlp'}.{layer}.weight"
        assert (one[key] - before[key]).abs().max() > 1e-4, key
