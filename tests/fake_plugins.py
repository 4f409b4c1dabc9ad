"""Plugins used by the plugin-manager tests through fake entry points."""

import attrs

from plugtron.hookspecs import hookimpl


class Recorder:
    def __init__(self, config):
        self.calls = []

    @hookimpl
    def on_train_start(self, state):
        self.calls.append("on_train_start")

    def on_step(self, state, metrics):  # undecorated: still a hook (name matches a spec)
        self.calls.append(("on_step", metrics))

    def on_save(self, state, checkpoint_dir):
        return {"seen": len(self.calls)}

    def on_load(self, state, checkpoint_dir, plugin_state):
        self.calls.append(("on_load", plugin_state))


class DecoratedTypo:
    def __init__(self, config):
        pass

    @hookimpl
    def on_stepp(self, state, metrics):
        pass


class UndecoratedTypo:
    def __init__(self, config):
        pass

    def on_train_strat(self, state):
        pass


class WrongArgument:
    def __init__(self, config):
        pass

    @hookimpl
    def on_step(self, state, metric):
        pass


class Raises:
    def __init__(self, config):
        pass

    def on_step(self, state, metrics):
        raise RuntimeError("boom at step")


class WithSettings:
    @attrs.define(kw_only=True)
    class Settings:
        every: int = 1
        tag: str = "x"

    def __init__(self, config, settings):
        self.settings = settings

    def on_train_start(self, state):
        pass


class FailsToInit:
    def __init__(self, config):
        raise ValueError("needs a GPU")


class FirstOnLoad:
    """tryfirst on the per-plugin hooks: must run before plugins registered after it."""

    def __init__(self, log=None):
        self.log = log if log is not None else []

    @hookimpl(tryfirst=True)
    def on_load(self, state, checkpoint_dir, plugin_state):
        self.log.append("first")

    @hookimpl(tryfirst=True)
    def on_exception(self, state, exc):
        self.log.append("first")

    @hookimpl(tryfirst=True)
    def on_step(self, state, metrics):
        self.log.append("first")


class WrapsOnSave:
    def __init__(self, config):
        pass

    @hookimpl(hookwrapper=True)
    def on_save(self, state, checkpoint_dir):
        yield


class NoSettings:
    def __init__(self, config):
        pass

    def on_step(self, state, metrics):
        pass


class ChecksConfig:
    """A static config check: refuses train_iters above 1000 before anything is built."""

    @classmethod
    def config_problems(cls, config):
        n = config.train.train_iters
        return [f"train.train_iters: checks_config supports at most 1000 iterations, got {n}"] if n > 1000 else []

    def __init__(self, config):
        pass

    def on_step(self, state, metrics):
        pass
