"""RelaxationCallback in a real Lightning Trainer: plain-loop gradients, logging, errors."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from omlt_relax.lightning import RelaxationCallback, default_batch_x  # noqa: E402
from omlt_relax.network import UnsupportedNetworkError  # noqa: E402
from omlt_relax.penalties import StabilityPenalty  # noqa: E402
from omlt_relax.regularizer import RelaxationRegularizer  # noqa: E402
from omlt_relax.train import build_model  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
]

BOX = ([-3.0, -3.0], [3.0, 3.0])
GRAD_TOL = 1e-6


class Module(pl.LightningModule):
    """A user's module: MSE in training_step, nothing about omlt_relax."""

    def __init__(self, net: nn.Module, lr: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.lr = lr

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class GradRecorder(pl.Callback):
    """Keeps a copy of every parameter's gradient just before each optimizer step."""

    def __init__(self) -> None:
        self.grads: list[list[torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads.append([p.grad.detach().clone() for p in pl_module.parameters()])


def make_net(seed: int = 0) -> nn.Sequential:
    return build_model(2, (10, 10), 1, seed)


def data(n: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 6 - 3
    return x, torch.sin(x[:, :1]) + x[:, 1:] ** 2


def trainer(callbacks: list[pl.Callback], tmp_path: Path, **kw: object) -> pl.Trainer:
    opts: dict[str, object] = {
        "max_steps": 1,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "logger": False,
        "default_root_dir": tmp_path,
    }
    opts.update(kw)
    return pl.Trainer(callbacks=callbacks, **opts)


def plain_loop_grads(
    net: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    accumulate: int,
    **reg_kw: object,
) -> list[torch.Tensor]:
    """``loss = (mse + reg(x)) / accumulate`` summed over the batches of one optimizer step."""
    ref = copy.deepcopy(net)
    reg = RelaxationRegularizer(ref, BOX, **reg_kw)
    for x, y in batches:
        loss = nn.functional.mse_loss(ref(x), y) + reg(x)
        (loss / accumulate).backward()
    return [p.grad for p in ref.parameters()]


try:
    import omlt_relax.lp.gap  # noqa: F401

    HAVE_LP = True
except ImportError:  # the LP module is optional here
    HAVE_LP = False

CONFIGS = {
    "bigm+stability": {"bigm": 0.1, "stability": 0.05},
    "bigm+lp_gap": {"bigm": 0.1, "lp_gap": 0.5},
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("accumulate", [1, 2])
def test_callback_gives_the_plain_loop_gradients(
    tmp_path: Path, accumulate: int, config: str
) -> None:
    if "lp_gap" in CONFIGS[config] and not HAVE_LP:
        pytest.skip("omlt_relax.lp not available")
    net = make_net()
    x, y = data(32)
    batches = [(x[:16], y[:16]), (x[16:], y[16:])][:accumulate]
    kw = CONFIGS[config]
    expected = plain_loop_grads(net, batches, accumulate, **kw)

    rec = GradRecorder()
    cb = RelaxationCallback(BOX, **kw)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    trainer([cb, rec], tmp_path, max_steps=1, accumulate_grad_batches=accumulate).fit(
        Module(net), loader
    )
    assert len(rec.grads) == 1
    for got, want in zip(rec.grads[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=GRAD_TOL, atol=GRAD_TOL)
    # and the regularizer really contributed
    no_reg = plain_loop_grads(net, batches, accumulate)
    assert (rec.grads[0][0] - no_reg[0]).abs().max() > 1e-4
    if "lp_gap" in kw:
        assert cb.regularizer is not None
        assert cb.regularizer.metrics()["mean_lp_gap"] >= 0.0


def test_callback_with_penalty_object_and_crown(tmp_path: Path) -> None:
    net = make_net()
    x, y = data(16)
    ref = copy.deepcopy(net)
    ref_stab = StabilityPenalty(ref, BOX, weight=0.2, variant="triangle", bounds="crown")
    reg = RelaxationRegularizer(ref, BOX, bigm=0.1, stability=ref_stab, bounds="crown")
    (nn.functional.mse_loss(ref(x), y) + reg(x)).backward()
    expected = [p.grad for p in ref.parameters()]

    stab = StabilityPenalty(net, BOX, weight=0.2, variant="triangle", bounds="crown")
    rec = GradRecorder()
    cb = RelaxationCallback(BOX, bigm=0.1, stability=stab, bounds="crown")
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    trainer([cb, rec], tmp_path).fit(Module(net), loader)
    for got, want in zip(rec.grads[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=GRAD_TOL, atol=GRAD_TOL)


def test_warmup_counts_batches_and_metrics_are_logged_to_csv(tmp_path: Path) -> None:
    net = make_net()
    x, y = data(64)
    rec = GradRecorder()
    cb = RelaxationCallback(BOX, bigm=0.1, warmup=2)
    logger = pl.loggers.CSVLogger(tmp_path, name="relax")
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    tr = trainer([cb, rec], tmp_path, max_steps=3, logger=logger, log_every_n_steps=1)
    module = Module(net)
    tr.fit(module, loader)
    # steps 1-2: warm-up, the plain MSE gradient; step 3: with the penalty
    assert cb.regularizer is not None and cb.regularizer.step == 3
    assert tr.callback_metrics["relax/step"] == 3.0
    assert tr.callback_metrics["relax/bigm"] > 0.0
    path = Path(logger.log_dir) / "metrics.csv"
    rows = list(csv.DictReader(path.open()))
    logged = [float(r["relax/bigm"]) for r in rows if r.get("relax/bigm")]
    assert logged[:2] == [0.0, 0.0] and logged[2] > 0.0
    assert {"relax/unstable", "relax/mean_bigm", "relax/max_bigm"} <= set(rows[0])


def test_warmup_step_is_restored_from_checkpoint_state(tmp_path: Path) -> None:
    net = make_net()
    x, y = data(16)
    cb = RelaxationCallback(BOX, bigm=0.1, warmup=5, log=False)
    cb.load_state_dict({"step": 4})
    rec = GradRecorder()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    trainer([cb, rec], tmp_path, max_steps=1).fit(Module(net), loader)
    assert cb.state_dict() == {"step": 5}
    # the 5th call was still warm-up: the plain MSE gradient
    for got, want in zip(rec.grads[0], plain_loop_grads(net, [(x, y)], 1), strict=True):
        torch.testing.assert_close(got, want, rtol=GRAD_TOL, atol=GRAD_TOL)


def test_module_with_plain_optimizer_step_still_trains(tmp_path: Path) -> None:
    """With a real learning rate, regularized Lightning training lowers the big-M penalty."""
    net = make_net(3)
    x, y = data(64)
    before = RelaxationRegularizer(net, BOX).metrics()["mean_bigm"]
    cb = RelaxationCallback(BOX, bigm=1.0, log=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    trainer([cb], tmp_path, max_steps=40).fit(Module(net, lr=0.05), loader)
    after = RelaxationRegularizer(net, BOX).metrics()["mean_bigm"]
    assert after < before


# -- finding the network, bad input -------------------------------------------------------------
class TwoNets(Module):
    def __init__(self) -> None:
        super().__init__(make_net())
        self.other = make_net(1)


class Wrapped(Module):
    """The network one level down, ``self.inner.surrogate``."""

    def __init__(self) -> None:
        super().__init__(nn.Identity())
        self.inner = nn.Module()
        self.inner.surrogate = make_net()

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.inner.surrogate(x), y)


def _fit(cb: RelaxationCallback, module: pl.LightningModule, tmp_path: Path) -> None:
    x, y = data(16)
    trainer([cb], tmp_path).fit(module, DataLoader(TensorDataset(x, y), batch_size=16))


def test_network_is_found_or_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"several nn.Sequential attributes \('net', 'other'\)"):
        _fit(RelaxationCallback(BOX, bigm=0.1), TwoNets(), tmp_path)
    cb = RelaxationCallback(BOX, bigm=0.1, model_attr="other")
    module = TwoNets()
    _fit(cb, module, tmp_path)
    assert cb.regularizer is not None and cb.regularizer.model is module.other
    cb = RelaxationCallback(BOX, bigm=0.1, model_attr="inner.surrogate")
    _fit(cb, Wrapped(), tmp_path)
    with pytest.raises(ValueError, match="no nn.Sequential attribute"):
        _fit(RelaxationCallback(BOX, bigm=0.1), Wrapped(), tmp_path)
    with pytest.raises(ValueError, match="has no attribute 'model'"):
        _fit(RelaxationCallback(BOX, bigm=0.1, model_attr="model"), Module(make_net()), tmp_path)
    with pytest.raises(ValueError, match="is a Linear, not an nn.Sequential"):
        _fit(RelaxationCallback(BOX, bigm=0.1, model_attr="net.0"), Module(make_net()), tmp_path)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inverted at input 1"):
        RelaxationCallback(([0.0, 1.0], [1.0, 0.0]), bigm=0.1)
    with pytest.raises(ValueError, match="input bound 0 is not finite"):
        RelaxationCallback(([float("nan"), 0.0], [1.0, 1.0]), bigm=0.1)
    with pytest.raises(ValueError, match="3 entries but the network has 2 inputs"):
        _fit(RelaxationCallback(([0.0] * 3, [1.0] * 3), bigm=0.1), Module(make_net()), tmp_path)
    bad = nn.Sequential(nn.Linear(2, 4), nn.LeakyReLU(), nn.Linear(4, 1))
    with pytest.raises(UnsupportedNetworkError, match=r"module 1 \(LeakyReLU\)"):
        _fit(RelaxationCallback(BOX, bigm=0.1), Module(bad), tmp_path)
    with pytest.raises(ValueError, match="cannot find the inputs"):
        default_batch_x("not a batch")
    assert default_batch_x({"x": torch.ones(2, 2)}).shape == (2, 2)
