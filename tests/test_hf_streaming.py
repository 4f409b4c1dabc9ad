"""Streaming conversion (issue 26): import-hf/export-hf hold one tensor at a time.

- the streamed import writes the same checkpoint as building the whole Megatron model and saving
  it (same index entries, same tensors), at TP=1 in-process;
- the streaming safetensors writer is byte-for-byte ``save_file``;
- a random Llama-layout model ~3x larger than the memory the conversion may use converts both ways
  in a child process within that bound (peak RSS, VmHWM) and round-trips to the same bytes.
"""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _hf_models import build, save

HERE = Path(__file__).parent


def _index(ckpt_dir: Path) -> dict:
    with open(ckpt_dir / ".metadata", "rb") as f:
        md = pickle.load(f)  # a checkpoint this test wrote
    return md.state_dict_metadata


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_streamed_import_is_the_checkpoint_of_the_whole_model(family, tmp_path):
    from plugtron.providers.hf import AutoBridge, megatron_side

    hf_dir = save(build(family), tmp_path / "hf")
    AutoBridge.import_ckpt(str(hf_dir), str(tmp_path / "streamed"))
    # the previous path: the whole model built (random init), filled, saved by Megatron's own writer
    bridge = AutoBridge.from_hf_pretrained(str(hf_dir))
    provider = bridge.to_megatron_provider()
    with megatron_side.megatron_world(1):
        built, model = megatron_side.build_model(provider, 1)
        megatron_side.fill(model, built, bridge.megatron_tensors(provider))
        megatron_side.save(model, provider, tmp_path / "whole", hf_config=bridge.hf_config)
        streamed, whole = tmp_path / "streamed" / "iter_0000000", tmp_path / "whole" / "iter_0000000"
        a, b = _index(streamed), _index(whole)
        assert a.keys() == b.keys()
        for key in a:
            assert type(a[key]) is type(b[key]), key
            if hasattr(a[key], "size"):
                assert a[key].size == b[key].size and sorted(c.offsets for c in a[key].chunks) == \
                    sorted(c.offsets for c in b[key].chunks), key
        _, m1 = megatron_side.load_verified(streamed, megatron_side.provider_of(streamed))
        _, m2 = megatron_side.load_verified(whole, megatron_side.provider_of(whole))
        p1, p2 = dict(m1.named_parameters()), dict(m2.named_parameters())
        assert p1.keys() == p2.keys() and all(torch.equal(p1[k], p2[k]) for k in p1)
    for name in ("run_config.yaml", "hf_config.json"):
        assert (streamed / name).read_bytes() == (whole / name).read_bytes()


def test_streaming_safetensors_writer_is_save_file(tmp_path):
    from safetensors.torch import save_file

    from plugtron.providers.hf.safetensors_out import SafetensorsWriter

    g = torch.Generator().manual_seed(0)
    tensors = {"b.weight": torch.randn(3, 5, generator=g), "a.bias": torch.randn(7, generator=g),
               "emb": torch.randn(4, 2, generator=g).to(torch.bfloat16), "h": torch.randn(4, generator=g).half(),
               "empty": torch.zeros(0, 3)}
    save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"format": "pt"})
    specs = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    with SafetensorsWriter(tmp_path / "s.safetensors", specs, {"format": "pt"}) as w:
        for k in reversed(list(tensors)):  # any order
            w.write(k, tensors[k])
    assert (tmp_path / "s.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()
    # a tensor never written: no file left that looks complete
    from plugtron.providers.hf.errors import ConversionError

    with pytest.raises(ConversionError, match="never written"):
        with SafetensorsWriter(tmp_path / "part.safetensors", specs) as w:
            w.write("emb", tensors["emb"])
    assert not (tmp_path / "part.safetensors").exists()


def test_stacked_tensor_written_row_by_row_is_save_file(tmp_path):
    """gpt-oss stacks one row per expert in one HF tensor: the rows, written into place in any
    order, give the file save_file writes for the stacked tensor; a missing row is refused."""
    from safetensors.torch import save_file

    from plugtron.providers.hf.errors import ConversionError
    from plugtron.providers.hf.safetensors_out import SafetensorsWriter

    g = torch.Generator().manual_seed(0)
    tensors = {"experts.gate_up_proj": torch.randn(4, 3, 6, generator=g).to(torch.bfloat16),
               "router.bias": torch.randn(4, generator=g)}
    save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"format": "pt"})
    specs = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    with SafetensorsWriter(tmp_path / "s.safetensors", specs, {"format": "pt"}) as w:
        for row in (2, 0, 3, 1):
            w.write("experts.gate_up_proj", tensors["experts.gate_up_proj"][row], row)
        w.write("router.bias", tensors["router.bias"])
    assert (tmp_path / "s.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()
    with pytest.raises(ConversionError, match="never written"):
        with SafetensorsWriter(tmp_path / "part.safetensors", specs) as w:
            for row in (0, 1, 3):
                w.write("experts.gate_up_proj", tensors["experts.gate_up_proj"][row], row)
            w.write("router.bias", tensors["router.bias"])
    assert not (tmp_path / "part.safetensors").exists()


# ---- the memory bound -----------------------------------------------------------------------------
# A Llama layout whose largest single tensor (Megatron's fused [gate; up], 2 x 1408 x 512 fp32)
# is 5.5 MiB, 24 layers: ~270 MiB of weights.
MEM_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 2048, "hidden_size": 512,
    "intermediate_size": 1408, "num_hidden_layers": 24, "num_attention_heads": 8, "num_key_value_heads": 2,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
    "tie_word_embeddings": False, "torch_dtype": "float32",
}
# What a conversion may use above the process's resident size after its imports: twice the
# largest tensor plus a fixed allowance (Megatron's meta model and plans, the torch_dist index,
# allocator slack) that does not grow with the model.
FIXED_ALLOWANCE = 48 * 2**20


