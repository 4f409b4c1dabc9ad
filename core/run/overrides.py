"""The command-line overrides each NeMo-Run plugin adds to a ``plugtron train`` task - plain
functions of the plugin's settings, without nemo_run, so they can be read, tested and reused (a
hand-written launcher may call them too). Field names are plugtron's config paths, which are
Megatron Bridge's; values are written the way plugtron reads them (typed like YAML)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence


def yaml_value(value: Any) -> str:
    """``True`` -> ``true``, ``[0, 3]`` -> ``[0,3]``, a string as is when plugtron reads it back as
    the same string, else single-quoted (``'2024'`` stays a string, not the number 2024)."""
    from plugtron.config import parse_overrides

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(yaml_value(v) for v in value) + "]"
    text = str(value)
    if text and " " not in text and parse_overrides([f"k={text}"]).get("k") == text:
        return text
    return "'" + text.replace("'", "''") + "'"


def _ranks(ranks: Optional[Sequence[int]]) -> List[int]:
    return list(ranks) if ranks else [0]


def nsys(profile_step_start: int, profile_step_end: int, profile_ranks: Optional[Sequence[int]] = None,
         record_shapes: bool = False) -> List[str]:
    return ["profiling.use_nsys_profiler=true",
            f"profiling.profile_step_start={profile_step_start}",
            f"profiling.profile_step_end={profile_step_end}",
            f"profiling.profile_ranks={yaml_value(_ranks(profile_ranks))}",
            f"profiling.record_shapes={yaml_value(record_shapes)}"]


def pytorch_profiler(profile_step_start: int, profile_step_end: int, profile_ranks: Optional[Sequence[int]] = None,
                     record_memory_history: bool = False, memory_snapshot_path: str = "snapshot.pickle",
                     record_shapes: bool = False) -> List[str]:
    return ["profiling.use_pytorch_profiler=true",
            f"profiling.profile_step_start={profile_step_start}",
            f"profiling.profile_step_end={profile_step_end}",
            f"profiling.profile_ranks={yaml_value(_ranks(profile_ranks))}",
            f"profiling.record_memory_history={yaml_value(record_memory_history)}",
            f"profiling.memory_snapshot_path={yaml_value(memory_snapshot_path)}",
            f"profiling.record_shapes={yaml_value(record_shapes)}"]


def wandb(project: str, entity: Optional[str] = None, name: Optional[str] = None, save_dir: Optional[str] = None) -> List[str]:
    out = [f"logger.wandb_project={yaml_value(project)}"]
    if entity:
        out.append(f"logger.wandb_entity={yaml_value(entity)}")
    if name:
        out.append(f"logger.wandb_exp_name={yaml_value(name)}")
    if save_dir:
        out.append(f"logger.wandb_save_dir={yaml_value(save_dir)}")
    return out


def preemption(enable_exit_handler: bool = True) -> List[str]:
    return ["train.exit_signal_handler=true"] if enable_exit_handler else []


def fault_tolerance(enable_ft_package: bool = True, calc_ft_timeouts: bool = True) -> List[str]:
    return [f"ft.enable_ft_package={yaml_value(enable_ft_package)}", f"ft.calc_ft_timeouts={yaml_value(calc_ft_timeouts)}"]
