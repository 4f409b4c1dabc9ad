"""Multi-latent attention (DeepSeek-V3) patches for ``plugtron.platform.cpu_shims``.

Nothing here runs on import: ``cpu_shims`` registers these functions (with their reasons) in its
``SHIMS`` registry and calls them from ``apply()``, only when CUDA is absent.
"""

from __future__ import annotations


def patch_mla_te_flag() -> None:
    """``multi_latent_attention`` imports ``TELinear`` from ``megatron.core.extensions.transformer_engine``,
    which without Transformer Engine succeeds and hands out ``MagicMock`` stand-ins, so the module sets
    ``HAVE_TE = True`` and its ``isinstance(self.linear_proj, TELinear)`` check raises ``TypeError``.
    Give the module the extension's own answer (``HAVE_TE = False``): the TE-only branches are skipped
    and the local linear layers are used as they are."""
    from megatron.core.extensions import transformer_engine
    from megatron.core.transformer import multi_latent_attention

    if not transformer_engine.HAVE_TE:
        multi_latent_attention.HAVE_TE = False