def _write_random_model(path: Path, **overrides) -> int:
    """The HF directory, written tensor by tensor; returns the largest Megatron tensor's size."""
    config = {**MEM_CONFIG, **overrides}
    from plugtron.providers.hf import files
    from plugtron.providers.hf.configs import family_for
    from plugtron.providers.hf.weights import hf_specs, llama_rules
    from plugtron.providers.llama import LlamaProvider

    provider = LlamaProvider(**family_for("LlamaForCausalLM").to_provider(config))
    specs = hf_specs("llama", provider, torch.float32)
    g = torch.Generator().manual_seed(0)
    pieces = ((name, torch.randn(shape, generator=g) * 0.02) for name, (shape, _) in specs.items())
    files.write_model_dir_streaming(path, specs, pieces, config)
    return max(4 * sum(torch.Size(s).numel() for s in rule.shapes) for rule in llama_rules(provider))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.slow
def test_a_model_three_times_the_memory_bound_converts_within_it(tmp_path):
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.fail("/proc/self/clear_refs is not writable: cannot measure peak memory per conversion")
    largest = _write_random_model(tmp_path / "hf")
    _write_random_model(tmp_path / "warm", num_hidden_layers=1)
    model_bytes = (tmp_path / "hf" / "model.safetensors").stat().st_size
    bound = 2 * largest + FIXED_ALLOWANCE
    assert model_bytes >= 3 * bound, (model_bytes, bound)  # the test means something
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "_convert_memory.py"), str(tmp_path / "warm"), str(tmp_path / "hf"), str(tmp_path),
                           str(tmp_path / "peaks.json")], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    peaks = json.loads((tmp_path / "peaks.json").read_text())
    used = {step: peaks[step] - peaks["base"] for step in ("import", "export")}
    print(f"model {model_bytes / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB, used "
          + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in used.items()))
    assert max(used.values()) <= bound, (used, bound)
    # exact round trip: the same names, shapes and bytes, in the same file layout
    assert _sha256(tmp_path / "exported" / "model.safetensors") == _sha256(tmp_path / "hf" / "model.safetensors")


def test_a_tensor_failing_while_written_is_one_clear_error(tmp_path, monkeypatch):
    """The data is read inside torch's writer; an error there reaches the user as plugtron's own
    message (not torch's wrapper), and nothing is published."""
    from plugtron.providers.hf import AutoBridge, files
    from plugtron.providers.hf.errors import ConversionError

    hf_dir = save(build("llama"), tmp_path / "hf")
    real_get = files.SafetensorsReader.get

    def get(self, name):
        if name == "model.layers.1.mlp.up_proj.weight":
            raise ConversionError(f"{hf_dir}: cannot read tensor '{name}' (simulated)")
        return real_get(self, name)

    monkeypatch.setattr(files.SafetensorsReader, "get", get)
    with pytest.raises(ConversionError, match="up_proj.weight' \\(simulated\\)"):
        AutoBridge.import_ckpt(str(hf_dir), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "iter_0000000").exists()
    assert not (tmp_path / "out" / "latest_checkpointed_iteration.txt").exists()


def test_the_reader_reads_every_dtype_as_safetensors_does(tmp_path):
    """Tensors are read with plain reads into storage of their own, which the streamed import frees
    by resizing it once written (safetensors' own tensors live over its memory map and cannot be:
    a 2.3 GiB import kept its 226 MiB embedding resident to the end). Every dtype of the table must
    come back bit for bit as safetensors' reader gives it."""
    from safetensors.torch import load_file, save_file

    from plugtron.providers.hf.errors import ConversionError
    from plugtron.providers.hf.files import _SAFETENSORS_DTYPES, SafetensorsReader

    g = torch.Generator().manual_seed(0)
    tensors = {f"t_{str(dt).split('.')[-1]}": (torch.randn(3, 5, generator=g) * 4).to(dt)
               for dt in _SAFETENSORS_DTYPES.values()}
    tensors.update({"scalar": torch.tensor(7, dtype=torch.int64), "empty": torch.zeros(0, 3)})
    save_file(tensors, tmp_path / "model.safetensors")
    want = load_file(tmp_path / "model.safetensors")
    reader = SafetensorsReader(tmp_path)
    for name, ref in want.items():
        got = reader.get(name)
        assert (got.dtype, got.shape) == (ref.dtype, ref.shape), name
        assert got.reshape(-1).view(torch.uint8).tolist() == ref.reshape(-1).view(torch.uint8).tolist(), name
        assert got.untyped_storage().resizable(), name  # what lets the streamed import free it
    with open(tmp_path / "model.safetensors", "r+b") as f:  # cut into the last tensor's bytes
        f.truncate(os.path.getsize(tmp_path / "model.safetensors") - 4)
    last = max(reader._spots(tmp_path / "model.safetensors").items(), key=lambda kv: kv[1][2])[0]
    with pytest.raises(ConversionError, match=f"truncated: tensor '{last}'"):
        reader.get(last)
