"""Feature sections whose fields switch built-in plugins on: profiling, comm overlap, compile, PEFT, and
third-party plugin settings (torch-free)."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

import attrs

from plugtron.config._fields import toggle


@attrs.define(kw_only=True)
class ProfilingConfig:
    """Profilers (former NsysCallback, PytorchProfilerCallback, MemoryProfileCallback); each switch
    is its own plugin (``docs/builtin-plugins.md``), which also checks the rules of this section.

    The profiled window is iterations ``profile_step_start`` to ``profile_step_end``, both included,
    numbered as in the log (the first step is iteration 1); ``profile_ranks`` are global ranks.
    """

    use_nsys_profiler: bool = toggle("nsys_profiler", default=False)
    use_pytorch_profiler: bool = toggle("pytorch_profiler", default=False)
    record_memory_history: bool = toggle("memory_profiler", default=False)
    profile_step_start: int = 10
    profile_step_end: int = 12
    profile_ranks: List[int] = attrs.field(factory=lambda: [0])
    record_shapes: bool = False  # tensor shapes in the PyTorch profiler's ops / the nsys NVTX ranges
    nvtx_ranges: bool = False  # nsys: an NVTX range around every iteration, forward/backward and optimizer step
    pytorch_profiler_collect_callstack: bool = False  # Megatron-LM's name: Python stacks (with_stack)
    pytorch_profiler_profile_memory: bool = False  # tensor allocations in the trace (profile_memory)
    memory_snapshot_path: str = "snapshot.pickle"
    trace_dir: Optional[str] = None  # PyTorch profiler traces; default <checkpoint.save>/profiler


@attrs.define(kw_only=True)
class DeepEPConfig:
    """The flex MoE token dispatcher with DeepEP or HybridEP (former DeepEPCallback; Bridge
    ``apply_flex_dispatcher_backend``). Present = the deepep plugin is on."""

    backend: str = "deepep"  # or "hybridep"
    fallback_to_alltoall: bool = False  # on a GPU (or machine) that cannot run it: alltoall + one warning


@attrs.define(kw_only=True)
class CompileConfig:
    """``torch.compile`` on the model chunks (former NeMo ``JitTransform`` with ``JitConfig(use_torch=True)``).
    Present = the compile plugin is on. ``scope``: ``layers`` compiles each transformer (or Mamba)
    layer on its own - one graph reused by every layer of the same kind, so the compile time does not
    grow with depth - ``model`` the whole chunk (embedding, output layer and loss included, but
    Megatron's code there breaks the graph in several places). ``mode`` and ``dynamic`` are
    ``torch.compile``'s; ``backend`` any registered ``torch._dynamo`` backend (``inductor``, the only
    one that speeds anything up; ``aot_eager`` / ``eager`` to debug). A part that cannot be compiled
    runs uncompiled after one warning. Checkpoints keep the same keys either way."""

    scope: Literal["layers", "model"] = "layers"
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    backend: str = "inductor"
    dynamic: Optional[bool] = None  # None: torch's choice (static shapes first, dynamic after a recompile)


@attrs.define(kw_only=True)
class CommOverlapConfig:
    """Communication overlap (former MegatronCommOverlapCallback). Present = the comm_overlap
    plugin is on; it copies these onto the model / DDP / optimizer configs before they are used."""

    tp_comm_overlap: bool = False
    overlap_p2p_comm: Optional[bool] = None
    batch_p2p_comm: Optional[bool] = None
    overlap_grad_reduce: Optional[bool] = None
    overlap_param_gather: Optional[bool] = None
    overlap_param_gather_with_optimizer_step: Optional[bool] = None
    align_param_gather: Optional[bool] = None
    bucket_size: Optional[int] = None
    defer_embedding_wgrad_compute: Optional[bool] = None
    wgrad_deferral_limit: Optional[int] = None


@attrs.define(kw_only=True)
class StragglerDetectionConfig:
    """Per-rank step-time outliers (Megatron Bridge ``straggler`` / ``nvrx_straggler`` sections):
    the straggler plugin. Every ``report_interval`` iterations the ranks exchange their mean compute
    time per step (one gather, on those iterations only) and rank 0 logs the slowest and fastest
    ``straggler_minmax_count`` ranks and every rank whose relative performance (fastest rank's time
    / its time) is below ``relative_perf_threshold``. With CUDA and nvidia-resiliency-ext installed
    (``use_nvrx``), its detector's GPU kernel scores are reported too."""

    log_straggler: bool = toggle("straggler", default=False)
    report_interval: int = 100
    straggler_minmax_count: int = 1
    relative_perf_threshold: float = 0.7
    stop_if_detected: bool = False
    use_nvrx: bool = True


