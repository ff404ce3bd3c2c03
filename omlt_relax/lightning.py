"""``RelaxationCallback``: the relaxation regularizer as a drop-in PyTorch Lightning callback.

.. code-block:: python

    from omlt_relax.lightning import RelaxationCallback

    cb = RelaxationCallback((lb, ub), bigm=1e-2, stability=1e-3)
    trainer = lightning.pytorch.Trainer(callbacks=[cb], ...)
    trainer.fit(module, loader)          # module unchanged: its training_step returns the MSE

How it works, per training batch (automatic optimization):

1. ``on_train_batch_start`` keeps the batch's inputs ``x`` (only needed by the LP-gap term);
2. Lightning runs ``training_step`` and ``backward`` of :math:`\\mathcal L / N`, with
   :math:`N` = ``accumulate_grad_batches``;
3. ``on_after_backward`` evaluates :math:`R(\\theta; x)` of
   :class:`~omlt_relax.regularizer.RelaxationRegularizer` and adds

   .. math::  \\nabla_\\theta\\, R(\\theta; x) / N

   to every parameter's ``.grad`` (times the loss scale of a ``16-mixed`` gradient scaler, if one
   is active), which is exactly the gradient of ``loss = mse + reg(x)`` of a plain loop, gradient
   accumulation included. Clipping and the optimizer step come after, as usual.

With manual optimization the term is added once per batch, after the first ``manual_backward``,
without the :math:`1/N` factor. Under multi-device data parallelism the bound penalties are the same
on every device, so adding them per device is exact; the LP-gap term depends on each device's batch
and is refused there (its gradient would not be averaged).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

try:
    import lightning.pytorch as pl
except ImportError as _err:  # pragma: no cover - depends on the installed extras
    msg = (
        "omlt_relax.lightning needs PyTorch Lightning: pip install 'omlt_relax[lightning]' "
        f"({_err})"
    )
    raise ImportError(msg) from _err

from typing_extensions import override

from omlt_relax.bounds.methods import check_method
from omlt_relax.network import as_box
from omlt_relax.penalties import Penalty, check_weight
from omlt_relax.regularizer import RelaxationRegularizer

Tensor = torch.Tensor


def default_batch_x(batch: Any) -> Tensor:
    """The inputs of a batch: the batch itself (a tensor), its first item (tuple/list), or
    ``batch["x"]`` (dict)."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, tuple | list) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("x"), Tensor):
        return batch["x"]
    msg = (
        f"cannot find the inputs in a training batch of type {type(batch).__name__}; expected a "
        "tensor, an (x, y) tuple or a dict with key 'x'. Pass batch_x=lambda batch: ... to "
        "RelaxationCallback"
    )
    raise ValueError(msg)


def find_sequential(pl_module: nn.Module, model_attr: str | None = None) -> nn.Sequential:
    """The ``nn.Sequential`` to regularize: ``pl_module.<model_attr>`` (dotted path allowed), or
    else the unique direct ``nn.Sequential`` attribute of the module."""
    if model_attr is not None:
        obj: Any = pl_module
        for part in model_attr.split("."):
            if not hasattr(obj, part):
                msg = (
                    f"{type(pl_module).__name__} has no attribute {model_attr!r} "
                    f"(model_attr={model_attr!r})"
                )
                raise ValueError(msg)
            obj = getattr(obj, part)
        if not isinstance(obj, nn.Sequential):
            msg = (
                f"model_attr={model_attr!r} is a {type(obj).__name__}, not an nn.Sequential of "
                "Linear/ReLU layers"
            )
            raise ValueError(msg)
        return obj
    found = [(n, m) for n, m in pl_module.named_children() if isinstance(m, nn.Sequential)]
    if not found:
        msg = (
            f"{type(pl_module).__name__} has no nn.Sequential attribute to regularize; keep the "
            "network in one (self.net = nn.Sequential(...)) or pass model_attr='name'"
        )
        raise ValueError(msg)
    if len(found) > 1:
        names = ", ".join(repr(n) for n, _ in found)
        msg = (
            f"{type(pl_module).__name__} has several nn.Sequential attributes ({names}); "
            "say which one is the surrogate with model_attr='name'"
        )
        raise ValueError(msg)
    return found[0][1]


