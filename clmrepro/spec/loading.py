"""Read a spec file: YAML with line numbers, pydantic validation, cross-field checks.

Every problem becomes one line ``FILE:LINE dotted.path: what is wrong (got X)``; user mistakes
never show a traceback (STYLE.md, rule 7).
"""

from __future__ import annotations

import re
from pathlib import Path as FsPath

import yaml
from pydantic import ValidationError

from clmrepro.spec.checks import Path, Problem, check_spec, regime_warnings
from clmrepro.spec.errors import describe_error, display_path
from clmrepro.spec.models import Spec
from clmrepro.spec.sweeps import expand_sweeps


class SpecError(Exception):
    """A spec with problems; ``lines`` holds one formatted line per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` as a string; specs mean a number (YAML 1.2 does too)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_spec(path: str | FsPath) -> Spec:
    path = FsPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError([f"{path}: cannot read the spec ({error.strerror or error})"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{path}: the spec is not UTF-8 text"]) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    data, lines = _read_yaml(text, filename)
    # Sweeps become their members first; problems found in a member are reported at the place
    # in the file that made it (clmrepro.spec.sweeps).
    expansion = expand_sweeps(data)
    if expansion.problems:
        raise SpecError(_format(expansion.problems, lines, filename))
    try:
        spec = Spec.model_validate(expansion.data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            path, model = display_path(item["loc"])
            place = expansion.original(path, value_at_fault=item["type"] != "extra_forbidden")
            problems.append(Problem(place, describe_error(item, model)))
        raise SpecError(_format(problems, lines, filename)) from None
    problems = [Problem(expansion.original(p.path), p.message) for p in check_spec(spec)]
    if problems:
        raise SpecError(_format(problems, lines, filename))
    spec._sweeps = expansion.sweeps
    warnings = [Problem(expansion.original(p.path), p.message) for p in regime_warnings(spec)]
    spec._warnings = _format(warnings, lines, filename)
    return spec


def _read_yaml(text: str, filename: str) -> tuple[dict, dict[Path, int]]:
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip()
                               for line in text.splitlines()):
        raise SpecError([f"{filename}: the spec is empty; expected a mapping with at least "
                         "`name` and `experiments`"])
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError([f"{where} YAML syntax error: {problem}"]) from None
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise SpecError([f"{filename}:{line} (document): must be a mapping of spec keys "
                         f"(got {type(data).__name__})"])
    lines: dict[Path, int] = {}
    duplicates: list[str] = []
    _index_lines(node, (), lines, duplicates, filename)
    if duplicates:
        raise SpecError(duplicates)
    return data, lines


def _index_lines(node, at: Path, lines: dict[Path, int], duplicates: list[str], filename: str):
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = key.value
            if name in seen:
                duplicates.append(f"{filename}:{key.start_mark.line + 1} {_dotted((*at, name))}: "
                                  f"duplicate key (got '{name}' twice)")
            seen.add(name)
            # The key's own line, not its value's (a mapping value starts on the next line).
            lines[(*at, name)] = key.start_mark.line + 1
            _index_lines(value, (*at, name), lines, duplicates, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*at, index), lines, duplicates, filename)


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _format(problems: list[Problem], lines: dict[Path, int], filename: str) -> list[str]:
    out = []
    for problem in problems:
        line = None
        for cut in range(len(problem.path), -1, -1):
            if problem.path[:cut] in lines:
                line = lines[problem.path[:cut]]
                break
        where = f"{filename}:{line}" if line else filename
        out.append((line or 0, f"{where} {_dotted(problem.path)}: {problem.message}"))
    # Members of one sweep repeat their entry's problems: say each once.
    return list(dict.fromkeys(text for _, text in sorted(out, key=lambda pair: pair[0])))