@attrs.define(kw_only=True)
class FaultToleranceConfig:
    """Hang detection with nvidia-resiliency-ext's fault tolerance (Megatron Bridge ``ft``; former
    NeMo ``FaultTolerance`` callback): the fault_tolerance plugin, for runs started by its
    ``ft_launcher``. Heartbeats and ``setup``/``step``/``checkpointing`` sections go to the rank
    monitor; with ``calc_ft_timeouts`` the section timeouts are computed from the observed times
    (after ``min_steps_for_timeouts`` steps) and kept in the checkpoint."""

    enable_ft_package: bool = toggle("fault_tolerance", default=False)
    calc_ft_timeouts: bool = False
    warmup_steps: int = 1  # steps outside the "step" section: the first ones are slow (compilation, caches)
    min_steps_for_timeouts: int = 16


@attrs.define(kw_only=True)
class MoETokenDropConfig:
    """MoE token dropping (former MegatronTokenDropCallback; Bridge ``apply_moe_token_drop``).
    Present = the moe_token_drop plugin is on; it sets these on the model before it is built.
    A negative capacity factor means no capacity (no dropping)."""

    moe_expert_capacity_factor: float = 1.0
    moe_pad_expert_input_to_capacity: bool = True


@attrs.define(kw_only=True)
class LoraConfig:
    """Adapters on the named linear layers (requires ``checkpoint.pretrained_checkpoint``); present =
    the ``peft`` plugin is on. ``method`` picks LoRA (default), DoRA (LoRA plus a learned magnitude
    per output feature) or canonical LoRA (separate adapters for q, k, v and for gate, up).
    ``target_modules``: Megatron names (``linear_qkv``), Hugging Face names (``qkv_proj``, ``o_proj``,
    ``q_proj``...) or wildcards over module paths (``*.layers.0.*.linear_qkv``);
    ``exclude_modules`` removes matches. See docs/peft.md."""

    method: Literal["lora", "dora", "canonical_lora"] = "lora"
    target_modules: List[str] = attrs.field(
        factory=lambda: ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
    )
    exclude_modules: List[str] = attrs.field(factory=list)
    dim: int = 32
    alpha: int = 32
    dropout: float = 0.0
    dropout_position: Literal["pre", "post"] = "pre"
    lora_A_init_method: Literal["xavier", "kaiming"] = "xavier"
    lora_B_init_method: Literal["zero", "xavier", "kaiming"] = "zero"
    a2a_experimental: bool = False


@attrs.define(kw_only=True)
class PluginSettings:
    """``plugins.<name>``: a third-party (or any) plugin switched on by name.

    ``options`` is handed to the plugin; a plugin that declares ``Settings`` (an attrs class) gets
    them structured and checked like the rest of the config.
    """

    enabled: bool = False
    options: Dict[str, Any] = attrs.field(factory=dict)

    @staticmethod
    def unknown_key_hint(where: str, key: str) -> str:
        """``plugins.plateau.patience``: the plugin's options live one level down."""
        return f" (a plugin's options go under options: {where.rsplit('.', 1)[0]}.options.{key})"
