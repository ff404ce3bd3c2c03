"""Shared test settings: one torch thread (avoids stalls on 2-core machines), seeded nets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from omlt_relax.threads import single_thread

single_thread()


def random_net(
    n_in: int, widths: list[int], n_out: int = 1, seed: int = 0, dtype: torch.dtype = torch.float64
) -> nn.Sequential:
    """A random ``Linear``/``ReLU`` net with the given hidden widths."""
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    prev = n_in
    for w in widths:
        lin = nn.Linear(prev, w)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, prev, generator=g) / np.sqrt(prev))
            lin.bias.copy_(0.3 * torch.randn(w, generator=g))
        layers += [lin, nn.ReLU()]
        prev = w
    out = nn.Linear(prev, n_out)
    with torch.no_grad():
        out.weight.copy_(torch.randn(n_out, prev, generator=g) / np.sqrt(prev))
        out.bias.copy_(torch.randn(n_out, generator=g))
    layers.append(out)
    return nn.Sequential(*layers).to(dtype)


def sample_box(lo: np.ndarray, hi: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniform samples of the box plus all its corners (where the box is small)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, size=(n, lo.size))
    if lo.size <= 6:
        corners = np.array(np.meshgrid(*[[a, b] for a, b in zip(lo, hi)])).reshape(lo.size, -1).T
        x = np.vstack([x, corners])
    return x


@pytest.fixture
def peaks_box() -> tuple[np.ndarray, np.ndarray]:
    return np.array([-3.0, -3.0]), np.array([3.0, 3.0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only with ``OMLT_RELAX_SLOW=1`` (each is also covered cheaply)."""
    import os

    if os.environ.get("OMLT_RELAX_SLOW", "") not in ("", "0"):
        return
    skip = pytest.mark.skip(reason="slow; run with OMLT_RELAX_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str) -> ModuleType:
    """Import a script of the repository (``examples/x.py``, ``benchmarks/y.py``: folders that
    are not packages) as the module named by its stem, once per session (kept in
    ``sys.modules``: dataclasses look their module up there)."""
    path = ROOT / relpath
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
