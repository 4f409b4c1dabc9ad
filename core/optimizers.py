"""Optimizers by name: the entry-point group ``plugtron.optimizers`` (``optimizer.optimizer: NAME``).

An entry is a class. Megatron-Core's own optimizers (``adam``, ``sgd``) set ``megatron_name``: Megatron
builds them from the ``optimizer`` section as always. Any other optimizer (a package's Lion or
Adam-mini) provides ``build(param_groups, optimizer_config, options) -> torch.optim.Optimizer`` and,
optionally, an ``Options`` attrs class: its fields are ``optimizer_options.KEY`` in the config,
structured by the core converter (unknown keys refused) and shown by ``config show``.

How a torch optimizer joins Megatron: Megatron builds its wrapper (fp32 main params for half
precision, gradient clipping, loss scaling, checkpoint layout) around a stateless SGD, then the inner
torch optimizer is replaced by the package's, built over the same parameter groups (so Megatron's
per-group lr/wd scheduling still drives it). The distributed optimizer shards optimizer state by
Adam's layout and is refused for these (``config_problems``).
"""

from __future__ import annotations

from typing import Any, List, Optional


class Adam:
    """Adam/AdamW (Megatron-Core's; optimizer.adam_beta1/2, adam_eps, decoupled_weight_decay)."""

    megatron_name = "adam"


class SGD:
    """SGD with momentum (Megatron-Core's; optimizer.sgd_momentum)."""

    megatron_name = "sgd"


def optimizer_class(name: str) -> Any:
    from plugtron import registry

    return registry.load("optimizer", name, "optimizer.optimizer")


def structure_options(cls: Any, given: Optional[dict]) -> Any:
    """``optimizer_options`` structured by the optimizer's ``Options`` (``None`` when it has none,
    and then no option may be given: Megatron's own take theirs from the ``optimizer`` section)."""
    from plugtron.errors import ConfigError

    options_cls = getattr(cls, "Options", None)
    if options_cls is None:
        if given:
            where = " (its settings are optimizer.* fields)" if hasattr(cls, "megatron_name") else ""
            raise ConfigError([f"optimizer_options: the optimizer {getattr(cls, '__name__', cls)!r} takes no "
                               f"options{where}; got {', '.join(map(str, given))}"])
        return None
    from plugtron.config.converter import structure

    return structure(dict(given or {}), options_cls, source="optimizer_options")


def config_problems(cfg: Any, cls: Any) -> List[str]:
    if not hasattr(cls, "megatron_name") and cfg.optimizer.use_distributed_optimizer:
        return [f"optimizer.use_distributed_optimizer: the optimizer {cfg.optimizer.optimizer!r} is not one of "
                "Megatron-Core's own (adam, sgd); the distributed optimizer shards only those: set it to false"]
    if not hasattr(cls, "megatron_name") and cfg.optimizer.optimizer_cpu_offload:
        return [f"optimizer.optimizer_cpu_offload: not available for the optimizer {cfg.optimizer.optimizer!r}"]
    return []


def build(cfg: Any, model: Any):
    """Megatron's optimizer for ``cfg.optimizer.optimizer`` over ``model``'s chunks."""
    import dataclasses

    from megatron.core.optimizer import get_megatron_optimizer

    cls = optimizer_class(cfg.optimizer.optimizer)
    groups = cfg.dist.use_gloo_process_groups
    if hasattr(cls, "megatron_name"):
        return get_megatron_optimizer(dataclasses.replace(cfg.optimizer, optimizer=cls.megatron_name), model,
                                      use_gloo_process_groups=groups)
    options = structure_options(cls, cfg.optimizer_options)
    shell = dataclasses.replace(cfg.optimizer, optimizer="sgd", sgd_momentum=0.0)
    optimizer = get_megatron_optimizer(shell, model, use_gloo_process_groups=groups)
    for part in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = part.optimizer
        if inner is None:  # a rank without trainable parameters
            continue
        part.optimizer = cls.build(inner.param_groups, cfg.optimizer, options)
    return optimizer
