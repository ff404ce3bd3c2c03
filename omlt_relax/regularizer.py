"""``RelaxationRegularizer``: the combined relaxation-informed term for a plain training loop.

.. code-block:: python

    reg = RelaxationRegularizer(model, (lb, ub), bigm=1e-2, stability=1e-3)
    for x, y in loader:
        loss = mse(model(x), y) + reg(x)
        opt.zero_grad(); loss.backward(); opt.step()
    print(reg.metrics())

One call computes the bounds once per method needed (``"ibp"`` or ``"crown"``) and hands them to
every penalty that uses that method, then returns

.. math::

    R(\\theta; x) = [t \\ge T_w]\\,
    \\big(w_B P(\\theta) + w_S S(\\theta) + w_G \\bar g(\\theta; x)\\big),

with :math:`P` the big-M penalty, :math:`S` the stability penalty, :math:`\\bar g` the mean LP gap
over a subsample of the batch (:class:`~omlt_relax.lp.gap.LPGapPenalty`), :math:`t` the number of
earlier calls and :math:`T_w` = ``warmup``: the first ``warmup`` calls return an exact zero (no
bounds, no LPs), later calls the full term (a hard switch, no ramp).

*Lazy regularization* (``every=k``, Karras et al. 2020, StyleGAN2): after the warm-up only every
k-th call computes the term, with k times its weight, :math:`k R(\\theta; x)`; the calls between
return an exact zero. The bound penalties do not depend on the batch, so over k steps the sum of
the gradients is about the same, at 1/k of the penalty's cost per step.

On CPU, the bounds of each method (IBP, CROWN) and every big-M/stability penalty on them are
computed in one numpy pass per method with a hand-written gradient
(:meth:`~omlt_relax.penalties.BoundSource.fused_penalties`); penalties on other devices, your own
penalties without ``np_value_grad`` and the LP gap take the torch path, with the bounds of each
method still computed once per call and shared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds.methods import check_method
from omlt_relax.lp.gap import LPGapPenalty
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.penalties import (
    BigMPenalty,
    BoundPenalty,
    BoundSource,
    OnModel,
    Penalty,
    StabilityPenalty,
)

Tensor = torch.Tensor

#: The penalties that have a keyword argument, and the class a weight given there builds.
TERMS: dict[str, type[Penalty]] = {
    "bigm": BigMPenalty,
    "stability": StabilityPenalty,
    "lp_gap": LPGapPenalty,
}


def penalty_method(pen: Any) -> str | None:
    """The bounds method whose bounds ``pen`` takes (:attr:`Penalty.bounds_method`; ``None`` for
    a plain callable, which is called with ``bounds=None``)."""
    return pen.bounds_method if isinstance(pen, Penalty) else None


class RelaxationRegularizer(OnModel):
    """Big-M, stability and LP-gap penalties combined into one loss term, ``loss = mse + reg(x)``.

    Args:
        model: the ``nn.Sequential`` being trained (its live parameters are read at every call).
        input_bounds: ``(lb, ub)`` box of the optimization problem the surrogate is used in.
        bigm: ``None`` (off), a weight (a :class:`~omlt_relax.BigMPenalty` with its defaults and
            this ``bounds`` method), or a penalty instance bound to the same model.
        stability: the same for :class:`~omlt_relax.StabilityPenalty`.
        lp_gap: the same for :class:`~omlt_relax.LPGapPenalty` (needs ``x`` at every call).
        warmup: number of calls that return zero before the penalties switch on.
        every: after the warm-up, compute the term on every ``every``-th call only, times
            ``every`` (lazy regularization, module docstring); 1 (default): every call.
        bounds: ``"ibp"`` or ``"crown"``: method of the penalties built from weights and of the
            bounds behind :meth:`metrics`.
        penalties: more penalties, a list of :class:`~omlt_relax.penalties.Penalty` objects (your
            own included) bound to the same model; each term is reported under its ``name``
            (made unique with a suffix ``_2``, ``_3``, ...).

    Raises ``ValueError`` (with a sentence saying what is wrong) for a bad box, an unsupported
    network, a negative weight, or a penalty instance bound to another model.
    """

    def __init__(
        self,
        model: nn.Module,
        input_bounds: Any,
        bigm: float | BigMPenalty | None = None,
        stability: float | StabilityPenalty | None = None,
        lp_gap: Any = None,
        warmup: int = 0,
        bounds: str = "ibp",
        every: int = 1,
        penalties: Sequence[Penalty] | None = None,
    ) -> None:
        self.source = BoundSource(model, input_bounds)
        self.bounds_method = check_method(bounds)
        if int(warmup) != warmup or warmup < 0:
            msg = f"warmup must be a whole number of calls >= 0, got {warmup!r}"
            raise ValueError(msg)
        self.warmup = int(warmup)
        if isinstance(every, bool) or int(every) != every or every < 1:
            msg = f"every must be a whole number of calls >= 1, got {every!r}"
            raise ValueError(msg)
        self.every = int(every)
        self.step = 0
        self.penalties: dict[str, Any] = {}
        specs: list[tuple[str, Any]] = [
            ("bigm", bigm), ("stability", stability), ("lp_gap", lp_gap)
        ]
        if penalties is not None:
            if isinstance(penalties, Penalty) or not isinstance(penalties, Sequence):
                msg = f"penalties= must be a list of penalty objects, got {penalties!r}"
                raise TypeError(msg)
            for pen in penalties:
                if not isinstance(pen, Penalty):
                    msg = (
                        f"penalties= takes Penalty objects (omlt_relax.penalties.Penalty), got "
                        f"{pen!r}"
                    )
                    raise TypeError(msg)
                specs.append((pen.name, pen))
        for name, spec in specs:
            if spec is None:
                continue
            key = name
            n = 2
            while key in self.penalties:
                key = f"{name}_{n}"
                n += 1
            if isinstance(spec, int | float) and not isinstance(spec, bool):
                cls = TERMS[name]
                self.penalties[key] = cls(model, self.source.input_bounds, weight=float(spec),
                                          bounds=self.bounds_method)
            elif callable(spec):
                owner = getattr(spec, "model", None)
                if owner is not None and owner is not model:
                    msg = (
                        f"the {name} penalty object is bound to another model; build it with the "
                        "model you pass to RelaxationRegularizer (or pass a weight instead)"
                    )
                    raise ValueError(msg)
                self.penalties[key] = spec
            else:
                msg = f"{name}= must be None, a weight or a penalty object, got {spec!r}"
                raise TypeError(msg)
        self._share = {name: self._shares(pen) for name, pen in self.penalties.items()}
        # per bounds method: the penalties that join its fused numpy pass
        groups: dict[str, list[str]] = {}
        for name, pen in self.penalties.items():
            if isinstance(pen, BoundPenalty) and pen.fusable and self._share[name]:
                groups.setdefault(str(pen.bounds_method), []).append(name)
        self._fused = tuple(
            (method, tuple(names), tuple(self.penalties[n] for n in names))
            for method, names in groups.items()
        )
        self._fused_names = frozenset(n for names in groups.values() for n in names)
        self._others = tuple(
            (name, pen) for name, pen in self.penalties.items() if name not in self._fused_names
        )
        self._needs_x = tuple(
            name
            for name, pen in self.penalties.items()
            if (pen.needs_x if isinstance(pen, Penalty) else name == "lp_gap")
        )
        self._last_bounds: NeuronBounds | None = None
        self._last_terms: dict[str, Tensor | float] = {}

    @property
    def needs_x(self) -> bool:
        """Whether a call needs the training batch (an LP-gap or other batch-dependent term)."""
        return bool(self._needs_x)

    @property
    def active(self) -> bool:
        """Whether the next call returns the penalties (warm-up over)."""
        return self.step >= self.warmup

    def _zero(self) -> Tensor:
        w = self.source.parsed.linears[0].weight
        return torch.zeros((), dtype=w.dtype, device=w.device)

    def _shares(self, pen: Any) -> bool:
        """Whether ``pen`` may take the bounds this regularizer computed (same method and box)."""
        if penalty_method(pen) is None:
            return False
        box = getattr(pen, "input_bounds", None)
        if box is None:
            return False
        lo, hi = box
        mine = self.source.input_bounds
        return bool(
            np.array_equal(np.asarray(lo, dtype=np.float64), mine[0])
            and np.array_equal(np.asarray(hi, dtype=np.float64), mine[1])
        )

    def _start_call(self, x: Tensor | None) -> bool:
        """Checks of a call, the warm-up counter; whether the penalties are on for this call."""
        self.source.check_x(x)
        if self._needs_x and x is None:
            label = "LP-gap" if self._needs_x[0] == "lp_gap" else repr(self._needs_x[0])
            msg = f"the {label} penalty needs the training batch: call reg(x_batch)"
            raise ValueError(msg)
        step = self.step
        self.step += 1
        self._last_terms = {}
        self._last_bounds = None
        if step < self.warmup or not self.penalties:
            return False
        return self.every == 1 or (step - self.warmup) % self.every == 0

    def __call__(self, x: Tensor | None = None) -> Tensor:
        """The regularization term for this step, a 0-d tensor in the model's dtype.

        ``x`` is the training batch, shape ``(B, n_0)``; only the LP-gap term uses it (required
        then). Every call advances the warm-up counter ``self.step``.
        """
        if not self._start_call(x):
            return self._zero()
        computed: dict[str, NeuronBounds] = {}
        total: Tensor | None = None
        others: tuple[tuple[str, Any], ...] | Any = self.penalties.items()
        if self._fused and self.source.fast_numpy():
            # per method: the bounds and all its penalties in one numpy pass (omlt_relax.penalties)
            for method, names, pens in self._fused:
                computed[method], term, values = self.source.fused_penalties(method, pens)
                for name, v in zip(names, values, strict=True):
                    self._last_terms[name] = v
                total = term if total is None else total + term
            others = self._others
        for name, pen in others:
            shared = None
            if self._share[name]:
                method = str(penalty_method(pen))
                if method not in computed:
                    computed[method] = self.source.compute(method)
                shared = computed[method]
            term = pen(x, bounds=shared)
            self._last_terms[name] = term  # converted (detached) only in metrics()
            total = term if total is None else total + term
        self._last_bounds = computed.get(self.bounds_method)
        assert total is not None  # self.penalties is not empty
        return total if self.every == 1 else total * self.every

    def backward(self, x: Tensor | None = None, scale: float = 1.0) -> Tensor:
        """Add :math:`s\\,\\nabla_\\theta R(\\theta; x)` (``s`` = ``scale``) to the ``.grad`` of
        the model's parameters and return :math:`s R` (a detached 0-d tensor).

        The same gradient as ``(scale * reg(x)).backward()`` and so as adding ``scale * reg(x)``
        to the loss, for a loop that calls it after ``loss.backward()``:

        .. code-block:: python

            loss = mse(model(x), y)
            opt.zero_grad(); loss.backward()
            reg.backward(x, scale=lam)       # instead of loss = loss + lam * reg(x)
            opt.step()

        When every penalty is a big-M/stability penalty on the numpy path (CPU weights, no
        LP-gap or custom term) the bounds, penalties and vector-Jacobian product are computed in
        numpy and added to the gradients directly, without an autograd graph: at the paper's
        network size this saves about 30% of the penalty's cost per step
        (``benchmarks/bench_training.py``). Otherwise it is exactly the autograd call above.
        Advances the warm-up counter like a call; adds nothing during warm-up.
        """
        s = float(scale)
        if not math.isfinite(s):
            msg = f"scale must be a finite number, got {scale!r}"
            raise ValueError(msg)
        if self._others or not self._fused or not self.source.direct_grad():
            return term_backward(self(x), s)
        if not self._start_call(x):
            return self._zero()
        s *= self.every
        total = 0.0
        for method, names, pens in self._fused:
            bounds, values = self.source.fused_penalties_backward(method, pens, s)
            if method == self.bounds_method:
                self._last_bounds = bounds
            for name, v in zip(names, values, strict=True):
                self._last_terms[name] = v
                total += v
        out = self._zero()
        out.fill_(total * s)
        return out

    def metrics(self) -> dict[str, float]:
        """Numbers describing the last call (or the current model if that call computed no bounds).

        Keys: ``unstable`` (count, with this regularizer's ``bounds`` method), ``mean_bigm`` and
        ``max_bigm`` (of :math:`\\max(-l, u)` over unstable neurons), ``mean_lp_gap`` (last call)
        and ``skipped_lps`` (LPs that failed so far; NaN and 0 without an LP-gap term), ``bigm``,
        ``stability``, ``lp_gap``
        (each weighted term of the last call, 0 during warm-up, present only if configured),
        ``total`` (their sum) and ``step`` (calls so far).
        """
        nb = self._last_bounds
        if nb is None:
            with torch.no_grad():
                nb = self.source.compute(self.bounds_method)
        nb = nb.numpy()
        out: dict[str, float] = {
            "unstable": float(nb.unstable_count()),
            "mean_bigm": nb.mean_bigm(),
            "max_bigm": nb.max_bigm(),
            "mean_lp_gap": math.nan,
            "skipped_lps": 0.0,
        }
        for pen in self.penalties.values():
            m = pen.metrics() if hasattr(pen, "metrics") else {}
            if "mean_gap" in m:  # the (first) LP-gap term
                out["mean_lp_gap"] = float(m.get("mean_gap", math.nan))
                out["skipped_lps"] = float(m.get("skipped", 0))
                break
        terms = {
            name: float(t.detach()) if isinstance(t, Tensor) else float(t)
            for name, t in self._last_terms.items()
        }
        for name in self.penalties:
            out[name] = terms.get(name, 0.0)
        out["total"] = float(sum(terms.values()))
        out["step"] = float(self.step)
        return out

    def __repr__(self) -> str:
        pens = ", ".join(f"{k}={v!r}" for k, v in self.penalties.items())
        lazy = f", every={self.every}" if self.every != 1 else ""
        return (f"RelaxationRegularizer({pens}, warmup={self.warmup}{lazy}, "
                f"bounds={self.bounds_method!r})")


def backward_term(reg: Any, x: Tensor | None, scale: float = 1.0) -> Tensor:
    """Add the gradient of ``scale * reg(x)`` to the parameters' ``.grad`` and return the term
    detached: ``reg.backward(x, scale)`` if ``reg`` has one (a :class:`RelaxationRegularizer`,
    a :class:`~omlt_relax.penalty_schedule.ScheduledRegularizer`), else autograd on
    ``scale * reg(x)``. For loops that call it after ``loss.backward()``."""
    if hasattr(reg, "backward"):
        return reg.backward(x, scale)
    return term_backward(reg(x), scale)


def term_backward(term: Tensor, scale: float = 1.0) -> Tensor:
    """Backpropagate ``scale * term`` (if it has a graph) and return it detached."""
    if scale != 1.0:
        term = term * scale
    if term.requires_grad:
        term.backward()
    return term.detach()


__all__ = ["TERMS", "RelaxationRegularizer", "backward_term", "term_backward"]
