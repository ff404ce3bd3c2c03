"""Benchmark functions with their domains and known global minimum and maximum over the box.

A surrogate network :math:`\\hat f` of a function :math:`f` is optimized over the same box
:math:`[x_{lo}, x_{hi}]` by a MILP (its minimum and maximum). The true optima of :math:`f` over
the box let the benchmark score the MILP's answer: :math:`f(x^*_{MILP}) - \\min f` for the
minimum, :math:`\\max f - f(x^*_{MILP})` for the maximum.

Domains are the usual ones, shrunk where a 2×50 network could not represent the function at all
(Ackley on :math:`[-5, 5]^d` instead of :math:`[-32.768, 32.768]^d`). The minima are the classical
closed forms; the maxima were found by a dense grid (2-D) or all corners plus multi-start
L-BFGS-B (5-D) and are checked the same way in ``tests/test_bench.py``.

Every function takes ``x`` of shape ``(N, d)`` (float64) and returns shape ``(N,)``;
:meth:`BenchFunction.on_tensor` (e.g. :func:`peaks_tensor`) evaluates it on a torch batch as a
training target ``(B, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Array = np.ndarray


def peaks(x: Array) -> Array:
    """MATLAB's ``peaks``: three Gaussian bumps, 2-D.

    .. math::

        f = 3(1-x_1)^2 e^{-x_1^2-(x_2+1)^2} - 10(x_1/5 - x_1^3 - x_2^5) e^{-x_1^2-x_2^2}
            - \\tfrac13 e^{-(x_1+1)^2-x_2^2}
    """
    a, b = x[:, 0], x[:, 1]
    return (
        3 * (1 - a) ** 2 * np.exp(-(a**2) - (b + 1) ** 2)
        - 10 * (a / 5 - a**3 - b**5) * np.exp(-(a**2) - b**2)
        - np.exp(-((a + 1) ** 2) - b**2) / 3
    )


def ackley(x: Array) -> Array:
    """Ackley (means over the d inputs).

    .. math:: -20 e^{-0.2\\sqrt{\\overline{x^2}}} - e^{\\overline{\\cos 2\\pi x}} + 20 + e
    """
    d = x.shape[1]
    r = np.sqrt(np.sum(x**2, axis=1) / d)
    c = np.sum(np.cos(2 * np.pi * x), axis=1) / d
    return -20 * np.exp(-0.2 * r) - np.exp(c) + 20 + np.e


def rastrigin(x: Array) -> Array:
    """Rastrigin: :math:`10 d + \\sum_i (x_i^2 - 10\\cos 2\\pi x_i)`."""
    return 10 * x.shape[1] + np.sum(x**2 - 10 * np.cos(2 * np.pi * x), axis=1)


def rosenbrock(x: Array) -> Array:
    """Rosenbrock: :math:`\\sum_{i<d} 100(x_{i+1} - x_i^2)^2 + (1 - x_i)^2`."""
    return np.sum(100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2, axis=1)


def himmelblau(x: Array) -> Array:
    """Himmelblau: :math:`(x_1^2 + x_2 - 11)^2 + (x_1 + x_2^2 - 7)^2`, four global minima."""
    a, b = x[:, 0], x[:, 1]
    return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2


def styblinski_tang(x: Array) -> Array:
    """Styblinski–Tang: :math:`\\tfrac12 \\sum_i (x_i^4 - 16 x_i^2 + 5 x_i)`."""
    return 0.5 * np.sum(x**4 - 16 * x**2 + 5 * x, axis=1)


@dataclass(frozen=True)
class BenchFunction:
    """A benchmark function on a box, with its global optima over the box.

    Attributes:
        name: registry key, e.g. ``"peaks"`` or ``"ackley5"``.
        fn: ``(N, d) -> (N,)``.
        lower, upper: the box, one float per input.
        f_min, f_max: global minimum and maximum of ``fn`` over the box.
        x_min, x_max: one minimizer and one maximizer.
    """

    name: str
    fn: Callable[[Array], Array]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    f_min: float
    f_max: float
    x_min: tuple[float, ...]
    x_max: tuple[float, ...]

    @property
    def dim(self) -> int:
        return len(self.lower)

    @property
    def box(self) -> tuple[Array, Array]:
        """``(lb, ub)`` as float64 arrays."""
        return np.asarray(self.lower, np.float64), np.asarray(self.upper, np.float64)

    @property
    def f_range(self) -> float:
        """``f_max - f_min``, the scale for relative optimality errors."""
        return self.f_max - self.f_min

    def __call__(self, x: Array) -> Array:
        x = np.atleast_2d(np.asarray(x, np.float64))
        if x.shape[1] != self.dim:
            msg = f"{self.name} takes {self.dim} inputs, got an array of shape {x.shape}"
            raise ValueError(msg)
        return self.fn(x)

    def on_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The function on a torch batch, ``(B, d) -> (B, 1)`` in ``x``'s dtype (a training target;
        no gradient flows through it)."""
        return torch.from_numpy(self(x.detach().double().cpu().numpy())).to(x.dtype)[:, None]


