"""The layer contract of docs/architecture.md, checked on the imports of every module.

A module may import from its own package and from packages on lower layers, never from a
higher layer or a peer on the same layer; inside ``core`` the shared pieces import neither
subsystem and the subsystems (``core.training``, ``core.attacks``) not each other; and no
chain of imports inside clmrepro leads back to where it started.  Every import counts,
also one inside a function (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "clmrepro"

# Lower numbers are lower layers (docs/architecture.md, "Layers").
LAYERS = {
    "seeds": 0, "fields": 0,
    # the artifact layout's names (plan.paths re-exports them): the run lock and calibration
    # name folders from here (issue 25)
    "layout": 0,
    "core": 1, "runlock": 1,
    # one module per attack, regime and check (issue 25): spec models on clmrepro.fields, the
    # science from core (lazily)
    "kinds": 2,
    "spec": 3,
    "calibration": 3,
    "plan": 4,
    "reporting": 5, "compiled": 5,
    "emit": 6, "steps": 6, "lab": 6,
    # doctor: checks a compiled plan (plan.storage for the disk, runlock for the checkout)
    # against this machine; torch only in a child process, so the CLI may import it
    "doctor": 6,
    "cli": 7,
}
CORE_SUBSYSTEMS = ("training", "attacks")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``root``'s package it imports (``from a import b`` names
    module ``a.b`` where that is a module, else ``a``)."""
    top = root.name
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == top}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.split(".")[0] != top:
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in modules else base)
        graph[name] = {d for d in deps if d != name}
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def core_part(module: str) -> str:
    """'training' / 'attacks' for a subsystem's module, 'shared' for the rest of core."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[2] in CORE_SUBSYSTEMS else "shared"


def layer_violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    found = []
    for module, deps in sorted(graph.items()):
        mine = package_of(module)
        for dep in sorted(deps):
            theirs = package_of(dep)
            if not mine or not theirs:
                continue
            if mine not in layers or theirs not in layers:
                found.append(f"{module} -> {dep}: package without a layer")
            elif mine != theirs and layers[theirs] >= layers[mine]:
                found.append(f"{module} (layer {layers[mine]}) -> {dep} (layer {layers[theirs]})")
            elif (mine == theirs == "core" and core_part(module) != core_part(dep)
                  and core_part(dep) != "shared"):  # shared or one subsystem -> a subsystem
                found.append(f"{module} ({core_part(module)}) -> {dep} ({core_part(dep)})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    packages = {package_of(m) for m in import_graph(PACKAGE)} - {""}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_no_import_reaches_up_a_layer():
    assert layer_violations(import_graph(PACKAGE), LAYERS) == []


def test_no_import_cycle_inside_clmrepro():
    assert cycles(import_graph(PACKAGE)) == []


# --- the checks themselves, on small made-up packages ---------------------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "clmrepro"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_an_upward_import_inside_a_function_is_found(tmp_path):
    root = _package(tmp_path, {
        "core/data.py": "def f():\n    from clmrepro.steps.common import prepare\n",
        "steps/common.py": "from clmrepro.core import data\n",
    })
    found = layer_violations(import_graph(root), LAYERS)
    assert found == ["clmrepro.core.data (layer 1) -> clmrepro.steps.common (layer 6)"]


def test_a_peer_import_and_a_subsystem_import_are_found(tmp_path):
    root = _package(tmp_path, {
        "emit/dvc.py": "from clmrepro.steps import train\n",
        "steps/train.py": "",
        "core/models.py": "from clmrepro.core.training.loop import train\n",
        "core/training/loop.py": "from clmrepro.core.attacks.work import Unit\n",
        "core/attacks/work.py": "from clmrepro.core import models\n",
    })
    found = layer_violations(import_graph(root), LAYERS)
    assert found == [
        "clmrepro.core.models (shared) -> clmrepro.core.training.loop (training)",
        "clmrepro.core.training.loop (training) -> clmrepro.core.attacks.work (attacks)",
        "clmrepro.emit.dvc (layer 6) -> clmrepro.steps.train (layer 6)",
    ]


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "core/attacks/work.py": "def pick():\n    from clmrepro.core.attacks.sequential import X\n",
        "core/attacks/sequential.py": "from clmrepro.core.attacks.work import Unit\nX = 1\n",
        "core/attacks/kinds.py": "from .work import pick\n",
    })
    graph = import_graph(root)
    assert graph["clmrepro.core.attacks.kinds"] == {"clmrepro.core.attacks.work"}
    assert cycles(graph) == [["clmrepro.core.attacks.sequential", "clmrepro.core.attacks.work"]]


def test_planning_and_batched_crafting_do_not_load_torchattacks():
    """The work plan, the executor choice, the threat models and the evaluate step load
    without torchattacks (16 s to import on a loaded machine); only the sequential executor
    needs it, and it is imported when chosen."""
    code = ("import sys\n"
            "import clmrepro.core.attacks.threats, clmrepro.steps.evaluate\n"
            "print('torchattacks' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, check=True)
    assert done.stdout.strip() == "False"
