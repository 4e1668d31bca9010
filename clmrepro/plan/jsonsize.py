"""The byte count of ``json.dumps(obj, indent=2, sort_keys=True) + "\\n"`` without writing it.

Our JSON artifacts (``core.checkpoints.atomic_write_json``) are written with 2-space indents,
one value per line.  ``clmrepro.plan.storage`` describes each file as a *skeleton*: the real
keys and strings, :class:`Num` where a number's text length is known but not its value, and
:class:`Repeat` for a long list of equal-sized items (a transfer matrix, 37,500 PRSE rows),
so a file of millions of numbers is sized in microseconds.  ``json_bytes`` follows the
encoder's layout exactly; tests compare it with ``json.dumps`` on real structures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

INDENT = 2


@dataclass(frozen=True)
class Num:
    """A number whose JSON text is ``chars`` characters long."""

    chars: int


@dataclass(frozen=True)
class Repeat:
    """A list of ``count`` items that each take as many bytes as ``item``."""

    item: object
    count: int


def _items_bytes(sizes_sum: int, count: int, level: int) -> int:
    """'[' or '{', newline, each item on its own line indented one level deeper, ',' between
    items (',' and a newline), a newline, the closing bracket at this level's indent."""
    return 2 + count * INDENT * (level + 1) + sizes_sum + 2 * (count - 1) + 1 + INDENT * level + 1


def json_bytes(obj: object, level: int = 0) -> int:
    """Bytes of ``obj`` as ``json.dumps(indent=2)`` writes it at nesting depth ``level``."""
    if isinstance(obj, Num):
        return obj.chars
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return len(json.dumps(obj))  # ensure_ascii, as atomic_write_json: one byte per char
    if isinstance(obj, Repeat):
        if obj.count == 0:
            return 2
        return _items_bytes(obj.count * json_bytes(obj.item, level + 1), obj.count, level)
    if isinstance(obj, (list, tuple)):
        if not obj:
            return 2
        return _items_bytes(sum(json_bytes(item, level + 1) for item in obj), len(obj), level)
    if isinstance(obj, dict):
        if not obj:
            return 2
        # each member is `"key": value`
        inner = sum(len(json.dumps(str(key))) + 2 + json_bytes(value, level + 1)
                    for key, value in obj.items())
        return _items_bytes(inner, len(obj), level)
    raise TypeError(f"json_bytes: cannot size a {type(obj).__name__}")


def file_bytes(obj: object) -> int:
    """The file ``atomic_write_json`` writes: the JSON text and a final newline."""
    return json_bytes(obj) + 1
