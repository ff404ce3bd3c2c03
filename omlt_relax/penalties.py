"""Bound-based training penalties: big-M constants and a smooth count of unstable neurons.

Notation (as in :mod:`omlt_relax.network`): hidden layers :math:`k = 1, \\dots, K` of widths
:math:`n_k`, pre-activation bounds :math:`l_{ki} \\le \\hat z_{ki} \\le u_{ki}` over the input box
from IBP or CROWN (:func:`~omlt_relax.interval_bounds`, :func:`~omlt_relax.crown_bounds`), which are
differentiable in the weights :math:`\\theta`. A neuron is *unstable* if :math:`l < 0 < u`; each
unstable neuron costs one binary and two big-M constraints in the MILP

.. math::

    z \\le \\hat z - l(1 - \\sigma),\\qquad z \\le u\\,\\sigma,\\qquad \\sigma \\in \\{0, 1\\}.

Every penalty implements one interface, :class:`Penalty` (``weight``, ``bounds_method``,
``value`` whose autograd gives the gradient, ``pen(x=None, bounds=None) -> Tensor``: a 0-d tensor
in the model's dtype, ``weight`` applied); the LP-gap penalty
(:class:`~omlt_relax.lp.gap.LPGapPenalty`) and your own penalties too. The two here are
:class:`BoundPenalty` subclasses: they do not look at ``x``; ``bounds`` lets a caller that already
computed bounds with the same method share them
(:class:`~omlt_relax.regularizer.RelaxationRegularizer` does, once per step).

Two implementations of the same numbers:

* the reference, in torch autograd on any :class:`~omlt_relax.NeuronBounds` (``bounds_value``), used
  for bounds passed in and on GPUs;
* the fast path on CPU (:meth:`BoundSource.fused_penalties`): IBP or CROWN bounds and every
  penalty on them of a step in numpy inside one ``torch.autograd.Function`` with a hand-written
  vector-Jacobian product (:mod:`omlt_relax.bounds.fused` for the bounds, ``np_value_grad`` per
  penalty), on cached numpy views of the live weights. A training step of a small network costs
  mostly per-operation overhead, and a numpy operation costs a fraction of a torch one
  (``benchmarks/bench_training.py``). The tests check that both paths agree in value and gradient
  (float64, relative 1e-10). Both compute the penalty at the current weights at every call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from omlt_relax.bounds import affine_chain
from omlt_relax.bounds.fused import FUSED
from omlt_relax.bounds.methods import BOUND_METHODS, check_method, propagate
from omlt_relax.network import ParsedNetwork, as_box, parse_network
from omlt_relax.neuron_bounds import NeuronBounds

Tensor = torch.Tensor

BIGM_VARIANTS = ("range", "max_unstable")
STABILITY_VARIANTS = ("xiao", "triangle", "min")

_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _fused_forward(
    method: str, chain: Any, box: tuple[np.ndarray, np.ndarray], pens: tuple[Any, ...],
    terms_out: list[float],
) -> tuple[np.ndarray, Any, np.ndarray | float, np.ndarray | float, float]:
    """Bounds ``LU`` of ``method``, the tape of its VJP and the weighted penalties on them.

    Returns ``(lu, tape, dl_sum, du_sum, total)``: :math:`\\sum_j w_j \\partial P_j/\\partial l`
    and :math:`\\ldots/\\partial u` (``0.0`` without penalties) and :math:`\\sum_j w_j P_j`;
    ``terms_out`` receives the :math:`w_j P_j`.
    """
    lu, tape = FUSED[method][0](chain, *box)
    dl_sum: np.ndarray | float = 0.0
    du_sum: np.ndarray | float = 0.0
    terms_out.clear()
    total = 0.0
    for pen in pens:
        v, dl, du = pen.np_value_grad(lu[0], lu[1])
        w = pen.weight
        terms_out.append(w * v)
        total += w * v
        if w != 1.0:
            dl, du = w * dl, w * du
        dl_sum = dl if isinstance(dl_sum, float) else dl_sum + dl
        du_sum = du if isinstance(du_sum, float) else du_sum + du
    return lu, tape, dl_sum, du_sum, total


def _bounds_grad(shape: tuple[int, ...], dtype: np.dtype, dl_sum: np.ndarray | float,
                 du_sum: np.ndarray | float, t: float | None) -> np.ndarray:
    """:math:`\\bar G` (rows :math:`\\bar l, \\bar u`) for a gradient ``t`` of the weighted
    penalties' sum (``None``: zero), the same operations on both paths (graph and
    :meth:`BoundSource.fused_penalties_backward`), so their gradients agree bitwise."""
    g = np.zeros(shape, dtype=dtype)
    if t is not None:
        g[0] = dl_sum
        g[1] = du_sum
        if t != 1.0:
            g *= t
    return g


class _FusedPenaltiesCPU(torch.autograd.Function):
    """IBP or CROWN of the hidden layers and weighted bound penalties, in numpy, with a
    hand-written VJP (:mod:`omlt_relax.bounds.fused`).

    Forward: the bounds ``LU`` (rows: flat :math:`l = (l_1, \\dots, l_K)` and :math:`u`) of the
    numpy views of the weights, then :math:`v_j = w_j P_j(l, u)` for each penalty :math:`j`
    (``np_value_grad``); returns :math:`l`, :math:`u` and :math:`\\sum_j v_j`.

    Backward: :math:`\\bar l = \\bar l_{out} + \\bar t \\sum_j w_j \\partial P_j/\\partial l`
    (same for :math:`u`), then the method's VJP to the weights. First-order only.
    """

    @staticmethod
    def forward(ctx: Any, spec: tuple[Any, ...], *params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # spec: (method, numpy views of params (shared memory, versions checked in backward),
        # input box, penalties, list receiving the weighted terms)
        method, chain, box, pens, terms_out = spec
        lu, tape, dl_sum, du_sum, total = _fused_forward(method, chain, box, pens, terms_out)
        ctx.set_materialize_grads(False)
        ctx.saved = (FUSED[method][1], tape, dl_sum, du_sum, lu.shape, lu.dtype)
        ctx.versions = [p._version for p in params]
        ctx.params = params
        return (
            torch.from_numpy(lu[0]),
            torch.from_numpy(lu[1]),
            torch.from_numpy(np.array(total, dtype=lu.dtype)),
        )

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, g_lo: Tensor | None, g_up: Tensor | None, g_total: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        params = ctx.params
        for p, v in zip(params, ctx.versions, strict=True):
            if p._version != v:
                msg = (
                    "a network weight was modified in place between computing the relaxation "
                    "penalties and calling backward(); call backward() before optimizer.step()"
                )
                raise RuntimeError(msg)
        vjp, tape, dl_sum, du_sum, shape, dtype = ctx.saved
        # gradient in the bounds: from the bounds outputs (LP gap) and from the penalties
        g = _bounds_grad(shape, dtype, dl_sum, du_sum,
                         None if g_total is None else g_total.item())
        if g_lo is not None:
            g[0] += g_lo.numpy()
        if g_up is not None:
            g[1] += g_up.numpy()
        grads = vjp(tape, g, ctx.needs_input_grad[1:])
        return (None, *(None if a is None else torch.from_numpy(a) for a in grads))


class FlatBounds(NeuronBounds):
    """A :class:`NeuronBounds` that also holds all hidden layers' bounds as two flat tensors
    ``flat_lower``, ``flat_upper`` of length :math:`\\sum_k n_k` (layer after layer), so penalties
    act on all neurons with one operation each. ``lower``/``upper`` are views into them, made on
    first access."""

    def __init__(
        self, flat_lower: Tensor, flat_upper: Tensor, widths: list[int], method: str, box: Any
    ) -> None:
        # the fields NeuronBounds.__init__ would set, except lower/upper (see __getattr__)
        self.flat_lower = flat_lower
        self.flat_upper = flat_upper
        self.split_widths = list(widths)
        self.method = method
        self.input_lower, self.input_upper = box
        self.meta: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name in ("lower", "upper") and "flat_lower" in self.__dict__:
            self.lower = list(self.flat_lower.split(self.split_widths))
            self.upper = list(self.flat_upper.split(self.split_widths))
            return self.__dict__[name]
        raise AttributeError(name)


def flat_bounds(bounds: NeuronBounds, like: Tensor) -> tuple[Tensor, Tensor]:
    """All hidden layers' lower and upper bounds, concatenated, as tensors (numpy arrays from OBBT
    or a file become constants in ``like``'s dtype)."""
    if isinstance(bounds, FlatBounds):
        return bounds.flat_lower, bounds.flat_upper

    def cat(parts: list[Any]) -> Tensor:
        ts = [
            a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a), dtype=like.dtype)
            for a in parts
        ]
        return torch.cat([t.reshape(-1).to(like) for t in ts])

    return cat(bounds.lower), cat(bounds.upper)


