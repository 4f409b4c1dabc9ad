"""``Hooks``: the typed facade the loop calls instead of ``pm.hook``, with error attribution and
optional hook tracing.

Call order (pluggy's): implementations registered *later* run *first*; ``tryfirst``/``trylast``
move an implementation to the front/back of that order. Hooks whose result belongs to one plugin
(``configure_model``, ``on_save``, ``on_load``, ``collect_metrics``, ``on_exception``) call each
implementation on its own, in that same order; wrappers are rejected on them at load time (see
``PER_PLUGIN_HOOKS``). Every other hook goes through pluggy and honours ``wrapper=True`` and
``hookwrapper=True`` too.

Tracing (``PLUGTRON_TRACE_HOOKS=1``: rank 0; ``=all``: every rank) logs each hook call with the
plugins it called, in order, and its duration. Off, it costs nothing: the plain call path is bound
at construction.
"""

from __future__ import annotations

import contextlib

import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from plugtron.errors import PluginError

TRACE_ENV = "PLUGTRON_TRACE_HOOKS"
# These hooks call each implementation separately (per-plugin results or per-plugin attribution),
# so a wrapper around "the other implementations" has no meaning there.
PER_PLUGIN_HOOKS = ("configure_model", "on_save", "on_load", "collect_metrics", "on_exception")
trace_log = logging.getLogger("plugtron.hooks")


def _iteration(kwargs: Dict[str, Any]) -> str:
    state = kwargs.get("state")
    it = getattr(state, "iteration", None)
    split = kwargs.get("split")
    return (f":{split}" if split and split != "train" else "") + (f"@{it}" if it is not None else "")


def tracer_from_env() -> Optional[Callable[[str, str, List[str], float], None]]:
    """The logging observer selected by ``PLUGTRON_TRACE_HOOKS`` on this rank, or ``None``."""
    mode = os.environ.get(TRACE_ENV, "").strip().lower()
    if mode in ("", "0", "false", "no", "off"):
        return None
    rank = int(os.environ.get("RANK", "0"))
    if mode != "all" and rank != 0:
        return None
    prefix = f"[rank {rank}] " if mode == "all" else ""

    def log_call(hook: str, where: str, plugins: List[str], seconds: float) -> None:
        trace_log.info(f"{prefix}hook {hook}{where}: {', '.join(plugins) or '(no plugin)'} "
                       f"in {seconds * 1e3:.3f} ms")

    if trace_log.getEffectiveLevel() > logging.INFO:
        trace_log.setLevel(logging.INFO)  # asked for explicitly: not hidden by a WARNING root on rank>0
    return log_call


