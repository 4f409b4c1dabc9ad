"""Lion for plugtron: ``optimizer.optimizer: lion``.

Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms") updates every weight by
the *sign* of an interpolation between the momentum and the gradient, so each step moves each
weight by exactly the learning rate; it keeps one state tensor per weight (Adam keeps two). Use a
learning rate 3-10x smaller than Adam's and a weight decay 3-10x larger.

Importing this module is cheap (no torch): plugtron reads ``PLUGTRON_API`` and lists the optimizer
without building anything; ``build`` imports torch.
"""

import attrs

from plugtron.config.rules import BETA

PLUGTRON_API = ">=1,<2"


class Lion:
    """Lion: sign of the interpolated momentum; one state tensor per weight (optimizer_options: beta1, beta2)."""

    @attrs.define(kw_only=True)
    class Options:
        beta1: float = attrs.field(default=0.9, metadata={"help": "interpolation of momentum and gradient for the update"})
        beta2: float = attrs.field(default=0.99, metadata={"help": "decay of the momentum"})

        # checked by plugtron's rule table machinery, reported as optimizer_options.beta1: ...
        RULES = {"beta1": BETA, "beta2": BETA}

    @staticmethod
    def build(param_groups, optimizer_config, options):
        """The torch optimizer over Megatron's parameter groups (their lr and weight_decay are set by
        plugtron's scheduler every step)."""
        from plugtron_lion.torch_lion import LionTorch

        return LionTorch(param_groups, lr=optimizer_config.lr, betas=(options.beta1, options.beta2),
                         weight_decay=optimizer_config.weight_decay)