class BoundSource:
    """Differentiable bounds of one model over one input box, without re-checking per call.

    The network is parsed and the box validated once (clear errors for unsupported layers,
    non-finite weights, and inverted, NaN, infinite or wrongly sized boxes); each call then reads
    the live ``Linear`` parameters, so in-place optimizer updates are seen.
    """

    def __init__(self, model: nn.Module, input_bounds: Any) -> None:
        self.model = model
        self.parsed: ParsedNetwork = parse_network(model)
        self.input_bounds: tuple[np.ndarray, np.ndarray] = as_box(
            input_bounds, n_inputs=self.parsed.n_inputs
        )
        self._box_cache: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}
        self._np_box: dict[torch.dtype, tuple[np.ndarray, np.ndarray]] = {}
        self._widths = list(self.parsed.hidden_widths)
        self._hidden_linears = list(self.parsed.linears[:-1])
        # (tensor, data_ptr, numpy view) per hidden weight/bias, see _hidden_chain
        self._np_views: list[tuple[Any, int, Any]] = []

    @property
    def n_inputs(self) -> int:
        return self.parsed.n_inputs

    @property
    def widths(self) -> list[int]:
        """Widths of the hidden layers of the affine chain (bounds come one per neuron)."""
        return self._widths

    def _box(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (dtype, device)
        if key not in self._box_cache:
            lo, hi = self.input_bounds
            self._box_cache[key] = (
                torch.as_tensor(lo, dtype=dtype, device=device),
                torch.as_tensor(hi, dtype=dtype, device=device),
            )
        return self._box_cache[key]

    def compute(self, method: str) -> NeuronBounds:
        """``"ibp"`` or ``"crown"`` bounds as a :class:`NeuronBounds` of tensors with graph.

        A CPU float32/float64 network takes the numpy path (:meth:`fused_penalties`) and returns a
        :class:`FlatBounds`; otherwise the torch implementations of :mod:`omlt_relax.bounds`.
        """
        if self.fast_numpy():
            return self.fused_penalties(check_method(method), ())[0]
        chain = affine_chain(self.parsed, self.input_bounds)
        w0 = chain[0][0]
        lo, hi = self._box(w0.dtype, w0.device)
        lowers, uppers = propagate(method)(chain, lo, hi)
        return NeuronBounds(lowers, uppers, method, *self.input_bounds)

    def fast_numpy(self) -> bool:
        """Whether the numpy path applies: weights are CPU float32/float64 tensors."""
        w = self.parsed.linears[0].weight
        return w.is_cpu and w.dtype in _NP_DTYPES and bool(self._widths)

    #: The former name of :meth:`fast_numpy` (the numpy path was IBP only).
    fast_ibp = fast_numpy

    def fused_penalties(
        self, method: str, pens: tuple[Any, ...]
    ) -> tuple[FlatBounds, Tensor, list[float]]:
        """``method`` (``"ibp"``/``"crown"``) bounds and :math:`\\sum_j w_j P_j` over penalties of
        that method, in one numpy pass.

        Forward and backward in numpy (:class:`_FusedPenaltiesCPU`,
        :mod:`omlt_relax.bounds.fused`); call only if :meth:`fast_numpy`. Returns
        ``(bounds, total, terms)``: ``total`` a 0-d tensor with graph, ``terms`` the floats
        :math:`w_j P_j`.
        """
        hidden, chain = self._hidden_chain()
        box = self._box_np(hidden[0].dtype)
        terms: list[float] = []
        flat_lo, flat_up, total = _FusedPenaltiesCPU.apply(
            (method, chain, box, pens, terms), *hidden
        )
        return FlatBounds(flat_lo, flat_up, self._widths, method, self.input_bounds), total, terms

    def direct_grad(self) -> bool:
        """Whether :meth:`fused_penalties_backward` applies: the numpy path, and the hidden
        layers' weights are the model's own parameters (not derived, as under a quantile head)."""
        return self.fast_numpy() and not self.parsed.quantile_head

    def fused_penalties_backward(
        self, method: str, pens: tuple[Any, ...], scale: float = 1.0
    ) -> tuple[FlatBounds, list[float]]:
        """Add :math:`s\\,\\nabla_\\theta \\sum_j w_j P_j` (``s`` = ``scale``) to the hidden
        layers' ``.grad``: what ``(scale * fused_penalties(method, pens)[1]).backward()`` adds,
        computed with the same numpy VJP but without building an autograd graph.

        Call only if :meth:`direct_grad`. A parameter with ``requires_grad=False`` is left alone;
        a ``.grad`` that is ``None`` is created. Returns the bounds (constants) and the floats
        :math:`w_j P_j` (unscaled).
        """
        hidden, chain = self._hidden_chain()
        box = self._box_np(hidden[0].dtype)
        terms: list[float] = []
        lu, tape, dl_sum, du_sum, _ = _fused_forward(method, chain, box, pens, terms)
        bounds = FlatBounds(torch.from_numpy(lu[0]), torch.from_numpy(lu[1]), self._widths,
                            method, self.input_bounds)
        if not pens:
            return bounds, terms
        g = _bounds_grad(lu.shape, lu.dtype, dl_sum, du_sum, scale)  # as the graph path does
        need = [p.requires_grad for p in hidden]
        grads = FUSED[method][1](tape, g, need)
        for p, a in zip(hidden, grads, strict=True):
            if a is None:
                continue
            grad = p.grad
            if grad is None:
                p.grad = torch.from_numpy(a)
            elif grad.is_contiguous() and not grad.requires_grad:
                acc = grad.numpy()  # a view: add in place without a torch dispatch
                acc += a
            else:
                with torch.no_grad():
                    grad.add_(torch.from_numpy(a))
        return bounds, terms

    def ibp_penalties(self, pens: tuple[Any, ...]) -> tuple[FlatBounds, Tensor, list[float]]:
        """:meth:`fused_penalties` with IBP bounds."""
        return self.fused_penalties("ibp", pens)

    def _hidden_chain(self) -> tuple[list[Tensor], list[tuple[np.ndarray, np.ndarray]]]:
        """The hidden layers' weight tensors ``[W_1, b_1, ...]`` (live) and their numpy views.

        The views share memory with the tensors and are cached: a tensor is viewed again only if
        it is another object or its storage moved (``data_ptr``), e.g. after
        ``lin.weight = ...`` or ``lin.weight.data = ...``; in-place updates are seen through the
        view.
        """
        if self.parsed.quantile_head:
            hidden = [t for wb in affine_chain(self.parsed, self.input_bounds)[:-1] for t in wb]
        else:
            hidden = []
            for lin in self._hidden_linears:
                hidden += (lin.weight, lin.bias)
        cache = self._np_views
        if len(cache) != len(hidden):
            cache[:] = [(None, 0, None)] * len(hidden)
        arrays = []
        for i, t in enumerate(hidden):
            ref, ptr, arr = cache[i]
            if ref is not t or ptr != t.data_ptr() or arr.shape != t.shape:
                arr = t.detach().numpy()
                cache[i] = (t, t.data_ptr(), arr)
            arrays.append(arr)
        return hidden, list(zip(arrays[::2], arrays[1::2]))

    def _box_np(self, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
        """The input box as numpy arrays of ``dtype`` (cached)."""
        if dtype not in self._np_box:
            lo, hi = self.input_bounds
            self._np_box[dtype] = (lo.astype(_NP_DTYPES[dtype]), hi.astype(_NP_DTYPES[dtype]))
        return self._np_box[dtype]

    def check_x(self, x: Tensor | None) -> None:
        """Raise a clear ``ValueError`` if a batch ``x`` does not have shape ``(B, n_0)``."""
        if x is None:
            return
        if not isinstance(x, Tensor):
            msg = f"expected the input batch x as a torch.Tensor of shape (B, n), got {type(x)}"
            raise TypeError(msg)
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            msg = (
                f"input batch has shape {tuple(x.shape)} but the network takes {self.n_inputs} "
                f"inputs; pass x of shape (B, {self.n_inputs})"
            )
            raise ValueError(msg)


def check_weight(weight: Any) -> float:
    """A penalty weight as a float; ``ValueError`` unless it is a finite number >= 0."""
    try:
        w = math.nan if isinstance(weight, str) else float(weight)
    except (TypeError, ValueError):
        w = math.nan
    if not math.isfinite(w) or w < 0:
        msg = f"penalty weight must be a finite number >= 0, got {weight!r}"
        raise ValueError(msg)
    return w


class OnModel:
    """Something bound to one model and one input box through a :class:`BoundSource`."""

    source: BoundSource

    @property
    def model(self) -> nn.Module:
        """The ``nn.Sequential`` whose live parameters are read at every call."""
        return self.source.model

    @property
    def input_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The input box, two float64 arrays."""
        return self.source.input_bounds


class Penalty(OnModel):
    """The interface every training penalty implements (built-in or your own).

    A penalty is bound to one model and one input box and returns a 0-d torch tensor whose
    autograd gradient is the penalty's gradient:

    * :meth:`value` ``(bounds=None, x=None)``: the unweighted term :math:`P(\\theta; x)`;
    * ``__call__(x=None, bounds=None)``: ``weight * value(bounds, x)``;
    * :attr:`weight` (a float >= 0, checked once by :func:`check_weight`);
    * :attr:`bounds_method`: ``"ibp"``/``"crown"`` if the term is a function of the bounds of that
      method (a :class:`~omlt_relax.RelaxationRegularizer` then computes them once per step for
      every penalty of the method and passes them as ``bounds``), else ``None``;
    * :attr:`needs_x` (the term depends on the training batch), :attr:`name` (its key in
      :meth:`~omlt_relax.RelaxationRegularizer.metrics`), :meth:`metrics` (extra numbers).

    To add a penalty, subclass this (or :class:`BoundPenalty` for a function of the bounds only),
    implement :meth:`value`, and pass the instance in ``penalties=[...]``.
    """

    #: Key of the weighted term in :meth:`RelaxationRegularizer.metrics` (made unique there).
    name: str = "penalty"
    #: Whether :meth:`value` needs the training batch ``x``.
    needs_x: bool = False

    def __init__(self, model: nn.Module, input_bounds: Any, weight: float = 1.0,
                 bounds_method: str | None = None) -> None:
        self.source = BoundSource(model, input_bounds)
        self.weight = check_weight(weight)
        self.bounds_method = None if bounds_method is None else check_method(bounds_method)

    def value(self, bounds: NeuronBounds | None = None, x: Tensor | None = None) -> Tensor:
        """The unweighted penalty (a 0-d tensor with graph); ``bounds`` of :attr:`bounds_method`
        computed by the caller, or ``None`` to compute them here."""
        raise NotImplementedError

    def check_bounds(self, bounds: NeuronBounds) -> None:
        """Raise unless given ``bounds`` fit this penalty: same method and hidden widths."""
        if self.bounds_method is not None and bounds.method != self.bounds_method:
            raise ValueError(method_mismatch(self, bounds))
        bounds.check_compatible(self.source.widths)

    def __call__(self, x: Tensor | None = None, bounds: NeuronBounds | None = None) -> Tensor:
        """``weight * value(bounds, x)``, a 0-d tensor in the model's dtype."""
        if bounds is not None:
            self.check_bounds(bounds)
        val = self.value(bounds, x)
        return val if self.weight == 1.0 else self.weight * val

    def metrics(self) -> dict[str, float]:
        """Numbers describing the last call (none by default)."""
        return {}


def method_mismatch(pen: Penalty, bounds: NeuronBounds) -> str:
    """The one error message for bounds of another method than the penalty's."""
    return (
        f"this {type(pen).__name__} uses {pen.bounds_method!r} bounds but was given bounds "
        f"computed with {bounds.method!r}; pass bounds of the same method (or none)"
    )


class BoundPenalty(Penalty):
    """A penalty that is a function of the ``"ibp"``/``"crown"`` bounds only.

    Subclasses implement :meth:`value` on any :class:`~omlt_relax.NeuronBounds` (torch autograd)
    and may implement :meth:`np_value_grad` (numpy value and gradients in the flat bounds) to join
    the fused numpy pass of :meth:`BoundSource.fused_penalties` (IBP and CROWN).
    """

    def __init__(self, model: nn.Module, input_bounds: Any, weight: float, bounds: str) -> None:
        super().__init__(model, input_bounds, weight, bounds)
        if not self.source.widths:
            msg = (
                f"the network has no hidden ReLU layer, so {type(self).__name__} has no neuron "
                "bounds to penalize (a purely linear model is already an LP)"
            )
            raise ValueError(msg)

    def bounds_value(self, bounds: NeuronBounds) -> Tensor:
        """The unweighted penalty of given bounds (a 0-d tensor, torch autograd)."""
        raise NotImplementedError

    def value(self, bounds: NeuronBounds | None = None, x: Tensor | None = None) -> Tensor:
        """:meth:`bounds_value` of the given bounds, or of this penalty's method computed now."""
        if bounds is None:
            bounds = self.source.compute(str(self.bounds_method))
        return self.bounds_value(bounds)

    def np_value_grad(self, l: np.ndarray, u: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The unweighted penalty of flat numpy bounds and its gradients in ``l`` and ``u``."""
        raise NotImplementedError

    @property
    def fusable(self) -> bool:
        """Whether this penalty joins the fused numpy pass of its bounds method
        (:meth:`BoundSource.fused_penalties`): it implements :meth:`np_value_grad`."""
        return (
            self.bounds_method in FUSED
            and type(self).np_value_grad is not BoundPenalty.np_value_grad
        )

    def __call__(self, x: Tensor | None = None, bounds: NeuronBounds | None = None) -> Tensor:
        """``weight * P``; bounds computed with this penalty's method if not given.

        Given ``bounds`` must come from the same method and network (checked:
        ``BoundsMismatchError`` for other widths, ``ValueError`` for another method).
        """
        self.source.check_x(x)
        if bounds is None and self.fusable and self.source.fast_numpy():
            return self.source.fused_penalties(str(self.bounds_method), (self,))[1]
        return super().__call__(x, bounds)


class BigMPenalty(BoundPenalty):
    """Penalty on the big-M constants of the hidden neurons.

    Per neuron

    .. math::

        p_{ki} = u_{ki} - l_{ki} \\quad (\\texttt{variant="range"}),\\qquad
        p_{ki} = \\max(-l_{ki}, u_{ki})\\,[l_{ki} < 0 < u_{ki}] \\quad
        (\\texttt{variant="max\\_unstable"}),

    and the penalty is

    .. math::

        P = \\frac{1}{K} \\sum_{k=1}^K \\frac{1}{n_k} \\sum_{i=1}^{n_k} p_{ki}
        \\quad (\\texttt{normalize=True}),\\qquad
        P = \\sum_{k=1}^K \\sum_{i=1}^{n_k} p_{ki} \\quad (\\texttt{normalize=False}),

    i.e. normalized = the mean over hidden layers of the per-layer mean over *all* neurons of the
    layer (stable neurons count as 0 in ``"max_unstable"``, so making a neuron stable lowers the
    penalty; the indicator is a constant for autograd). ``"range"`` is smooth in the bounds and
    also shrinks stable neurons' bounds, which keeps later layers' bounds tight; ``"max_unstable"``
    targets exactly the constants the MILP uses.

    Args:
        model: ``nn.Sequential`` of ``Linear``/``ReLU`` (see :func:`~omlt_relax.parse_network`).
        input_bounds: ``(lb, ub)``, the box of the optimization problem.
        weight: multiplies :math:`P`.
        bounds: ``"ibp"`` (cheap) or ``"crown"`` (tighter, about K times costlier).
        variant: ``"range"`` or ``"max_unstable"``.
        normalize: per-layer mean (default) or plain sum, as above.
    """

    name = "bigm"

    def __init__(
        self,
        model: nn.Module,
        input_bounds: Any,
        weight: float = 1.0,
        bounds: str = "ibp",
        variant: str = "range",
        normalize: bool = True,
    ) -> None:
        super().__init__(model, input_bounds, weight, bounds)
        if variant not in BIGM_VARIANTS:
            msg = f"unknown BigMPenalty variant {variant!r}; use 'range' or 'max_unstable'"
            raise ValueError(msg)
        self.variant = variant
        self.normalize = bool(normalize)
        self._weights: dict[np.dtype, np.ndarray] = {}  # a, per dtype
        self._neg_weights: dict[np.dtype, np.ndarray] = {}  # -a

    def bounds_value(self, bounds: NeuronBounds) -> Tensor:
        l, u = flat_bounds(bounds, self.source.parsed.linears[0].weight)
        if self.variant == "range":
            p = u - l
        else:
            p = torch.maximum(-l, u) * ((l < 0) & (u > 0)).to(l.dtype)
        if not self.normalize:
            return p.sum()
        a = torch.as_tensor(self._layer_weights(np.float64), dtype=l.dtype, device=l.device)
        return p @ a

    def np_value_grad(self, l: np.ndarray, u: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        a = self._layer_weights(l.dtype) if self.normalize else np.ones_like(l)
        if self.variant == "range":
            neg_a = self._neg_weights[a.dtype] if self.normalize else -a
            return float(a @ (u - l)), neg_a, a
        a = a * ((l < 0) & (u > 0))
        neg_l_wins = -l > u  # torch.maximum sends the gradient to the larger; ties split
        tie = -l == u
        dl = -a * (neg_l_wins + 0.5 * tie)
        du = a * (~neg_l_wins & ~tie) + 0.5 * a * tie
        return float(a @ np.maximum(-l, u)), dl, du

    def _layer_weights(self, dtype: type | np.dtype) -> np.ndarray:
        """:math:`a_{ki} = 1/(K n_k)`, so that :math:`P = a^\\top p` (cached per dtype)."""
        np_dtype = np.dtype(dtype)
        if np_dtype not in self._weights:
            widths = self.source.widths
            a = np.concatenate([np.full(n, 1.0 / (len(widths) * n)) for n in widths])
            self._weights[np_dtype] = a.astype(np_dtype)
            self._neg_weights[np_dtype] = -self._weights[np_dtype]
        return self._weights[np_dtype]

    def __repr__(self) -> str:
        return (
            f"BigMPenalty(weight={self.weight}, bounds={self.bounds_method!r}, "
            f"variant={self.variant!r}, normalize={self.normalize})"
        )


class StabilityPenalty(BoundPenalty):
    """A smooth count of unstable neurons, summed over all hidden neurons.

    .. math::

        S = \\sum_{k,i} -\\tanh\\big(1 + c\\, l_{ki} u_{ki}\\big)
        \\quad (\\texttt{variant="xiao"},\\ \\text{Xiao et al. 2019}),

    each term in :math:`(-1, 1)`: near :math:`+1` for a clearly unstable neuron
    (:math:`l u \\ll 0`), near :math:`-1` for a clearly stable one. ``c`` sets the scale of
    :math:`l u` (for wide IBP bounds the tanh saturates and the gradient vanishes; lower ``c``).

    .. math::

        S = \\sum_{k,i} \\frac{\\max(u_{ki}, 0)\\,\\max(-l_{ki}, 0)}{u_{ki} - l_{ki}}
        \\quad (\\texttt{variant="triangle"}),

    zero for stable neurons; for an unstable one it is the height at :math:`\\hat z = 0` of the
    LP-relaxation triangle :math:`z \\le u(\\hat z - l)/(u - l)` above the ReLU, the largest gap
    between relaxation and ReLU (the triangle's area is :math:`-l u/2`, i.e. this height times
    :math:`(u - l)/2`). ``c`` is unused for it.

    .. math::

        S = \\sum_{k,i} \\min\\big(\\max(-l_{ki}, 0), \\max(u_{ki}, 0)\\big)
        \\quad (\\texttt{variant="min"}),

    Tsay 2026's "stable neuron" penalty (there as a mean over neurons: weight :math:`\\lambda/N`):
    zero for stable neurons; for an unstable one the distance its nearer bound must move to make
    it stable. Ties send half of the gradient to each bound. ``c`` is unused for it.

    Args:
        model, input_bounds, weight, bounds: as for :class:`BigMPenalty`.
        variant: ``"xiao"`` or ``"triangle"``.
        c: scale in Xiao's term, > 0.
    """

    name = "stability"

    def __init__(
        self,
        model: nn.Module,
        input_bounds: Any,
        weight: float = 1.0,
        bounds: str = "ibp",
        variant: str = "xiao",
        c: float = 1.0,
    ) -> None:
        super().__init__(model, input_bounds, weight, bounds)
        if variant not in STABILITY_VARIANTS:
            msg = (
                f"unknown StabilityPenalty variant {variant!r}; use one of {STABILITY_VARIANTS}"
            )
            raise ValueError(msg)
        c = float(c)
        if not math.isfinite(c) or c <= 0:
            msg = f"StabilityPenalty scale c must be a finite number > 0, got {c!r}"
            raise ValueError(msg)
        self.variant = variant
        self.c = c

    def bounds_value(self, bounds: NeuronBounds) -> Tensor:
        l, u = flat_bounds(bounds, self.source.parsed.linears[0].weight)
        if self.variant == "xiao":
            return -torch.tanh(l * u * self.c + 1.0).sum()
        if self.variant == "min":
            return torch.minimum(torch.relu(-l), torch.relu(u)).sum()
        # stable neurons have a zero numerator (and zero gradient); the clamp only avoids 0/0
        width = (u - l).clamp_min(torch.finfo(l.dtype).tiny)
        return (torch.relu(u) * torch.relu(-l) / width).sum()

    def np_value_grad(self, l: np.ndarray, u: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        if self.variant == "xiao":
            t = np.tanh(l * u * self.c + 1.0)
            d = -(1.0 - t * t) * self.c
            return float(-t.sum()), d * u, d * l
        if self.variant == "min":
            # min(max(-l, 0), max(u, 0)) = max(min(-l, u), 0), and min(-l, u) > 0 exactly on
            # unstable neurons. There, with h = 1/2 and s = sign(u + l): dl = -h (1 + s) (-l the
            # smaller: -1), du = h (1 - s) (u the smaller: 1), a tie splits in halves as
            # torch.minimum does; elsewhere h = 0. Few numpy calls: this runs at every step.
            nl = np.negative(l)
            v = np.minimum(nl, u)
            h = np.multiply(v > 0, 0.5, dtype=l.dtype)
            hs = np.sign(np.subtract(u, nl))
            hs *= h
            dl = np.add(h, hs)
            np.negative(dl, out=dl)
            du = np.subtract(h, hs, out=hs)
            return float(np.maximum(v, 0).sum()), dl, du
        # unstable: h = -u l / (u - l), dh/du = l^2/(u - l)^2, dh/dl = -u^2/(u - l)^2; else 0
        unstable = (l < 0) & (u > 0)
        width = np.where(unstable, u - l, 1.0)
        inv2 = unstable / (width * width)
        h = np.where(unstable, -u * l / width, 0.0)
        return float(h.sum()), -(u * u) * inv2, (l * l) * inv2

    def __repr__(self) -> str:
        return (
            f"StabilityPenalty(weight={self.weight}, bounds={self.bounds_method!r}, "
            f"variant={self.variant!r}, c={self.c})"
        )


__all__ = [
    "BOUND_METHODS",
    "BigMPenalty",
    "BoundPenalty",
    "BoundSource",
    "FlatBounds",
    "OnModel",
    "Penalty",
    "StabilityPenalty",
    "check_weight",
    "flat_bounds",
    "method_mismatch",
]
