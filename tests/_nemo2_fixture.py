"""Write a NeMo 2.0 checkpoint directory as NeMo does, from a live Megatron model (test fixture).

Layout and names from NeMo's source: ``nemo/lightning/ckpt_utils.py`` (``weights``/``context``),
``nemo/lightning/io/pl.py`` (``MegatronCheckpointIO.save_checkpoint`` writes the Megatron distributed
checkpoint into ``weights/``), ``nemo/lightning/megatron_parallel.py`` (each model chunk's sharded
state dict is prefixed ``module.``; the strategy saves it under ``sharded_state_dict`` next to an
empty ``state_dict`` and Lightning's counters), ``nemo/lightning/io/mixin.py`` (``io_dump`` writes
``io.json`` with fiddle and ``<attr>.yaml`` for ``model``: Hydra-style ``_target_`` mappings with
every field, functions and dtypes as ``{_target_: module.name, _call_: false}``).
"""

import dataclasses
import inspect
import json
import os

import torch
import yaml


def _yaml_value(v):
    if isinstance(v, torch.dtype):
        return {"_target_": str(v), "_call_": False}
    if callable(v):
        module = inspect.getmodule(v)
        return {"_target_": f"{module.__name__ if module else 'builtins'}.{getattr(v, '__qualname__', type(v).__name__)}",
                "_call_": False}
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool, type(None))) for x in v):
        return list(v)
    cls = type(v)  # any other object: NeMo's _safe_object_representer names its class, to be called
    return {"_target_": f"{inspect.getmodule(cls).__name__}.{cls.__qualname__}", "_call_": True}


def model_yaml(provider, config_target, model_target, **changes):
    config = {"_target_": config_target}
    for f in dataclasses.fields(provider):
        if not f.name.startswith("_"):
            config[f.name] = _yaml_value(getattr(provider, f.name))
    config.update(changes)
    return {"_target_": model_target, "config": config, "model_transform": None,
            "optim": {"_target_": "nemo.lightning.pytorch.optim.megatron.MegatronOptimizerModule",
                      "config": {"_target_": "megatron.core.optimizer.optimizer_config.OptimizerConfig", "lr": 3e-4}},
            "tokenizer": None}


def write(out, gpt_model, provider, config_target="nemo.collections.llm.gpt.model.llama.Llama3Config",
          model_target="nemo.collections.llm.gpt.model.llama.LlamaModel", **changes):
    """Collective (dist_checkpointing.save). ``changes`` edit model.yaml's config fields."""
    from megatron.core import dist_checkpointing

    weights = os.path.join(out, "weights")
    context = os.path.join(out, "context")
    os.makedirs(weights, exist_ok=True)
    os.makedirs(context, exist_ok=True)
    checkpoint = {
        "state_dict": {},
        "sharded_state_dict": gpt_model.sharded_state_dict(prefix="module."),
        "epoch": 0, "global_step": 4, "pytorch-lightning_version": "2.5.0",
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 0}}}},
    }
    dist_checkpointing.save(checkpoint, weights)
    with open(os.path.join(context, "model.yaml"), "w") as f:
        yaml.safe_dump(model_yaml(provider, config_target, model_target, **changes), f, sort_keys=False)
    io = {"root": {"type": {"type": "PyReference", "module": "nemo.lightning.io.pl", "name": "TrainerContext"},
                   "items": [], "metadata": {}, "paths": ["<root>"]},
          "objects": {}, "refcounts": {}, "version": "0.0.1"}
    with open(os.path.join(context, "io.json"), "w") as f:
        json.dump(io, f)
    return out


class Writer:
    """A plugin: at on_train_start (after any load) writes the model as a NeMo 2.0 checkpoint."""

    def __init__(self, out, **changes):
        self.out, self.changes = out, changes

    def on_train_start(self, state):
        from plugtron.checkpointing.contents import unwrap

        write(self.out, unwrap(state.model[0]), state.config.model, **self.changes)


def make(out, overrides):
    """Build the model ``overrides`` describe (tiny recipe underneath, no training) and write it to ``out``."""
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import train

    pm = PluginManager()
    pm.register("nemo2_writer", Writer(out))
    base = ["train.skip_train=true", "train.train_iters=1", "scheduler.lr_warmup_iters=0", "train.eval_interval=null",
            "train.micro_batch_size=2", "train.global_batch_size=4"]
    train(load_config(None, base + list(overrides)), plugin_manager=pm)
    return out
