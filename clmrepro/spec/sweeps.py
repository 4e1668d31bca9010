"""Sweeps: one spec entry expanded into a grid of members with readable ids.

A population or an attack may carry ``sweep: {knob path: [values, ...]}``.  Loading replaces the
entry with one member per combination of values (the cartesian product, knobs in the order
written), each a copy of the entry with those values set and the id
``{id}-{knob}{value}...`` (``clm-alpha0.05-delta0.1``; an attack without an id uses its kind).
A name that names the swept entry in ``evaluation.populations`` or an attack's ``populations``
then names every member.  The expansion runs on the YAML data before validation, so every
member is validated like a written one; `Expansion.original` turns a problem's place in the
expanded data back into its place in the file (the value in the sweep when that value is at
fault), so every problem stays one ``FILE:LINE path: message`` line.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field

from clmrepro.spec.checks import Path, Problem
from clmrepro.spec.models import KNOB_PATH, MAX_SWEEP_VALUES, _fraction

# Knobs a sweep may not vary: ids are generated from the sweep, `kind` chooses the model (write
# one entry per kind), eps is already a list (one job per value), and `populations` is a
# selection, not a knob.
FORBIDDEN = {
    "population": {"id": "members get their ids from the sweep",
                   "sweep": "a sweep cannot sweep itself",
                   "regime.kind": "write one population per kind"},
    "attack": {"id": "members get their ids from the sweep",
               "kind": "write one attack per kind",
               "sweep": "a sweep cannot sweep itself",
               "eps": "eps is already a list: eps: [0.1, 0.2, 0.3] runs one job per value",
               "populations": "it selects populations; it is not a knob"},
}
MAX_MEMBERS = MAX_SWEEP_VALUES
MAX_ID = 40  # models.SAFE_ID


@dataclass(frozen=True)
class Member:
    """Where one item of an expanded list came from."""

    index: int                                   # its entry's index in the list as written
    knobs: dict[tuple, tuple] = field(default_factory=dict)  # knob path -> place of its value


@dataclass
class Expansion:
    data: dict
    sweeps: list[dict] = field(default_factory=list)      # what the report plots against
    problems: list[Problem] = field(default_factory=list)
    origins: dict[Path, list[Member]] = field(default_factory=dict)

    def original(self, path: Path, value_at_fault: bool = True) -> Path:
        """The place in the written spec of a place in the expanded data; a swept knob maps to
        the value that made the member, or to the knob itself when its name is at fault."""
        out: list = []
        for position, part in enumerate(path):
            members = self.origins.get(tuple(path[:position]))
            if members is None or not isinstance(part, int) or part >= len(members):
                out.append(part)
                continue
            member, rest = members[part], tuple(path[position + 1:])
            for knob, where in member.knobs.items():
                if rest[:len(knob)] == knob:
                    return (*out, member.index, *(where if value_at_fault else where[:-1]))
            if member.knobs and rest[:1] == ("id",):
                return (*out, member.index, "sweep")
            out.append(member.index)
        return tuple(out)


def expand_sweeps(data: object) -> Expansion:
    """Expand every sweep in raw spec data (a parsed YAML mapping); malformed data outside the
    sweeps is left for validation to report."""
    expansion = Expansion(data=data if isinstance(data, dict) else {})
    if not isinstance(data, dict) or not _has_sweep(data):
        return expansion
    data = copy.deepcopy(data)
    expansion.data = data
    experiments = data.get("experiments")
    for i, experiment in enumerate(experiments if isinstance(experiments, list) else []):
        if isinstance(experiment, dict):
            _expand_experiment(experiment, ("experiments", i), expansion)
    return expansion


def _has_sweep(data: object) -> bool:
    if isinstance(data, dict):
        return "sweep" in data or any(_has_sweep(value) for value in data.values())
    if isinstance(data, list):
        return any(_has_sweep(item) for item in data)
    return False


def _expand_experiment(experiment: dict, at: Path, expansion: Expansion) -> None:
    experiment_id = experiment.get("id")
    renamed: dict[str, list[str]] = {}
    populations = experiment.get("populations")
    if isinstance(populations, list):
        experiment["populations"] = _expand_list(populations, (*at, "populations"), "population",
                                                 experiment_id, renamed, expansion)
        _check_from(experiment["populations"], (*at, "populations"), renamed, expansion)
    evaluation = experiment.get("evaluation")
    if not isinstance(evaluation, dict):
        return
    where = (*at, "evaluation")
    _rename_references(evaluation, (*where, "populations"), renamed, expansion)
    attacks = evaluation.get("attacks")
    if isinstance(attacks, list):
        evaluation["attacks"] = _expand_list(attacks, (*where, "attacks"), "attack",
                                             experiment_id, {}, expansion)
        for k, attack in enumerate(evaluation["attacks"]):
            if isinstance(attack, dict):
                _rename_references(attack, (*where, "attacks", k, "populations"), renamed,
                                   expansion)


def _expand_list(items: list, at: Path, entry: str, experiment_id: object,
                 renamed: dict[str, list[str]], expansion: Expansion) -> list:
    out: list = []
    origins: list[Member] = []
    for j, item in enumerate(items):
        if not isinstance(item, dict) or "sweep" not in item:
            out.append(item)
            origins.append(Member(j))
            continue
        sweep = item.pop("sweep")
        base = item.get("id") or (item.get("kind") if entry == "attack" else None)
        problems = _check_sweep(sweep, (*at, j, "sweep"), entry, base)
        # without an id to name the members after, validation reports the entry as written
        if sweep is None or problems or not isinstance(base, str):
            expansion.problems += problems
            out.append(item)
            origins.append(Member(j))
            continue
        keys = list(sweep)
        names = _knob_names(keys)
        members = []
        for combination in itertools.product(*(enumerate(sweep[key]) for key in keys)):
            member = copy.deepcopy(item)
            knobs = {}
            for key, (value_index, value) in zip(keys, combination):
                _set(member, key.split("."), value)
                knobs[tuple(key.split("."))] = ("sweep", key, value_index)
            member["id"] = "-".join([str(base)] + [f"{names[key]}{_value_text(value)}"
                                                   for key, (_, value) in zip(keys, combination)])
            out.append(member)
            origins.append(Member(j, knobs))
            members.append({"id": member["id"],
                            "values": {key: _plain(value) for key, (_, value) in zip(keys, combination)}})
        renamed[str(base)] = [m["id"] for m in members]
        expansion.sweeps.append({"experiment": experiment_id, "entry": entry, "id": base,
                                 "knobs": keys, "members": members})
    expansion.origins[at] = origins
    return out


def _check_sweep(sweep: object, at: Path, entry: str, base: object) -> list[Problem]:
    if sweep is None:
        return []
    if not isinstance(sweep, dict) or not sweep:
        got = "an empty mapping" if sweep == {} else _got(sweep)
        return [Problem(at, "must be a mapping of knob paths to lists of values, e.g. "
                        f"{{regime.alpha: [0.01, 0.1]}} (got {got})")]
    if not isinstance(base, str):
        return []
    problems = []
    combinations = 1
    for key, values in sweep.items():
        where = (*at, key)
        if not isinstance(key, str) or not _is_knob_path(key):
            problems.append(Problem(where, f"a knob path is dotted field names such as "
                                    f"regime.alpha or training.epochs (got {key!r})"))
            continue
        if key in FORBIDDEN[entry] or key.split(".")[0] in FORBIDDEN[entry]:
            reason = FORBIDDEN[entry].get(key) or FORBIDDEN[entry][key.split(".")[0]]
            problems.append(Problem(where, f"cannot be swept: {reason} (got '{key}')"))
            continue
        if not isinstance(values, list) or not values:
            problems.append(Problem(where, f"must be a non-empty list of values (got "
                                    f"{_got(values)})"))
            continue
        if len(values) > MAX_SWEEP_VALUES:
            problems.append(Problem(where, f"must have at most {MAX_SWEEP_VALUES} values "
                                    f"(got {len(values)})"))
            continue
        bad = [v for v in values if isinstance(v, (dict, list))]
        if bad:
            problems.append(Problem(where, f"values must be numbers, text, true/false or null "
                                    f"(got {_got(bad[0])})"))
            continue
        texts = [_value_text(v) for v in values]
        unsafe = [v for v, text in zip(values, texts) if not re.match(r"^[a-z0-9._-]+$", text)]
        if unsafe:
            problems.append(Problem(where, f"cannot name a member: a value in an id may hold "
                                    f"lowercase letters, digits, '.', '-' and '_' "
                                    f"(got {_got(unsafe[0])})"))
            continue
        twice = sorted({t for t in texts if texts.count(t) > 1})
        if twice:
            problems.append(Problem(where, f"value {twice[0]} appears twice; each member needs "
                                    f"its own id (got {_got(values)})"))
            continue
        combinations *= len(values)
    if problems:
        return problems
    if combinations > MAX_MEMBERS:
        return [Problem(at, f"the grid has {combinations} combinations; at most {MAX_MEMBERS} "
                        f"(got {' x '.join(str(len(v)) for v in sweep.values())})")]
    names = _knob_names(list(sweep))
    longest = "-".join([base] + [f"{names[key]}{max((_value_text(v) for v in values), key=len)}"
                                 for key, values in sweep.items()])
    if len(longest) > MAX_ID:
        return [Problem(at, f"member ids would be longer than {MAX_ID} characters; shorten the "
                        f"id (got '{longest}')")]
    return []


def _check_from(populations: list, at: Path, renamed: dict[str, list[str]],
                expansion: Expansion) -> None:
    """`from: clm` when clm is swept has no single meaning: say which members exist."""
    for k, population in enumerate(populations):
        regime = population.get("regime") if isinstance(population, dict) else None
        source = regime.get("from") if isinstance(regime, dict) else None
        if isinstance(source, str) and source in renamed:
            members = renamed[source]
            shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
            where = expansion.original((*at, k, "regime", "from"))
            problem = Problem(where, f"names the swept population '{source}'; name one of its "
                              f"members ({shown}) (got '{source}')")
            if problem not in expansion.problems:
                expansion.problems.append(problem)


def _rename_references(holder: dict, at: Path, renamed: dict[str, list[str]],
                       expansion: Expansion) -> None:
    """Replace a swept population's id by its members' ids in the `populations` list at ``at``
    (a place in the expanded data)."""
    names = holder.get("populations")
    if not isinstance(names, list) or not any(isinstance(n, str) and n in renamed for n in names):
        return
    out, origins = [], []
    for index, name in enumerate(names):
        for replacement in renamed.get(name, [name]) if isinstance(name, str) else [name]:
            out.append(replacement)
            origins.append(Member(index))
    holder["populations"] = out
    expansion.origins[at] = origins


def _knob_names(keys: list[str]) -> dict[str, str]:
    """The last field name (alpha), or the whole path (adversarial-alpha) where two knobs of
    one sweep end alike."""
    last = [key.split(".")[-1] for key in keys]
    return {key: name if last.count(name) == 1 else key.replace(".", "-")
            for key, name in zip(keys, last)}


def _is_knob_path(key: str) -> bool:
    return re.match(KNOB_PATH, key) is not None


def _set(target: dict, parts: list[str], value: object) -> None:
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else child
            if not isinstance(child, dict):
                return  # `size.x`: validation reports the value of `size`
            target[part] = child
        target = child
    target[parts[-1]] = value


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        converted = _fraction(value)
        return f"{converted:.6g}" if isinstance(converted, float) else value
    return str(value)


def _plain(value: object) -> object:
    """The value as the report plots it: '8/255' becomes the number it stands for."""
    if isinstance(value, str):
        return _fraction(value)
    return value


def _got(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
