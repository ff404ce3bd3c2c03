"""Monotone quantile networks: the incremental quantile head and its lowering to Gemm/ReLU.

For outputs :math:`o \\in \\mathbb{R}^K` of the last ``Linear`` layer the head returns quantiles

.. math::

    q_k = o_0 + \\sum_{j=1}^{k} \\max(0, o_j),\\qquad k = 0, \\dots, K-1,

which never cross. To embed it as a plain affine/ReLU chain, let :math:`\\ell_0 \\le o_0` hold over
the input box (a sound lower bound). Then :math:`\\max(0, o_0 - \\ell_0) = o_0 - \\ell_0` exactly
(a stably active neuron), and

.. math::

    q = T \\max\\big(0, o - \\ell_0 e_0\\big) + \\ell_0 \\mathbf{1},\\qquad T_{kj} = [j \\le k],

a hidden ReLU layer of width K followed by a fixed lower-triangular output layer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

Tensor = torch.Tensor


class IncrementalQuantileHead(nn.Module):
    """Last module of a quantile network: ``q = cumsum([o_0, relu(o_1), ..., relu(o_{K-1})])``.

    Input and output shapes are ``(B, K)``; quantiles come out sorted (non-decreasing in k).
    """

    def forward(self, o: Tensor) -> Tensor:
        inc = torch.cat([o[..., :1], torch.relu(o[..., 1:])], dim=-1)
        return torch.cumsum(inc, dim=-1)


def lower_quantile_head(
    chain: list[tuple[Tensor, Tensor]], input_bounds: tuple[np.ndarray, np.ndarray]
) -> list[tuple[Tensor, Tensor]]:
    """Rewrite ``chain`` (whose last layer gives ``o``) followed by the head as an affine chain.

    The shift :math:`\\ell_0` is an interval lower bound of :math:`o_0` over the box, computed in
    float64 and lowered by a safety margin, then held constant (no gradient flows through it; the
    network function does not depend on it).
    """
    from omlt_relax.bounds.interval import interval_chain

    lo, hi = input_bounds
    with torch.no_grad():
        c64 = [(w.detach().double(), b.detach().double()) for w, b in chain]
        lows, _ = interval_chain(
            c64, torch.as_tensor(lo, dtype=torch.float64), torch.as_tensor(hi, dtype=torch.float64),
            include_output=True,
        )
        l0 = float(lows[-1][0])
    l0 = l0 - 1e-6 * (1.0 + abs(l0))
    w_o, b_o = chain[-1]
    k = w_o.shape[0]
    shift = torch.zeros(k, dtype=b_o.dtype, device=b_o.device)
    shift[0] = l0
    tri = torch.tril(torch.ones(k, k, dtype=w_o.dtype, device=w_o.device))
    out_b = torch.full((k,), l0, dtype=w_o.dtype, device=w_o.device)
    return [*chain[:-1], (w_o, b_o - shift), (tri, out_b)]
