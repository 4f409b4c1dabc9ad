"""LoRA on Qwen3, OLMo 2, Qwen3-MoE (attention only) and GLM-4.5 (attention, dense MLP, shared expert): targets named the Hugging Face way (``q_proj``, ``o_proj``,
``gate_proj``, ``down_proj``) and the Megatron way (``linear_qkv``...) adapt the same layers and
train; ``peft export-hf`` writes adapters that ``peft.PeftModel`` loads onto the Hugging Face base
with the logits of the adapted plugtron model."""

import peft  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import pytest
import torch
import transformers as T

from _hf_models import megatron_logits
from _peft_fixtures import VOCAB, config, ids, make_base
from plugtron.cli import main as plugtron_main
from plugtron.training import train

HF_NAMES = "peft.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
MEGATRON_NAMES = "peft.target_modules=[linear_qkv,linear_proj,linear_fc1,linear_fc2]"


def _adapted(run):
    from plugtron.providers.peft.adapters import adapted_layers
    from plugtron.providers.peft.merge import adapted_model

    with adapted_model(str(run)) as (_cfg, _provider, model, _path):
        return sorted(path for path, _ in adapted_layers(model)), megatron_logits(model, ids())[..., :VOCAB]


@pytest.mark.parametrize("family", ["qwen3", "olmo2"])
def test_lora_by_hf_and_megatron_names_exports_to_peft(family, tmp_path):
    from peft import PeftModel

    root = make_base(tmp_path / "base", family)
    runs = {}
    for label, targets in (("hf", HF_NAMES), ("megatron", MEGATRON_NAMES)):
        run = train(config(root, ["train.train_iters=4", f"checkpoint.save={tmp_path / label}", targets]))
        assert run["losses"][-1] < run["losses"][0], run["losses"]
        runs[label] = _adapted(tmp_path / label)
    assert runs["hf"][0] == runs["megatron"][0] and len(runs["hf"][0]) == 4 * 2  # 4 linears x 2 layers

    assert plugtron_main(["peft", "export-hf", str(tmp_path / "hf"), str(tmp_path / "adapter"),
                          "--base-model", str(root / "hf")]) == 0
    base = T.AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="eager")
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        diff = (with_adapter(ids()).logits - runs["hf"][1]).abs().max().item()
    print(f"{family}: PeftModel vs plugtron max |logit diff| = {diff:.2e}")
    assert diff <= 1e-5


def test_qwen3_moe_lora_on_attention_exports_to_peft_and_experts_are_refused(tmp_path):
    """Bridge's Qwen3-MoE LoRA targets (attention only), by HF and Megatron names; the experts' linears
    are refused before the first step, naming the target and what can be adapted (LoRA on experts is not
    supported)."""
    from peft import PeftModel

    from plugtron.errors import PluginError

    root = make_base(tmp_path / "base", "qwen3_moe")
    runs = {}
    for label, targets in (("hf", "peft.target_modules=[q_proj,k_proj,v_proj,o_proj]"),
                           ("megatron", "peft.target_modules=[linear_qkv,linear_proj]")):
        run = train(config(root, ["train.train_iters=3", f"checkpoint.save={tmp_path / label}", targets]))
        assert run["losses"][-1] < run["losses"][0], run["losses"]
        runs[label] = _adapted(tmp_path / label)
    assert runs["hf"][0] == runs["megatron"][0] and len(runs["hf"][0]) == 2 * 2  # 2 linears x 2 layers
    assert plugtron_main(["peft", "export-hf", str(tmp_path / "hf"), str(tmp_path / "adapter"),
                          "--base-model", str(root / "hf")]) == 0
    base = T.AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="eager")
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        diff = (with_adapter(ids()).logits - runs["hf"][1]).abs().max().item()
    print(f"qwen3_moe: PeftModel vs plugtron max |logit diff| = {diff:.2e}")
    assert diff <= 1e-5

    with pytest.raises(PluginError, match="'linear_fc1' matches no adaptable module; the model's adaptable "
                                          "modules are linear_proj, linear_qkv"):
        train(config(root, ["train.train_iters=1", f"checkpoint.save={tmp_path / 'experts'}",
                            "peft.target_modules=[linear_fc1]"]))
    assert not (tmp_path / "experts").exists() or not any((tmp_path / "experts").rglob("iter_*"))


def test_glm4_moe_lora_with_bridges_targets_exports_to_peft(tmp_path):
    """Bridge's GLM-4.5 LoRA targets (all four linears): the attention of every layer, the dense first
    layer's MLP and each MoE layer's shared expert are adapted, the routed experts never; the adapters
    load into ``peft.PeftModel`` on the Hugging Face base with plugtron's logits."""
    from peft import PeftModel

    root = make_base(tmp_path / "base", "glm4_moe")
    run = train(config(root, ["train.train_iters=3", f"checkpoint.save={tmp_path / 'lora'}", MEGATRON_NAMES,
                              "model.moe_aux_loss_coeff=0.0"]))
    assert run["losses"][-1] < run["losses"][0], run["losses"]
    layers, logits = _adapted(tmp_path / "lora")
    assert not any(".experts." in p for p in layers)
    assert [p for p in layers if "shared_experts" in p] == [f"decoder.layers.{i}.mlp.shared_experts.{n}"
                                                            for i in (1, 2) for n in ("linear_fc1", "linear_fc2")]
    assert len(layers) == 3 * 2 + 2 + 2 * 2  # attention x 3 layers, dense MLP, shared expert x 2 MoE layers
    assert plugtron_main(["peft", "export-hf", str(tmp_path / "lora"), str(tmp_path / "adapter"),
                          "--base-model", str(root / "hf")]) == 0
    base = T.AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="eager")
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        diff = (with_adapter(ids()).logits - logits).abs().max().item()
    print(f"glm4_moe: PeftModel vs plugtron max |logit diff| = {diff:.2e}")
    assert diff <= 1e-5
