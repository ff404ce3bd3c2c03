"""The package layout reads as the data flow: stages import only earlier stages, no cycles.

Checked statically with ``ast`` over ``omlt_relax/**/*.py``: every ``import``/``from ... import``
of an ``omlt_relax`` module (at any depth of the file, so a late import inside a function counts
too) is an edge; importing ``omlt_relax.a.b`` from outside the package ``omlt_relax.a`` is also an
edge to ``omlt_relax.a`` (Python runs that ``__init__`` first). ``from omlt_relax.a import b``
with ``b`` a submodule is an edge to ``omlt_relax.a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "omlt_relax"

#: The stages, in data-flow order; a module may import from its own stage or earlier ones.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("network", ("threads", "guards", "tables", "network", "quantile", "neuron_bounds", "chain")),
    ("bounds", ("bounds", "bounds.rounding", "bounds.interval", "bounds.crown", "bounds.methods",
                "bounds.fused")),
    ("lp relaxation", ("lp.relaxation", "linear_regions")),
    ("tightening and penalties", ("bounds.obbt", "penalties", "lp", "lp.gap")),
    ("training", ("regularizer", "lightning", "data", "data_io", "penalty_schedule", "epoch_budget",
                  "train", "schedule")),
    ("foreign networks", ("foreign",)),
    ("export", ("files", "export", "tighten", "snapping")),
    ("formulations", ("formulations", "formulations.bigm", "formulations.partition")),
    ("solve", ("solve", "verify", "mip_start")),
    ("optimize", ("optimize",)),
    ("stochastic programming", ("stochastic", "stochastic.cache", "stochastic.instance",
                                "stochastic.recourse", "stochastic.data", "stochastic.quantile_net",
                                "stochastic.first_stage", "stochastic.evaluate")),
    ("cli and benchmarks", ("", "cli", "fuzz", "bench", "bench.*", "stochastic.bench",
                            "stochastic.cli", "budget", "tune", "cli_tune", "cli_input")),
]

#: Stages whose modules may import lazily inside functions (start-up time of the command line).
LAZY_OK = {"cli and benchmarks"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _stage(name: str) -> int:
    for i, (_, mods) in enumerate(STAGES):
        for m in mods:
            if m == name or (m.endswith(".*") and name.startswith(m[:-1])):
                return i
    msg = f"module omlt_relax.{name} is in no stage; add it to STAGES in {__file__}"
    raise AssertionError(msg)


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def _edges(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(target, line, top_level)`` for every omlt_relax import of a module."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    package = name if _is_package(name, mods) else name.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(["omlt_relax", *base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            targets = [mod]
            for a in node.names:
                sub = f"{mod}.{a.name}".removeprefix("omlt_relax.")
                if sub in mods:
                    targets.append(f"omlt_relax.{sub}")
        for t in targets:
            if t != "omlt_relax" and not t.startswith("omlt_relax."):
                continue
            target = t.removeprefix("omlt_relax").removeprefix(".")
            chain = [target]
            # the parent packages Python initializes first (not the root, not our own package)
            parts = target.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if not (name == parent or name.startswith(parent + ".")):
                    chain.append(parent)
            for c in chain:
                if c in mods and c != name:
                    out.append((c, node.lineno, id(node) in top))
    return out


def _graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int, bool]]]]:
    mods = _modules()
    return mods, {n: _edges(n, p, mods) for n, p in mods.items()}


def test_every_module_has_a_stage() -> None:
    for name in _modules():
        _stage(name)


def test_no_module_imports_from_a_later_stage() -> None:
    _, graph = _graph()
    bad = [
        f"omlt_relax.{src} (stage {STAGES[_stage(src)][0]!r}) imports omlt_relax.{dst} "
        f"(stage {STAGES[_stage(dst)][0]!r}) at line {line}"
        for src, edges in graph.items()
        for dst, line, _ in edges
        if _stage(dst) > _stage(src)
    ]
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycle() -> None:
    _, graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m, _, _ in graph.get(n, []):
            if state.get(m) == 1:
                cycle = [*stack[stack.index(m):], m]
                pytest.fail("import cycle: " + " -> ".join(f"omlt_relax.{c}" for c in cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)


def test_no_late_imports_below_the_command_line() -> None:
    _, graph = _graph()
    late = [
        f"omlt_relax.{src} imports omlt_relax.{dst} inside a function (line {line})"
        for src, edges in graph.items()
        for dst, line, top_level in edges
        if not top_level and STAGES[_stage(src)][0] not in LAZY_OK
    ]
    assert not late, "\n".join(late)


def test_no_private_name_crosses_modules() -> None:
    mods = _modules()
    bad = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("omlt_relax"):
                bad += [
                    f"omlt_relax.{name} imports {a.name} from {node.module} (line {node.lineno})"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert not bad, "\n".join(bad)


#: The production commands (``train``, ``solve``, ``tighten``, ``train --budget``) and the modules
#: they run: none of them may go through the benchmark package ``omlt_relax.bench``.
PRODUCTION: dict[str, tuple[str, ...]] = {
    "cli": ("cmd_train", "cmd_solve", "cmd_tighten", "main", "build_parser", "hidden_default"),
    "cli_tune": ("cmd_train_budget", "add_budget_arguments"),
    "cli_input": (),
    "budget": (),
}


def _bench_imports(nodes: list[ast.AST]) -> list[int]:
    lines = []
    for top in nodes:
        for node in ast.walk(top):
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module or ""]
            lines += [node.lineno for m in mods
                      if m == "omlt_relax.bench" or m.startswith("omlt_relax.bench.")]
    return lines


def test_the_production_commands_do_not_run_through_the_benchmark_package() -> None:
    """``omlt-relax train``/``solve``/``tighten`` and the modules they use import no benchmark
    module: at their module's top level, nor inside the functions that run them."""
    bad = []
    for name, functions in PRODUCTION.items():
        tree = ast.parse((ROOT / f"{name}.py").read_text())
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        missing = [f for f in functions if f not in funcs]
        assert not missing, f"omlt_relax.{name} has no {missing}; update PRODUCTION"
        scope = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
        if not functions:  # the whole module
            scope = list(tree.body)
        scope += [funcs[f] for f in functions]
        bad += [f"omlt_relax.{name} line {line}" for line in _bench_imports(scope)]
    assert not bad, "imports omlt_relax.bench: " + ", ".join(bad)