def peaks_tensor(x: torch.Tensor) -> torch.Tensor:
    """:func:`peaks` on a torch batch, ``(B, 2) -> (B, 1)`` in ``x``'s dtype."""
    return get_function("peaks").on_tensor(x)


def _cube(v: float, d: int) -> tuple[float, ...]:
    return (float(v),) * d


_ST_MIN_X = -2.903534027771177  # root of 4x^3 - 32x + 5 = 0 in [-5, 0]

FUNCTIONS: dict[str, BenchFunction] = {
    f.name: f
    for f in (
        BenchFunction(
            "peaks", peaks, _cube(-3, 2), _cube(3, 2),
            f_min=-6.551133332835842, f_max=8.106213589442648,
            x_min=(0.2282789, -1.6255349), x_max=(-0.0093176, 1.5813680),
        ),
        BenchFunction(
            "ackley", ackley, _cube(-5, 2), _cube(5, 2),
            f_min=0.0, f_max=14.302667500265276,
            x_min=(0.0, 0.0), x_max=(-4.5975348, 4.5975348),
        ),
        BenchFunction(
            "rastrigin", rastrigin, _cube(-5.12, 2), _cube(5.12, 2),
            f_min=0.0, f_max=80.70658038767792,
            x_min=(0.0, 0.0), x_max=(-4.5229880, -4.5229880),
        ),
        BenchFunction(
            "rosenbrock", rosenbrock, _cube(-2.048, 2), _cube(2.048, 2),
            f_min=0.0, f_max=3905.9262268415996,
            x_min=(1.0, 1.0), x_max=(-2.048, -2.048),
        ),
        BenchFunction(
            "himmelblau", himmelblau, _cube(-5, 2), _cube(5, 2),
            f_min=0.0, f_max=890.0,
            x_min=(3.0, 2.0), x_max=(5.0, 5.0),
        ),
        BenchFunction(
            "styblinski_tang", styblinski_tang, _cube(-5, 2), _cube(5, 2),
            f_min=2 * 0.5 * (_ST_MIN_X**4 - 16 * _ST_MIN_X**2 + 5 * _ST_MIN_X), f_max=250.0,
            x_min=_cube(_ST_MIN_X, 2), x_max=(5.0, 5.0),
        ),
        BenchFunction(
            "ackley5", ackley, _cube(-5, 5), _cube(5, 5),
            f_min=0.0, f_max=14.302667500265276,
            x_min=_cube(0.0, 5), x_max=_cube(-4.5975348, 5),
        ),
        BenchFunction(
            "rosenbrock5", rosenbrock, _cube(-2.048, 5), _cube(2.048, 5),
            f_min=0.0, f_max=15623.704907366398,
            x_min=_cube(1.0, 5), x_max=_cube(-2.048, 5),
        ),
    )
}

#: The 2-D suite (the speed-up target is a geometric mean over these).
SUITE_2D: tuple[str, ...] = (
    "peaks", "ackley", "rastrigin", "rosenbrock", "himmelblau", "styblinski_tang",
)
#: The 5-D functions.
SUITE_5D: tuple[str, ...] = ("ackley5", "rosenbrock5")


def get_function(name: str) -> BenchFunction:
    """The benchmark function called ``name`` (``ValueError`` listing the known names)."""
    try:
        return FUNCTIONS[name]
    except KeyError:
        msg = f"unknown benchmark function {name!r}; known: {', '.join(FUNCTIONS)}"
        raise ValueError(msg) from None


__all__ = [
    "FUNCTIONS",
    "SUITE_2D",
    "SUITE_5D",
    "BenchFunction",
    "ackley",
    "get_function",
    "himmelblau",
    "peaks",
    "rastrigin",
    "rosenbrock",
    "styblinski_tang",
]