class Hooks:
    """Typed facade over ``pm.hook``: the loop calls these, never ``pm.hook`` directly.

    A hook that raises is re-raised as :class:`PluginError` naming the plugin and its distribution.
    ``observers`` are called after every hook call as ``(hook, where, plugins_in_order, seconds)``
    (hook tracing, ``plugtron.testing``'s transcript)."""

    def __init__(self, manager, observers: Optional[List[Callable]] = None):
        self._m = manager
        self._h = manager.pm.hook
        self.observers = list(observers or [])
        tracer = tracer_from_env()
        if tracer is not None:
            self.observers.append(tracer)

    # ---- plumbing ----------------------------------------------------------------------------
    def _fail(self, hook: str, exc: Exception, name: Optional[str] = None) -> PluginError:
        name = name or self._m.owner_of(exc)
        who = f"plugin {name!r} ({self._m.dist_label(name)})" if name else "a plugin"
        return PluginError(f"{who} raised in {hook}: {type(exc).__name__}: {exc}")

    def impls(self, hook: str) -> List[Any]:
        """Implementations of ``hook`` in the order pluggy calls them (first called first)."""
        return list(reversed(getattr(self._h, hook).get_hookimpls()))

    def _observe(self, hook: str, kwargs: Dict[str, Any], names: List[str], t0: float) -> None:
        seconds = time.perf_counter() - t0
        where = _iteration(kwargs)
        for observer in self.observers:
            observer(hook, where, names, seconds)

    def _call(self, hook: str, **kwargs: Any) -> List[Any]:
        t0 = time.perf_counter() if self.observers else 0.0
        try:
            result = getattr(self._h, hook)(**kwargs)
        except PluginError:
            raise
        except Exception as exc:
            raise self._fail(hook, exc) from exc
        if self.observers:
            self._observe(hook, kwargs, [i.plugin_name for i in self.impls(hook)], t0)
        return result

    def _each(self, hook: str, **kwargs: Any) -> List[Tuple[str, Any]]:
        """Call every implementation on its own, in pluggy's order: ``[(plugin, result)]``. An
        evaluation's ``collect_metrics`` asks only the implementations that take ``split``."""
        t0 = time.perf_counter() if self.observers else 0.0
        impls = self.impls(hook)
        if kwargs.get("split", "train") != "train":
            impls = [i for i in impls if "split" in i.argnames]
        out = [(impl.plugin_name, self._call_impl(hook, impl, kwargs)) for impl in impls]
        if self.observers:
            self._observe(hook, kwargs, [i.plugin_name for i in impls], t0)
        return out

    def _call_impl(self, hook: str, impl, kwargs: Dict[str, Any]) -> Any:
        try:
            return impl.function(*[kwargs[a] for a in impl.argnames])
        except PluginError:
            raise
        except Exception as exc:
            raise self._fail(hook, exc, impl.plugin_name) from exc

    # ---- the hooks -----------------------------------------------------------------------------
    def configure_model(self, config, provider) -> None:
        from plugtron.model_changes import check_all, tracked

        trackers = tracked(config, provider)  # model, ddp, optimizer
        t0 = time.perf_counter() if self.observers else 0.0
        impls = self.impls("configure_model")
        for impl in impls:
            with contextlib.ExitStack() as stack:
                for tracker in trackers:
                    stack.enter_context(tracker.attributed_to(impl.plugin_name))
                self._call_impl("configure_model", impl, {"config": config, "provider": provider})
        check_all(trackers)
        if self.observers:
            self._observe("configure_model", {}, [i.plugin_name for i in impls], t0)

    def transform_model(self, config, model) -> None:
        self._call("transform_model", config=config, model=model)

    def on_train_start(self, state) -> None:
        self._call("on_train_start", state=state)

    def on_step_start(self, state) -> None:
        self._call("on_step_start", state=state)

    def on_before_optimizer_step(self, state) -> None:
        self._call("on_before_optimizer_step", state=state)

    def on_step(self, state, metrics) -> None:
        self._call("on_step", state=state, metrics=metrics)

    def collect_metrics(self, state, log: Dict[str, Any], split: str = "train") -> Dict[str, Any]:
        """Merge each plugin's metrics into ``log`` (in place; returned). A key the loop or
        another plugin already set is an error naming both. For an evaluation record (``split``
        not ``"train"``) only the implementations that take ``split`` are asked."""
        owner = {k: "the loop" for k in log}
        for name, extra in self._each("collect_metrics", state=state, split=split):
            if extra is None:
                continue
            if not isinstance(extra, dict):
                raise PluginError(f"plugin {name!r} ({self._m.dist_label(name)}): collect_metrics must return a dict "
                                  f"of metrics (or None), got {type(extra).__name__}")
            for key, value in extra.items():
                if key in owner:
                    raise PluginError(f"plugin {name!r}: collect_metrics returned {key!r}, which {owner[key]} "
                                      "already puts into the log record; use another name")
                owner[key] = f"plugin {name!r}"
                log[key] = value
        return log

    def on_log(self, state, log: Dict[str, Any]) -> None:
        self._call("on_log", state=state, log=log)

    def on_eval_start(self, state, split: str) -> None:
        self._call("on_eval_start", state=state, split=split)

    def on_eval(self, state, split: str, metrics: Dict[str, Any]) -> None:
        self._call("on_eval", state=state, split=split, metrics=metrics)

    def on_eval_log(self, state, split: str, log: Dict[str, Any]) -> None:
        self._call("on_eval_log", state=state, split=split, log=log)

    def on_before_save(self, state) -> None:
        self._call("on_before_save", state=state)

    def on_save(self, state, checkpoint_dir: str) -> Dict[str, Any]:
        """Each implementation's result lands in its plugin's slot (``None``: no slot)."""
        return {name: r for name, r in self._each("on_save", state=state, checkpoint_dir=checkpoint_dir) if r is not None}

    def on_checkpoint_published(self, state, checkpoint_dir: str) -> None:
        self._call("on_checkpoint_published", state=state, checkpoint_dir=checkpoint_dir)

    def on_load(self, state, checkpoint_dir: str, plugin_states: Dict[str, Any]) -> None:
        t0 = time.perf_counter() if self.observers else 0.0
        impls = self.impls("on_load")
        for impl in impls:
            self._call_impl("on_load", impl, {"state": state, "checkpoint_dir": checkpoint_dir,
                                              "plugin_state": plugin_states.get(impl.plugin_name)})
        if self.observers:
            self._observe("on_load", {"state": state}, [i.plugin_name for i in impls], t0)

    def on_train_end(self, state) -> None:
        self._call("on_train_end", state=state)

    def on_exception(self, state, exc: BaseException) -> List[Tuple[str, str]]:
        """Never raises: returns ``(plugin, error)`` pairs for implementations that failed."""
        failures = []
        for impl in self.impls("on_exception"):
            try:
                self._call_impl("on_exception", impl, {"state": state, "exc": exc})
            except PluginError as err:
                failures.append((impl.plugin_name, str(err)))
        return failures

    def enabled(self) -> List[str]:
        """Names of the registered plugins (their saved states come back on resume)."""
        return list(self._m.loaded)

    def dist_label(self, name: str) -> str:
        return self._m.dist_label(name)