class RelaxationCallback(pl.Callback):
    """Adds the gradient of :class:`~omlt_relax.regularizer.RelaxationRegularizer` to training.

    Args:
        input_bounds: ``(lb, ub)`` box of the optimization problem.
        bigm, stability, lp_gap, warmup, bounds, penalties, every: as for
            ``RelaxationRegularizer`` (a penalty object must be bound to the module's
            ``nn.Sequential``). ``warmup`` and ``every`` count training batches.
        model_attr: attribute name (dotted path allowed) of the ``nn.Sequential``; default: the
            unique ``nn.Sequential`` attribute of the LightningModule.
        log: log :meth:`RelaxationRegularizer.metrics` each step with ``pl_module.log`` under
            ``"relax/<key>"`` (NaN entries skipped).
        batch_x: function returning the inputs of a batch (default :func:`default_batch_x`).

    As Lightning's own callbacks do: the options are checked here (box, weights, method, warm-up),
    what depends on the trainer (the module's network, the number of devices) in :meth:`setup`.
    The regularizer is built at ``setup`` of a fit and kept across fits of the same network;
    :attr:`regularizer` exposes it (``None`` before). Its step counter is saved in checkpoints
    under :attr:`state_key` (which tells several callbacks with other options apart).
    """

    def __init__(
        self,
        input_bounds: Any,
        bigm: Any = None,
        stability: Any = None,
        lp_gap: Any = None,
        warmup: int = 0,
        bounds: str = "ibp",
        model_attr: str | None = None,
        log: bool = True,
        batch_x: Callable[[Any], Tensor] | None = None,
        penalties: list[Penalty] | None = None,
        every: int = 1,
    ) -> None:
        super().__init__()
        self.input_bounds = as_box(input_bounds)
        check_method(bounds)
        if isinstance(warmup, bool) or int(warmup) != warmup or warmup < 0:
            msg = f"warmup must be a whole number of calls >= 0, got {warmup!r}"
            raise ValueError(msg)
        if isinstance(every, bool) or int(every) != every or every < 1:
            msg = f"every must be a whole number of calls >= 1, got {every!r}"
            raise ValueError(msg)
        for name, spec in (("bigm", bigm), ("stability", stability), ("lp_gap", lp_gap)):
            if isinstance(spec, int | float) and not isinstance(spec, bool):
                check_weight(spec)
            elif spec is not None and not callable(spec):
                msg = f"{name}= must be None, a weight or a penalty object, got {spec!r}"
                raise TypeError(msg)
        if penalties is not None and not all(isinstance(p, Penalty) for p in penalties):
            msg = "penalties= takes a list of Penalty objects (omlt_relax.penalties.Penalty)"
            raise TypeError(msg)
        if model_attr is not None and not isinstance(model_attr, str):
            msg = f"model_attr must be an attribute name (str) or None, got {model_attr!r}"
            raise TypeError(msg)
        if batch_x is not None and not callable(batch_x):
            msg = f"batch_x must be a function batch -> x, got {batch_x!r}"
            raise TypeError(msg)
        self.config: dict[str, Any] = {
            "bigm": bigm,
            "stability": stability,
            "lp_gap": lp_gap,
            "warmup": warmup,
            "bounds": bounds,
            "penalties": penalties,
            "every": int(every),
        }
        self.model_attr = model_attr
        self.log = bool(log)
        self.batch_x = batch_x or default_batch_x
        self.regularizer: RelaxationRegularizer | None = None
        self._x: Tensor | None = None
        self._batch_size: int | None = None
        self._applied = True
        self._restored_step: int | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            input_lower=self.input_bounds[0].tolist(),
            input_upper=self.input_bounds[1].tolist(),
            model_attr=self.model_attr,
        )

    # -- setup ---------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Find the network and build the regularizer (fits only); refuse the LP-gap term on
        more than one device (its gradient depends on each device's batch)."""
        if stage != "fit":
            return
        net = find_sequential(pl_module, self.model_attr)
        if self.regularizer is None or self.regularizer.model is not net:
            self.regularizer = RelaxationRegularizer(net, self.input_bounds, **self.config)
        if self.regularizer.needs_x and trainer.world_size > 1:
            msg = (
                "the LP-gap term is not supported with more than one device (its gradient "
                "depends on each device's batch); use bigm/stability or a single device"
            )
            raise ValueError(msg)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Apply a warm-up step counter restored from a checkpoint."""
        if self.regularizer is not None and self._restored_step is not None:
            self.regularizer.step = self._restored_step
            self._restored_step = None

    # -- per batch -----------------------------------------------------------------------
    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._applied = False
        self._x = None
        self._batch_size = None
        if self.regularizer is not None and self.regularizer.needs_x:
            self._x = self.batch_x(batch)
            self._batch_size = int(self._x.shape[0])

    @override
    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reg = self.regularizer
        if reg is None or self._applied:
            return
        self._applied = True
        share = 1.0 / trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1.0
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        value = reg.backward(self._x, share) if scaler is None else reg(self._x)
        if scaler is not None and value.requires_grad:
            value = scaler.scale(value * share)
            params = [p for p in reg.model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(value, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    if g is None:
                        continue
                    if p.grad is None:
                        p.grad = g.detach().clone()
                    else:
                        p.grad.add_(g)
        if self.log:
            metrics = {
                f"relax/{k}": float(v) for k, v in reg.metrics().items() if not math.isnan(v)
            }
            pl_module.log_dict(
                metrics, on_step=True, on_epoch=False, batch_size=self._batch_size or 1
            )

    # -- checkpointing -------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.regularizer.step if self.regularizer is not None else 0}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored_step = int(state_dict.get("step", 0))


__all__ = ["RelaxationCallback", "default_batch_x", "find_sequential"]
