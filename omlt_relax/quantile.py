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


#: Relative margin by which the shift :math:`\\ell_0` is lowered below the interval bound of
#: :math:`o_0` (the one outward-rounding rule, :mod:`omlt_relax.bounds.rounding`), so that the
#: shifted neuron stays stably active in float32 and float64 evaluations alike.
QUANTILE_SHIFT_MARGIN = 1e-6


def lower_quantile_head(
    chain: list[tuple[Tensor, Tensor]], l0: float
) -> list[tuple[Tensor, Tensor]]:
    """Rewrite ``chain`` (whose last layer gives ``o``) followed by the head as an affine chain.

    ``l0`` is the shift :math:`\\ell_0`, a sound lower bound of :math:`o_0` over the input box
    (:func:`omlt_relax.bounds.quantile_shift` computes it); it is a constant (no gradient flows
    through it; the network function does not depend on it).
    """
    w_o, b_o = chain[-1]
    k = w_o.shape[0]
    shift = torch.zeros(k, dtype=b_o.dtype, device=b_o.device)
    shift[0] = l0
    tri = torch.tril(torch.ones(k, k, dtype=w_o.dtype, device=w_o.device))
    out_b = torch.full((k,), l0, dtype=w_o.dtype, device=w_o.device)
    return [*chain[:-1], (w_o, b_o - shift), (tri, out_b)]
