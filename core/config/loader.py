"""Build a ``ConfigContainer`` from a recipe, an optional YAML file and dotted overrides.

Order: recipe defaults < YAML file < command-line overrides. Everything is merged as plain data
and structured once, so a YAML typo and a CLI typo get the same message and are reported together.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Optional

from plugtron.config import yaml_io, yaml_limits
from plugtron.errors import ConfigError


def parse_overrides(overrides: Iterable[str], repeats_ok: bool = False) -> Dict[str, Any]:
    """``["train.train_iters=100", "optimizer.lr=3e-4"]`` -> nested dict, values typed as YAML.

    The same key twice (``a.b=1 a.b=2``, or ``a={b: 1} a.b=2``) is an error, as a duplicate key in a
    YAML file is: on a command line it is a mistake. ``repeats_ok`` keeps the later value instead,
    for Python callers that compose lists (``base + ["model.num_layers=8"]``)."""
    tree: Dict[str, Any] = {}
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        shown = item if len(item) <= 80 else item[:60] + "..." + item[-12:]
        parts = key.split(".")
        if not sep or not key or any(not part for part in parts):
            problems.append(f"override {shown!r}: expected dotted.key=value (e.g. train.train_iters=100)")
            continue
        if len(parts) > yaml_limits.MAX_DEPTH:
            problems.append(f"override {shown!r}: key nested deeper than {yaml_limits.MAX_DEPTH} levels (the limit)")
            continue
        try:
            value = yaml_io.parse_scalar(raw)
        except ConfigError as exc:
            problems.append(f"override {shown!r}: {exc.problems[0]}")
            continue
        node = tree
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(f"override {shown!r}: {'.'.join(parts[:i + 1])} was already given a value")
                break
            node = nxt
        else:
            if parts[-1] in node and not repeats_ok:
                problems.append(f"override {shown!r}: {key} is given twice on the command line")
            else:
                node[parts[-1]] = value
    if problems:
        raise ConfigError(problems, source="command line")
    return tree


def deep_merge(base: Any, update: Any, path: str = "") -> Any:
    """Merge ``update`` into a copy of ``base``: mappings recursively, anything else replaced."""
    if isinstance(base, dict) and isinstance(update, dict):
        out = dict(base)
        for k, v in update.items():
            out[k] = deep_merge(base.get(k), v, f"{path}.{k}" if path else str(k)) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(update)


def _replace_other_dataset_kind(base: Dict[str, Any], update: Any) -> Dict[str, Any]:
    """A ``dataset`` section of the other kind (SFT: ``dataset_root``; pretraining: ``blend``,
    ``sequence_length``, ...) replaces the one below it instead of merging: their fields differ."""
    new, old = (update or {}).get("dataset") if isinstance(update, dict) else None, base.get("dataset")
    if not (isinstance(new, dict) and isinstance(old, dict)):
        return base
    pretraining = {"blend", "blend_per_split", "split", "sequence_length", "mock"}
    to_sft = "dataset_root" in new and "dataset_root" not in old
    to_pretraining = bool(pretraining & set(new)) and "dataset_root" in old
    return {k: v for k, v in base.items() if k != "dataset"} if to_sft or to_pretraining else base


def merge_sources(base: Any, update: Any) -> Any:
    """``deep_merge``, except that a dataset section of the other kind replaces the one below it,
    and a ``model.provider`` different from the base's starts the model section from that
    provider's own defaults (``provider: llama3_8b`` over the tiny recipe is a Llama 3 8B, not a
    tiny model of class Llama3_8B); keys given next to it still apply."""
    base = _replace_other_dataset_kind(base, update)
    model = update.get("model") if isinstance(update, dict) else None
    if isinstance(model, dict) and "provider" in model and isinstance(base, dict):
        old = base.get("model")
        if isinstance(old, dict) and old.get("provider", "gpt") != model["provider"]:
            base = {**base, "model": {}}
    return deep_merge(base, update)


def load_data(config_path: Optional[str] = None, overrides: Iterable[str] = (), repeats_ok: bool = False) -> Dict[str, Any]:
    """The YAML file merged with the overrides, as plain data (no recipe). Torch-free: shared by
    ``load_config`` and ``plugins list``, so both read a config with the same loader and rules."""
    data: Dict[str, Any] = yaml_io.load_file(config_path) if config_path else {}
    tree = parse_overrides(overrides, repeats_ok=repeats_ok)
    return merge_sources(data, tree) if tree else data


def load_config(
    config_path: Optional[str] = None,
    overrides: Iterable[str] = (),
    recipe: str = "tiny",
    repeats_ok: bool = True,
):
    """Recipe + YAML + overrides -> an unvalidated ``ConfigContainer``.

    From Python a key repeated in ``overrides`` keeps the later value; the command line passes
    ``repeats_ok=False`` (see ``parse_overrides``)."""
    from plugtron.config.container import ConfigContainer, resolve_types
    from plugtron.config.converter import structure, unstructure
    from plugtron.recipes import get_recipe

    from_file = yaml_io.load_file(config_path) if config_path else {}
    tree = parse_overrides(overrides, repeats_ok=repeats_ok)
    user = merge_sources(from_file, tree) if tree else from_file  # YAML and override errors before importing torch
    make_recipe = get_recipe(recipe)  # so is an unknown recipe name
    resolve_types()
    data = merge_sources(unstructure(make_recipe()), user)
    user_set = {**leaf_paths(from_file, str(config_path)), **leaf_paths(tree, "command line")}
    sources = [f"recipe {recipe!r}"] + ([str(config_path)] if config_path else []) + (["command line"] if tree else [])
    from plugtron.config import from_checkpoint

    user_model = user.get("model") if isinstance(user.get("model"), dict) else {}
    contradictions = from_checkpoint.apply(data, user_model, user_set, recipe)  # the checkpoint's architecture, if one is named
    if contradictions:
        raise ConfigError(contradictions, source=" + ".join(sources))
    tokenizer_notes = from_checkpoint.apply_tokenizer(data, user_set)  # the checkpoint's recorded tokenizer, unless the user set one
    too_long, notes = from_checkpoint.apply_seq_length(data, user_set)  # one sequence length, within the model's
    if too_long:
        raise ConfigError(too_long, source=" + ".join(sources))
    cfg = structure(data, ConfigContainer, source=" + ".join(sources))
    cfg.user_set = user_set
    cfg.source = " + ".join(sources)
    cfg.notes = tokenizer_notes + notes  # logged by the run (config show's stdout stays YAML)
    return cfg


def leaf_paths(tree: Any, source: str, prefix: str = "") -> Dict[str, str]:
    """``{"model": {"hidden_size": 64}}`` -> ``{"model.hidden_size": source}`` (what the user set)."""
    if not isinstance(tree, dict):
        return {prefix: source} if prefix else {}
    out: Dict[str, str] = {}
    for key, value in tree.items():
        out.update(leaf_paths(value, source, f"{prefix}.{key}" if prefix else str(key)))
    return out


def to_yaml(cfg) -> str:
    from plugtron.config.container import resolve_types
    from plugtron.config.converter import unstructure

    resolve_types()
    return yaml_io.dumps(unstructure(cfg))


def from_yaml(text: str, source: str = "<string>"):
    """Exactly the config ``to_yaml`` wrote (no recipe underneath)."""
    from plugtron.config.container import ConfigContainer, resolve_types
    from plugtron.config.converter import structure

    resolve_types()
    return structure(yaml_io.loads(text, source=source) or {}, ConfigContainer, source=source)
