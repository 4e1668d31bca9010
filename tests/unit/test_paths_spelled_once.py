"""Artifact paths are spelled in one place (issue 25, docs/architecture.md "Artifact paths"):
``clmrepro/plan/paths.py`` composes them from the names in the layer-0 ``clmrepro/layout.py``;
no other module writes a fragment of the layout in code.

What counts: every string constant of a module's code (f-string pieces included), docstrings
excepted.  Prose (a string with a space in it: a help text, a message for the reader) may name a
folder; a path that code builds or globs may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "clmrepro"
ALLOWED = {"plan/paths.py", "layout.py"}
# pieces of the layout a path built elsewhere would spell
FRAGMENTS = (".clmrepro-state", "results/", "/scores/", "scores/", "/attacks/", "population.pt",
             "training.json", "analysis.json", "workflow/compiled", "run.lock")
ROOTS = ("results", ".clmrepro-state")  # a root spelled alone: Path(...) / "results"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                found.add(id(body[0].value))
    return found


def spelled_paths(source: str) -> list[tuple[int, str]]:
    """(line, string) of each code string that spells a piece of the artifact layout."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
            continue
        text = node.value
        if any(c.isspace() for c in text):
            continue  # prose for the reader
        if text in ROOTS or any(fragment in text for fragment in FRAGMENTS):
            found.append((node.lineno, text))
    return found


def test_no_module_but_plan_paths_spells_an_artifact_path():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ALLOWED:
            continue
        found += [f"clmrepro/{relative}:{line}: {text!r}"
                  for line, text in spelled_paths(path.read_text(encoding="utf-8"))]
    assert found == []


def test_the_check_finds_what_it_should():
    code = '''
"""Docstrings may say results/{spec}/ and .clmrepro-state/."""
from pathlib import Path
STATE = Path(".clmrepro-state")
def f(job):
    """results/x/population.pt"""
    print("the state lives in .clmrepro-state/ until the job ends")
    return STATE / job["spec"] / f"r{job['r']}/population.pt", Path("results") / "x"
'''
    assert spelled_paths(code) == [(4, ".clmrepro-state"), (8, "/population.pt"),
                                   (8, "results")]
