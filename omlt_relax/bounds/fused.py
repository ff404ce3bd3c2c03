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


def _ibp_layer(w: np.ndarray, b: np.ndarray, m: np.ndarray, rho: np.ndarray,
               l_out: np.ndarray, u_out: np.ndarray) -> np.ndarray:
    """IBP of one layer into ``l_out``, ``u_out``; returns :math:`|W|`."""
    aw = np.abs(w)
    c = w @ m
    c += b
    r = aw @ rho
    np.subtract(c, r, out=l_out)
    np.add(c, r, out=u_out)
    return aw


def _box(l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and radius of the post-activation box :math:`[\\max(0, l), \\max(0, u)]`."""
    zl = np.maximum(l, 0.0)
    zu = np.maximum(u, 0.0)
    return (zu + zl) * 0.5, (zu - zl) * 0.5


def ibp_forward(chain: NpChain, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, Tape]:
    """IBP bounds ``LU`` (shape ``(2, N)``) of all hidden layers and the tape for
    :func:`ibp_vjp`."""
    sl = _slices(chain)
    lu = np.empty((2, sl[-1][1]), dtype=chain[0][0].dtype)
    m, rho = (hi + lo) * 0.5, (hi - lo) * 0.5
    layers = []
    for k, (w, b) in enumerate(chain):
        s, e = sl[k]
        aw = _ibp_layer(w, b, m, rho, lu[0, s:e], lu[1, s:e])
        layers.append((w, aw, m, rho))
        if k + 1 < len(chain):
            m, rho = _box(lu[0, s:e], lu[1, s:e])
    return lu, (layers, sl, lu)


def _ibp_layer_vjp(
    k: int, layer: tuple[np.ndarray, ...], gl: np.ndarray, gu: np.ndarray, g: np.ndarray,
    lu: np.ndarray, sl: list[tuple[int, int]], need: Sequence[bool],
    grads: list[np.ndarray | None],
) -> None:
    """Reverse IBP of layer ``k``: add to ``grads`` and to the previous layer's rows of ``g``."""
    w, aw, m, rho = layer
    gc = gl + gu
    gr = gu - gl
    if need[2 * k]:
        gw = np.outer(gc, m)
        gw += np.sign(w) * np.outer(gr, rho)
        grads[2 * k] = gw if grads[2 * k] is None else grads[2 * k] + gw
    if need[2 * k + 1]:
        grads[2 * k + 1] = gc if grads[2 * k + 1] is None else grads[2 * k + 1] + gc
    if k > 0:
        gm = gc @ w
        grho = gr @ aw
        s, e = sl[k - 1]
        g[1, s:e] += (lu[1, s:e] > 0) * ((gm + grho) * 0.5)
        g[0, s:e] += (lu[0, s:e] > 0) * ((gm - grho) * 0.5)


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
    active = l >= 0
    unstable = (l < 0) & (u > 0)
    inv = 1.0 / np.where(unstable, u - l, 1.0)
    beta = np.where(unstable, u * inv, active)
    gamma = np.where(unstable, -u * l * inv, 0.0)
    alpha = (active | (unstable & (u >= -l))).astype(l.dtype)
    return alpha, beta.astype(l.dtype, copy=False), gamma.astype(l.dtype, copy=False), \
        unstable, inv


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
    m, rho = (hi + lo) * 0.5, (hi - lo) * 0.5
    layers, relax, backs = [], [], []
    for k, (w, b) in enumerate(chain):
        s, e = sl[k]
        l, u = lu[0, s:e], lu[1, s:e]
        if k == 0:
            aw = _ibp_layer(w, b, m, rho, l, u)
            backs.append(None)
        else:
            li, ui = np.empty_like(l), np.empty_like(u)
            aw = _ibp_layer(w, b, m, rho, li, ui)
            cl, cu, steps = _backsubstitute(chain, k, relax, lo, hi)
            np.maximum(li, cl, out=l)
            np.minimum(ui, cu, out=u)
            backs.append((li, ui, cl, cu, steps))
        layers.append((w, aw, m, rho))
        if k + 1 < len(chain):
            relax.append(_relaxation(l, u))
            m, rho = _box(l, u)
    return lu, (layers, relax, backs, sl, lu, chain, lo, hi)


def _backsubstitute(
    chain: NpChain, k: int, relax: list[tuple[np.ndarray, ...]], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
    w, b = chain[k]
    n = w.shape[0]
    lam = np.concatenate([w, -w])
    const = np.concatenate([b, -b])
    steps = []
    for j in range(k - 1, -1, -1):
        alpha, beta, gamma = relax[j][:3]
        lp = np.maximum(lam, 0.0)
        ln = np.minimum(lam, 0.0)
        const = const + lp @ gamma
        d = lp * beta
        d += ln * alpha
        wj, bj = chain[j]
        const = const + d @ bj
        steps.append((lam, lp, d))
        lam = d @ wj
    const = const + np.maximum(lam, 0.0) @ hi + np.minimum(lam, 0.0) @ lo
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
    for k in range(n_layers - 1, -1, -1):
        s, e = sl[k]
        gl, gu = g[0, s:e], g[1, s:e]
        l, u = lu[0, s:e], lu[1, s:e]
        if k < n_layers - 1:
            rl, ru = _relaxation_vjp(relax[k], l, u, g_beta[k], g_gamma[k])
            gl = gl + rl
            gu = gu + ru
        if k == 0:
            _ibp_layer_vjp(k, layers[k], gl, gu, g, lu, sl, need, grads)
            continue
        li, ui, cl, cu, steps = backs[k]
        # l = maximum(l_ibp, l_crown), u = minimum(u_ibp, u_crown): ties split in halves
        half = l.dtype.type(0.5)
        tie_l = li == cl
        tie_u = ui == cu
        w_li = np.where(tie_l, half, li > cl)
        w_ui = np.where(tie_u, half, ui < cu)
        _ibp_layer_vjp(k, layers[k], gl * w_li, gu * w_ui, g, lu, sl, need, grads)
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
    lam = steps[-1][0]
    g_lam = np.outer(g_const, hi) * (lam >= 0)
    g_lam += np.outer(g_const, lo) * (lam <= 0)
    for i in range(k - 1, -1, -1):  # steps[i] is layer j = k - 1 - i; reverse: j = 0 first
        j = k - 1 - i
        lam_j, lp, d = steps[i]
        alpha, beta, gamma = relax[j][:3]
        wj, bj = chain[j]
        if need[2 * j]:
            gw = d.T @ g_lam
            grads[2 * j] = gw if grads[2 * j] is None else grads[2 * j] + gw
        if need[2 * j + 1]:
            gb = g_const @ d
            grads[2 * j + 1] = gb if grads[2 * j + 1] is None else grads[2 * j + 1] + gb
        g_d = g_lam @ wj.T
        g_d += np.outer(g_const, bj)
        g_beta[j] += (g_d * lp).sum(axis=0)
        g_gamma[j] += g_const @ lp
        g_lp = g_d * beta
        g_lp += np.outer(g_const, gamma)
        g_lam = g_lp * (lam_j >= 0)
        g_lam += (g_d * alpha) * (lam_j <= 0)
    if need[2 * k]:
        gw = g_lam[:n] - g_lam[n:]
        grads[2 * k] = gw if grads[2 * k] is None else grads[2 * k] + gw
    if need[2 * k + 1]:
        gb = g_const[:n] - g_const[n:]
        grads[2 * k + 1] = gb if grads[2 * k + 1] is None else grads[2 * k + 1] + gb


#: method name -> (forward, vjp)
FUSED: dict[str, tuple[Any, Any]] = {
    "ibp": (ibp_forward, ibp_vjp),
    "crown": (crown_forward, crown_vjp),
}

__all__ = ["FUSED", "crown_forward", "crown_vjp", "ibp_forward", "ibp_vjp"]
