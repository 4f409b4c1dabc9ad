"""``peft merge`` streams (issue 26): a LoRA run over a random Llama-layout base ~3.4x larger than
the memory the merge may use merges in a child process within that bound (peak RSS, VmHWM), and
the merged checkpoint holds exactly the weights folding the adapters into the whole model gives.
The model, the bound and the measurement are ``test_hf_streaming``'s (import/export)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from test_hf_streaming import FIXED_ALLOWANCE, _write_random_model

HERE = Path(__file__).parent
LAYERS = 18  # of test_hf_streaming's layout: 202 MiB of weights, 3.4x the bound (fewer layers: a faster test)
# every linear layer adapted (fc1 holds the largest tensor), B random: every delta is non-zero
LORA = ["train.train_iters=1", "train.global_batch_size=1", "train.micro_batch_size=1", "train.eval_interval=null",
        "train.eval_iters=0", "dataset.seq_length=16", "model.seq_length=16", "peft.dim=4",
        "peft.lora_B_init_method=xavier", "scheduler.lr_warmup_iters=0", "logger.log_interval=1",
        "logger.run_summary=false", "logger.metrics_file=false", "logger.log_throughput=false"]


def _lora_run(root: Path, hf_dir: Path, data: Path, name: str) -> Path:
    """Import ``hf_dir`` and train one LoRA step over it; returns the adapter checkpoint."""
    from plugtron.config import load_config
    from plugtron.providers.hf import AutoBridge
    from plugtron.training import train

    base = root / f"{name}-base"
    AutoBridge.import_ckpt(str(hf_dir), str(base))
    model = yaml.safe_load((base / "iter_0000000" / "run_config.yaml").read_text())["model"]
    (root / f"{name}.yaml").write_text(yaml.safe_dump({"model": model}))
    train(load_config(str(root / f"{name}.yaml"), LORA + [f"dataset.dataset_root={data}",
                                                          f"checkpoint.pretrained_checkpoint={base}",
                                                          f"checkpoint.save={root / name}"]))
    return root / name


@pytest.mark.slow
def test_a_merge_three_times_the_memory_bound_stays_within_it(tmp_path):
    from plugtron.providers.hf import megatron_side, streaming
    from plugtron.providers.peft.merge import adapted_model, fold
    from test_sft import write_root

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.fail("/proc/self/clear_refs is not writable: cannot measure peak memory per merge")
    write_root(tmp_path / "data")
    largest = _write_random_model(tmp_path / "hf", num_hidden_layers=LAYERS)
    _write_random_model(tmp_path / "warm-hf", num_hidden_layers=1)
    adapters = _lora_run(tmp_path, tmp_path / "hf", tmp_path / "data", "lora")
    warm = _lora_run(tmp_path, tmp_path / "warm-hf", tmp_path / "data", "warm")
    model_bytes = (tmp_path / "hf" / "model.safetensors").stat().st_size
    bound = 2 * largest + FIXED_ALLOWANCE
    assert model_bytes >= 3 * bound, (model_bytes, bound)  # the test means something
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(HERE / "_merge_memory.py"), str(warm), str(adapters), str(tmp_path),
                              str(tmp_path / "peaks.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    try:
        # meanwhile (a second core), the reference: the whole model with its adapters folded in (the
        # merge before it streamed); its memory is this process's, not the child's
        with adapted_model(str(adapters)) as (_cfg, _provider, model, _path):
            assert fold(model) == 4 * LAYERS
            expected = dict(megatron_side.named_weights(model))
        out, err = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, out[-3000:] + err[-3000:]
    peaks = json.loads((tmp_path / "peaks.json").read_text())
    used = peaks["merge"] - peaks["base"]
    print(f"model {model_bytes / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB, merge used {used / 2**20:.0f} MiB")
    assert used <= bound, (used, bound)

    # exactly the reference's weights, read back one at a time
    merged = tmp_path / "merged" / "iter_0000000"
    with megatron_side.megatron_world(1):
        _, meta = megatron_side.build_meta_model(megatron_side.provider_of(merged), 1)
        reader = streaming.CheckpointReader(meta, merged)
        saved = list(megatron_side.named_weights(meta))
        assert [name for name, _ in saved] == list(expected)
        differ = [name for name, t in saved if not torch.equal(reader.read(name, t), expected[name])]
    assert differ == []
