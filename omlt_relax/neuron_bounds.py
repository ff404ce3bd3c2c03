"""``NeuronBounds``: pre-activation bounds of every hidden layer over an input box.

For a network with hidden layers k = 1..L-1 the object holds, per layer, vectors
:math:`l_k \\le \\hat z_k \\le u_k` valid for every input :math:`x \\in [x_{lo}, x_{hi}]`.
A neuron is *stably inactive* if :math:`u \\le 0`, *stably active* if :math:`l \\ge 0`, and
*unstable* (needs a binary in the MILP) if :math:`l < 0 < u`.

Bounds from :func:`~omlt_relax.interval_bounds` / :func:`~omlt_relax.crown_bounds` hold torch
tensors (differentiable, in the model's dtype); bounds meant for an optimizer
(:func:`~omlt_relax.bounds.sound_bounds`, OBBT, ONNX metadata) hold float64 numpy arrays rounded
outward. :meth:`NeuronBounds.to_dict` / :meth:`NeuronBounds.from_dict` serialize to JSON-ready data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1


def _to_np(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy().copy()
    return np.asarray(a, dtype=np.float64)


class BoundsMismatchError(ValueError):
    """Stored bounds do not belong to the network or input box they are used with."""


@dataclass
class NeuronBounds:
    """Per-neuron pre-activation bounds of the hidden layers of a ReLU network.

    Attributes:
        lower, upper: one 1-D array (or tensor) per hidden layer, shape ``(n_k,)``.
        method: how they were obtained (``"ibp"``, ``"crown"``, ``"lp"``, ``"milp"``, ...).
        input_lower, input_upper: the input box, float64 arrays of shape ``(n_0,)``.
    """

    lower: list[Any]
    upper: list[Any]
    method: str
    input_lower: np.ndarray
    input_upper: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.lower) != len(self.upper):
            msg = f"{len(self.lower)} lower but {len(self.upper)} upper bound layers"
            raise ValueError(msg)
        self.input_lower = _to_np(self.input_lower).reshape(-1)
        self.input_upper = _to_np(self.input_upper).reshape(-1)

    # -- shape ---------------------------------------------------------------------------
    @property
    def widths(self) -> tuple[int, ...]:
        """Widths of the hidden layers."""
        return tuple(int(np.prod(np.shape(lo))) for lo in self.lower)

    @property
    def n_inputs(self) -> int:
        return int(self.input_lower.size)

    def numpy(self) -> NeuronBounds:
        """A copy whose bounds are float64 numpy arrays (values unchanged, gradients dropped)."""
        return NeuronBounds(
            [_to_np(a) for a in self.lower],
            [_to_np(a) for a in self.upper],
            self.method,
            self.input_lower.copy(),
            self.input_upper.copy(),
            dict(self.meta),
        )

    # -- stability -----------------------------------------------------------------------
    def unstable_mask(self) -> list[np.ndarray]:
        """Per layer, True where :math:`l < 0 < u`."""
        return [(_to_np(lo) < 0) & (_to_np(up) > 0) for lo, up in zip(self.lower, self.upper)]

    def unstable_count(self) -> int:
        """Number of unstable hidden neurons (each needs one binary in a MILP)."""
        return sum(self.unstable_per_layer())

    def unstable_per_layer(self) -> list[int]:
        """Unstable neurons of each hidden layer, first to last (they sum to
        :meth:`unstable_count`). Where the binaries sit: on low-dimensional inputs the first
        layer's unstable neurons are the hyperplanes that cross the input box, which a
        penalty removes only by making them affine there (BENCHMARKS.md, "A smaller size, and
        where the unstable neurons sit")."""
        return [int(m.sum()) for m in self.unstable_mask()]

    def unstable_summary(self) -> str:
        """``"143 of 300 hidden neurons unstable (per layer 72/39/32)"``."""
        per = self.unstable_per_layer()
        return (f"{sum(per)} of {sum(self.widths)} hidden neurons unstable "
                f"(per layer {'/'.join(str(c) for c in per)})")

    def stable_active_count(self) -> int:
        return int(sum((_to_np(lo) >= 0).sum() for lo in self.lower))

    def stable_inactive_count(self) -> int:
        return int(sum((_to_np(up) <= 0).sum() for up in self.upper))

    def bigm_values(self) -> np.ndarray:
        """:math:`\\max(-l, u)` of every unstable neuron, all layers, as one float64 array."""
        vals = [
            np.maximum(-_to_np(lo), _to_np(up))[m]
            for lo, up, m in zip(self.lower, self.upper, self.unstable_mask())
        ]
        return np.concatenate(vals) if vals else np.zeros(0)

    def mean_bigm(self) -> float:
        """Mean of :math:`\\max(-l, u)` over unstable neurons (0 if none)."""
        allv = self.bigm_values()
        return float(allv.mean()) if allv.size else 0.0

    def max_bigm(self) -> float:
        """Largest :math:`\\max(-l, u)` over unstable neurons (0 if none)."""
        allv = self.bigm_values()
        return float(allv.max()) if allv.size else 0.0

    # -- combination ---------------------------------------------------------------------
    def intersect(self, other: NeuronBounds, method: str | None = None) -> NeuronBounds:
        """Elementwise tighter of two sound bound sets over the same network and box."""
        self.check_compatible(other.widths, other.input_lower, other.input_upper)
        lo = [np.maximum(_to_np(a), _to_np(b)) for a, b in zip(self.lower, other.lower)]
        up = [np.minimum(_to_np(a), _to_np(b)) for a, b in zip(self.upper, other.upper)]
        return NeuronBounds(
            lo, up, method or f"{self.method}&{other.method}", self.input_lower, self.input_upper
        )

    def check_compatible(
        self,
        widths: tuple[int, ...] | list[int],
        input_lower: Any | None = None,
        input_upper: Any | None = None,
        rtol: float = 1e-12,
    ) -> None:
        """Raise :class:`BoundsMismatchError` unless these bounds fit a network and input box.

        The stored box must contain the given box (bounds over a larger box are valid, looser).
        """
        widths = tuple(int(w) for w in widths)
        if self.widths != widths:
            msg = (
                f"bounds are for hidden layers of widths {list(self.widths)} but the network has "
                f"{list(widths)}; these bounds belong to another network"
            )
            raise BoundsMismatchError(msg)
        if input_lower is None or input_upper is None:
            return
        lo, hi = _to_np(input_lower).reshape(-1), _to_np(input_upper).reshape(-1)
        if lo.shape != self.input_lower.shape:
            msg = (
                f"bounds are for {self.input_lower.size} inputs but the network/box has {lo.size}"
            )
            raise BoundsMismatchError(msg)
        tol = rtol * (1.0 + np.abs(lo) + np.abs(hi))
        if np.any(lo < self.input_lower - tol) or np.any(hi > self.input_upper + tol):
            msg = (
                "bounds were computed over the input box "
                f"[{self.input_lower.tolist()}, {self.input_upper.tolist()}] which does not "
                f"contain the requested box [{lo.tolist()}, {hi.tolist()}]; recompute them"
            )
            raise BoundsMismatchError(msg)

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; floats written with ``repr`` precision (round-trips exactly)."""
        return {
            "format": "omlt_relax.NeuronBounds",
            "version": FORMAT_VERSION,
            "method": self.method,
            "input_lower": self.input_lower.tolist(),
            "input_upper": self.input_upper.tolist(),
            "lower": [_to_np(a).tolist() for a in self.lower],
            "upper": [_to_np(a).tolist() for a in self.upper],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronBounds:
        if d.get("format") != "omlt_relax.NeuronBounds":
            msg = "not an omlt_relax NeuronBounds record (missing 'format' key)"
            raise BoundsMismatchError(msg)
        if int(d.get("version", -1)) > FORMAT_VERSION:
            msg = (
                f"bounds format version {d.get('version')} is newer than this omlt_relax "
                f"understands ({FORMAT_VERSION}); upgrade omlt_relax"
            )
            raise BoundsMismatchError(msg)
        lower = [np.asarray(a, dtype=np.float64) for a in d["lower"]]
        upper = [np.asarray(a, dtype=np.float64) for a in d["upper"]]
        for k, (lo, up) in enumerate(zip(lower, upper)):
            if lo.shape != up.shape:
                msg = f"layer {k}: lower has {lo.size} entries, upper has {up.size}"
                raise BoundsMismatchError(msg)
            if np.isnan(lo).any() or np.isnan(up).any():
                msg = f"layer {k}: bounds contain NaN"
                raise BoundsMismatchError(msg)
            if np.any(lo > up):
                msg = f"layer {k}: a lower bound exceeds its upper bound"
                raise BoundsMismatchError(msg)
        return cls(
            lower,
            upper,
            str(d["method"]),
            np.asarray(d["input_lower"], dtype=np.float64),
            np.asarray(d["input_upper"], dtype=np.float64),
            dict(d.get("meta", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> NeuronBounds:
        return cls.from_dict(json.loads(s))

    def __repr__(self) -> str:
        return (
            f"NeuronBounds(method={self.method!r}, widths={list(self.widths)}, "
            f"unstable={self.unstable_count()})"
        )
