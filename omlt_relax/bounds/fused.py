r"""IBP and CROWN of the hidden layers in numpy, with hand-written vector-Jacobian products.

The training penalties' fast path on CPU (:mod:`omlt_relax.penalties`): the same numbers as the
torch implementations (:func:`~omlt_relax.bounds.interval.interval_chain`,
:func:`~omlt_relax.bounds.crown.crown_chain`; rounding aside) and the same gradients as torch
autograd through them, ties and kinks included, but computed with a fraction of the per-operation
overhead. A training step of a small network costs mostly that overhead.

Both functions take the hidden layers' affine chain ``[(W_1, b_1), ..., (W_K, b_K)]`` (numpy
arrays of one dtype) and the input box, and return ``(LU, tape)``: ``LU`` of shape ``(2, N)``,
:math:`N = \sum_k n_k`, row 0 the lower and row 1 the upper pre-activation bounds of all hidden
layers (layer after layer), and ``tape`` what the backward pass needs. The matching ``*_vjp``
takes the tape and :math:`\bar G = \partial P/\partial LU` (shape ``(2, N)``, overwritten) and
returns :math:`\partial P/\partial W_k, \partial P/\partial b_k` for every layer, ``None`` where
not ``need``-ed. First-order only.

IBP (centre/radius form), layer k with input box centre :math:`m` and radius :math:`\rho`:
:math:`c = W m + b`, :math:`r = |W|\rho`, :math:`l = c - r`, :math:`u = c + r`, next box
:math:`[\max(0, l), \max(0, u)]`. Backward: :math:`\bar c = \bar l + \bar u`,
:math:`\bar r = \bar u - \bar l`, :math:`\bar W = \bar c m^\top + \operatorname{sign}(W)\odot
\bar r \rho^\top`, :math:`\bar b = \bar c`, :math:`\bar m = W^\top \bar c`,
:math:`\bar\rho = |W|^\top \bar r`, and through the ReLU
:math:`\bar u_{k-1} \mathrel{+}= [u_{k-1} > 0](\bar m + \bar\rho)/2`,
:math:`\bar l_{k-1} \mathrel{+}= [l_{k-1} > 0](\bar m - \bar\rho)/2`.

CROWN (:mod:`omlt_relax.bounds.crown`): layer k is the IBP bound from the layer before intersected
(``maximum``/``minimum``, ties split the gradient in halves as torch does) with the back-substituted
bound: :math:`\Lambda = [W_k; -W_k]`, :math:`c = [b_k; -b_k]`, then for :math:`j = k-1, \dots, 1`

.. math::

    c \mathrel{+}= \Lambda^+ \gamma_j,\quad D = \Lambda^+ \operatorname{diag}(\beta_j) +
    \Lambda^- \operatorname{diag}(\alpha_j),\quad c \mathrel{+}= D b_j,\quad \Lambda = D W_j,

and :math:`c \mathrel{+}= \Lambda^+ x_{hi} + \Lambda^- x_{lo}`, upper bound :math:`c_{1:n}`, lower
:math:`-c_{n+1:2n}`; :math:`(\alpha_j, \beta_j, \gamma_j)` the relaxation of layer j
(:func:`~omlt_relax.bounds.crown.relu_relaxation`: on unstable neurons
:math:`\beta = u/(u-l)`, :math:`\gamma = -ul/(u-l)`, :math:`\alpha \in \{0, 1\}` constant). The
backward pass runs each of these steps in reverse (:math:`\Lambda^\pm` pass the gradient where
:math:`\Lambda \ge 0` resp. :math:`\le 0`, as ``clamp`` does), collects
:math:`\bar\beta_j, \bar\gamma_j` of every later layer and turns them into :math:`\bar l_j,
\bar u_j` (:math:`\partial\beta/\partial u = -l/(u-l)^2`, :math:`\partial\beta/\partial l =
u/(u-l)^2`, :math:`\partial\gamma/\partial u = l^2/(u-l)^2`, :math:`\partial\gamma/\partial l =
-u^2/(u-l)^2`) before layer j's own IBP and CROWN steps are reversed.

Bounds for optimizers are not computed here: those are float64 and rounded outward
(:func:`omlt_relax.bounds.sound_bounds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

NpChain = Sequence[tuple[np.ndarray, np.ndarray]]
Tape = Any


def _slices(chain: NpChain) -> list[tuple[int, int]]:
    out = []
    s = 0
    for w, _ in chain:
        out.append((s, s + w.shape[0]))
        s += w.shape[0]
    return out


def _consts(dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """0-d arrays 0, 1/2, 1 of ``dtype`` and the 2x2 matrix taking ``[l; u]`` to centre and radius
    (numpy operands of the array's dtype are cheaper than Python floats)."""
    key = np.dtype(dtype)
    if key not in _CONSTS:
        _CONSTS[key] = (
            *(np.full((), v, dtype=key) for v in (0.0, 0.5, 1.0)),
            np.array([[0.5, 0.5], [-0.5, 0.5]], dtype=key),
        )
    return _CONSTS[key]


_CONSTS: dict[np.dtype, tuple[np.ndarray, ...]] = {}


def _input_box(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Centre and radius of the input box as the rows of a ``(2, n_0)`` array."""
    return np.dot(_consts(lo.dtype)[3], np.stack([lo, hi]))


def _ibp_layer(w: np.ndarray, b: np.ndarray, mr: np.ndarray, out: np.ndarray) -> np.ndarray:
    """IBP of one layer into ``out`` (shape ``(2, n)``: rows ``l``, ``u``) from the input box's
    centre and radius (rows of ``mr``); returns :math:`[W; |W|]`.

    One product :math:`[W; |W|]\\,[m, \\rho]` gives :math:`c = W m` and :math:`r = |W|\\rho`
    (and two unused blocks: at these sizes one call costs less than two).
    """
    n = w.shape[0]
    wc = np.empty((2 * n, w.shape[1]), dtype=w.dtype)
    wc[:n] = w
    np.abs(w, out=wc[n:])
    cr = np.dot(wc, mr.T)
    c = cr[:n, 0]
    c += b
    r = cr[n:, 1]
    np.subtract(c, r, out=out[0])
    np.add(c, r, out=out[1])
    return wc


def _box(lu_k: np.ndarray) -> np.ndarray:
    """Centre and radius (rows of a ``(2, n)`` array) of the post-activation box
    :math:`[\\max(0, l), \\max(0, u)]` of a layer's bounds ``lu_k`` (rows ``l``, ``u``)."""
    zero, _, _, to_centre = _consts(lu_k.dtype)
    return np.dot(to_centre, np.maximum(lu_k, zero))


def _acc(grads: list[np.ndarray | None], i: int, g: np.ndarray) -> None:
    """``grads[i] += g`` (``grads[i]`` may still be ``None``)."""
    if grads[i] is None:
        grads[i] = g
    else:
        grads[i] += g


def ibp_forward(chain: NpChain, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, Tape]:
    """IBP bounds ``LU`` (shape ``(2, N)``) of all hidden layers and the tape for
    :func:`ibp_vjp`."""
    sl = _slices(chain)
    lu = np.empty((2, sl[-1][1]), dtype=chain[0][0].dtype)
    mr = _input_box(lo, hi)
    layers = []
    last = len(chain) - 1
    for k, (w, b) in enumerate(chain):
        s, e = sl[k]
        lu_k = lu[:, s:e]
        wc = _ibp_layer(w, b, mr, lu_k)
        layers.append((wc, mr))
        if k < last:
            mr = _box(lu_k)
    return lu, (layers, sl, lu)


def _ibp_layer_vjp(
    k: int, layer: tuple[Any, ...], gl: np.ndarray, gu: np.ndarray, g: np.ndarray,
    lu: np.ndarray, sl: list[tuple[int, int]], need: Sequence[bool],
    grads: list[np.ndarray | None],
) -> None:
    """Reverse IBP of layer ``k``: add to ``grads`` and to the previous layer's rows of ``g``."""
    wc, mr = layer
    n = wc.shape[0] // 2
    gc = gl + gu
    gr = gu - gl
    if need[2 * k]:
        # outer products as (n, 1) x (1, m) dot products (cheaper than np.outer at these sizes)
        gw = np.dot(gr[:, None], mr[1:])
        gw *= np.sign(wc[:n])
        gw += np.dot(gc[:, None], mr[:1])
        _acc(grads, 2 * k, gw)
    if need[2 * k + 1]:
        _acc(grads, 2 * k + 1, gc)
    if k > 0:
        zero, _, _, to_centre = _consts(gc.dtype)
        s, e = sl[k - 1]
        gmr = np.empty((2, e - s), dtype=gc.dtype)  # rows: dP/dm = W^T gc, dP/drho = |W|^T gr
        np.dot(gc, wc[:n], out=gmr[0])
        np.dot(gr, wc[n:], out=gmr[1])
        # [m; rho] = C [l+; u+], C = to_centre: back to the post-ReLU bounds, then the ReLU
        t = np.dot(to_centre.T, gmr)
        t *= lu[:, s:e] > zero
        g[:, s:e] += t


def ibp_vjp(tape: Tape, g: np.ndarray, need: Sequence[bool]) -> list[np.ndarray | None]:
    """Gradients in ``W_1, b_1, ..., W_K, b_K`` of a function of :func:`ibp_forward`'s bounds
    whose gradient in them is ``g`` (shape ``(2, N)``, used as workspace)."""
    layers, sl, lu = tape
    grads: list[np.ndarray | None] = [None] * (2 * len(layers))
    for k in range(len(layers) - 1, -1, -1):
        s, e = sl[k]
        _ibp_layer_vjp(k, layers[k], g[0, s:e], g[1, s:e], g, lu, sl, need, grads)
    return grads


def _relaxation(l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(alpha, beta, gamma, unstable, 1/(u-l))`` of :func:`~omlt_relax.bounds.crown.
    relu_relaxation` (``1/(u-l)`` only meaningful on unstable neurons)."""
    zero, _, one, _ = _consts(l.dtype)
    active = l >= zero
    unstable = (l < zero) & (u > zero)
    inv = one / np.where(unstable, u - l, one)
    beta = np.where(unstable, u * inv, active.astype(l.dtype))
    gamma = np.where(unstable, -u * l * inv, zero)
    alpha = (active | (unstable & (u >= -l))).astype(l.dtype)
    return alpha, beta, gamma, unstable, inv


def _relaxation_vjp(relax: tuple[np.ndarray, ...], l: np.ndarray, u: np.ndarray,
                    g_beta: np.ndarray, g_gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients in ``l`` and ``u`` from those in ``beta`` and ``gamma`` (unstable neurons)."""
    _, _, _, unstable, inv = relax
    inv2 = inv * inv * unstable
    gl = (g_gamma * (-u * u) + g_beta * u) * inv2
    gu = (g_gamma * (l * l) - g_beta * l) * inv2
    return gl, gu


def crown_forward(chain: NpChain, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, Tape]:
    """CROWN/IBP-intersected bounds ``LU`` (shape ``(2, N)``) of all hidden layers and the tape
    for :func:`crown_vjp`."""
    sl = _slices(chain)
    dtype = chain[0][0].dtype
    lu = np.empty((2, sl[-1][1]), dtype=dtype)
    mr = _input_box(lo, hi)
    layers, relax, backs = [], [], []
    last = len(chain) - 1
    for k, (w, b) in enumerate(chain):
        s, e = sl[k]
        lu_k = lu[:, s:e]
        if k == 0:
            wc = _ibp_layer(w, b, mr, lu_k)
            backs.append(None)
        else:
            ibp = np.empty_like(lu_k)
            wc = _ibp_layer(w, b, mr, ibp)
            cl, cu, steps = _backsubstitute(chain, k, relax, lo, hi)
            np.maximum(ibp[0], cl, out=lu_k[0])
            np.minimum(ibp[1], cu, out=lu_k[1])
            backs.append((ibp[0], ibp[1], cl, cu, steps))
        layers.append((wc, mr))
        if k < last:
            relax.append(_relaxation(lu_k[0], lu_k[1]))
            mr = _box(lu_k)
    return lu, (layers, relax, backs, sl, lu, chain, lo, hi)


def _backsubstitute(
    chain: NpChain, k: int, relax: list[tuple[np.ndarray, ...]], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
    """The CROWN bounds of layer ``k`` from the relaxations of the layers before, and the
    intermediate :math:`\\Lambda, \\Lambda^+, D, [\\Lambda \\ge 0]` of each step (for the backward
    pass)."""
    w, b = chain[k]
    n = w.shape[0]
    lam = np.concatenate([w, -w])
    const = np.concatenate([b, -b])
    zero = _consts(w.dtype)[0]
    steps = []
    for j in range(k - 1, -1, -1):
        alpha, beta, gamma = relax[j][:3]
        lp = np.maximum(lam, zero)
        const += np.dot(lp, gamma)
        # D = Lambda^+ beta + Lambda^- alpha = Lambda * (beta where Lambda >= 0, else alpha)
        pos = lam >= zero
        slope = np.where(pos, beta, alpha)
        d = slope * lam
        wj, bj = chain[j]
        const += np.dot(d, bj)
        # dD/dLambda is `slope` except at Lambda = 0 (alpha + beta there: clamp passes both)
        steps.append((lam, lp, d, pos, slope if lam.all() else None))
        lam = np.dot(d, wj)
    const += np.dot(np.maximum(lam, zero), hi)
    const += np.dot(np.minimum(lam, zero), lo)
    steps.append((lam,))
    return -const[n:], const[:n], steps


def crown_vjp(tape: Tape, g: np.ndarray, need: Sequence[bool]) -> list[np.ndarray | None]:
    """Gradients in ``W_1, b_1, ..., W_K, b_K`` of a function of :func:`crown_forward`'s bounds
    whose gradient in them is ``g`` (shape ``(2, N)``, used as workspace)."""
    layers, relax, backs, sl, lu, chain, lo, hi = tape
    n_layers = len(layers)
    grads: list[np.ndarray | None] = [None] * (2 * n_layers)
    g_beta = [np.zeros_like(r[1]) for r in relax]
    g_gamma = [np.zeros_like(r[1]) for r in relax]
    half = _consts(lu.dtype)[1]
    for k in range(n_layers - 1, -1, -1):
        s, e = sl[k]
        gl, gu = g[0, s:e], g[1, s:e]
        if k < n_layers - 1:
            rl, ru = _relaxation_vjp(relax[k], lu[0, s:e], lu[1, s:e], g_beta[k], g_gamma[k])
            gl = gl + rl
            gu = gu + ru
        if k == 0:
            _ibp_layer_vjp(k, layers[k], gl, gu, g, lu, sl, need, grads)
            continue
        li, ui, cl, cu, steps = backs[k]
        # l = maximum(l_ibp, l_crown), u = minimum(u_ibp, u_crown): ties split in halves
        tie_l = li == cl
        tie_u = ui == cu
        _ibp_layer_vjp(k, layers[k], gl * np.where(tie_l, half, li > cl),
                       gu * np.where(tie_u, half, ui < cu), g, lu, sl, need, grads)
        g_cl = gl * np.where(tie_l, half, cl > li)
        g_cu = gu * np.where(tie_u, half, cu < ui)
        _backsubstitute_vjp(chain, k, relax, steps, g_cl, g_cu, lo, hi, need, grads,
                            g_beta, g_gamma)
    return grads


def _backsubstitute_vjp(
    chain: NpChain, k: int, relax: list[tuple[np.ndarray, ...]], steps: list[tuple[Any, ...]],
    g_cl: np.ndarray, g_cu: np.ndarray, lo: np.ndarray, hi: np.ndarray, need: Sequence[bool],
    grads: list[np.ndarray | None], g_beta: list[np.ndarray], g_gamma: list[np.ndarray],
) -> None:
    """Reverse :func:`_backsubstitute` of layer ``k``: add to ``grads`` (weights of layers
    ``<= k``) and to ``g_beta``, ``g_gamma`` (relaxations of layers ``< k``)."""
    w, _ = chain[k]
    n = w.shape[0]
    g_const = np.concatenate([g_cu, -g_cl])
    g_col = g_const[:, None]
    ones = np.ones(g_const.shape[0], dtype=g_const.dtype)
    lam = steps[-1][0]
    zero = _consts(w.dtype)[0]
    g_lam = np.dot(g_col, hi[None, :])
    g_lam *= lam >= zero
    g_lam += np.dot(g_col, lo[None, :]) * (lam <= zero)
    for i in range(k - 1, -1, -1):  # steps[i] is layer j = k - 1 - i; reverse: j = 0 first
        j = k - 1 - i
        lam_j, lp, d, pos, slope = steps[i]
        alpha, beta, gamma = relax[j][:3]
        wj, bj = chain[j]
        if need[2 * j]:
            _acc(grads, 2 * j, np.dot(d.T, g_lam))
        if need[2 * j + 1]:
            _acc(grads, 2 * j + 1, np.dot(g_const, d))
        g_d = np.dot(g_lam, wj.T)
        g_d += np.dot(g_col, bj[None, :])
        g_beta[j] += np.dot(ones, g_d * lp)
        g_gamma[j] += np.dot(g_const, lp)
        if slope is not None:  # no zero in Lambda: one slope per entry
            g_lam = np.multiply(g_col, gamma)
            g_lam *= pos
            g_lam += g_d * slope
        else:
            g_lam = g_d * beta
            g_lam += np.multiply(g_col, gamma)
            g_lam *= pos
            g_d *= alpha
            g_d *= lam_j <= zero
            g_lam += g_d
    if need[2 * k]:
        _acc(grads, 2 * k, g_lam[:n] - g_lam[n:])
    if need[2 * k + 1]:
        _acc(grads, 2 * k + 1, g_const[:n] - g_const[n:])


#: method name -> (forward, vjp)
FUSED: dict[str, tuple[Any, Any]] = {
    "ibp": (ibp_forward, ibp_vjp),
    "crown": (crown_forward, crown_vjp),
}

__all__ = ["FUSED", "crown_forward", "crown_vjp", "ibp_forward", "ibp_vjp"]
