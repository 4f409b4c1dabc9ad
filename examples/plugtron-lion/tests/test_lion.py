import numpy as np
import pytest
import torch

from plugtron_lion.torch_lion import LionTorch


def test_the_update_is_lion():
    """Three steps against the paper's update written out in numpy."""
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=5), [rng.normal(size=5) for _ in range(3)]
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = LionTorch([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    w, m = w0.copy(), np.zeros(5)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        w = w * (1 - 0.1 * 0.5) - 0.1 * np.sign(0.9 * m + 0.1 * g)
        m = 0.99 * m + 0.01 * g
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=0, atol=1e-12)


class OptimizerSpy:
    def on_train_start(self, state):
        parts = getattr(state.optimizer, "chained_optimizers", [state.optimizer])
        self.inner = [type(part.optimizer).__name__ for part in parts]


def test_plugtron_trains_with_lion(plugtron_run):
    spy = OptimizerSpy()
    run = plugtron_run(["optimizer.optimizer=lion", "optimizer.lr=3e-4", "optimizer_options.beta1=0.95",
                        "train.train_iters=6"], [spy])
    assert spy.inner == ["LionTorch"]
    assert run.losses[-1] < run.losses[0]


def _validated(overrides):
    from plugtron.config import load_config
    from plugtron.testing import TINY

    return load_config(None, TINY + overrides).validate()


def test_options_are_typed_checked_and_reported():
    from plugtron.config import to_yaml
    from plugtron.errors import ConfigError

    cfg = _validated(["optimizer.optimizer=lion", "optimizer_options.beta2=0.98"])
    assert cfg.optimizer_options == {"beta1": 0.9, "beta2": 0.98}  # defaults filled in, as config show prints them
    assert "optimizer_options:\n  beta1: 0.9\n  beta2: 0.98" in to_yaml(cfg)
    with pytest.raises(ConfigError, match=r"optimizer_options.beta3: unknown key"):
        _validated(["optimizer.optimizer=lion", "optimizer_options.beta3=0.5"])
    with pytest.raises(ConfigError, match=r"optimizer_options.beta1: expected a value in \[0, 1\), got float 1.5"):
        _validated(["optimizer.optimizer=lion", "optimizer_options.beta1=1.5"])
    with pytest.raises(ConfigError, match=r"optimizer.use_distributed_optimizer: the optimizer 'lion'"):
        _validated(["optimizer.optimizer=lion", "optimizer.use_distributed_optimizer=true"])
