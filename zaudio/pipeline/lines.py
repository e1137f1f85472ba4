"""Line numbers for the keys of a TOML file (``tomllib`` gives none).

:func:`locate` scans the text once and maps every table header and every key
assignment to the line it is on: ``("processor", "level", "topics") -> 12``.
It understands what a pipeline file uses: ``[a.b]`` and ``[[a]]`` headers,
bare, quoted and dotted keys, comments, and multi-line strings (whose lines are
skipped). Keys inside an inline table (``params = { n = 3 }``) are not mapped
one by one: :meth:`Lines.of` falls back to the line of the closest mapped
parent, here ``params``. The file must already parse (``tomllib``) for the
answers to mean anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Lines", "locate"]

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(text: str) -> tuple[list[str], str] | None:
    """A (dotted) key at the start of ``text``: its parts and what follows, or None."""
    parts: list[str] = []
    rest = text
    while True:
        rest = rest.lstrip(" \t")
        if rest[:1] == '"':
            end = 1
            while end < len(rest) and rest[end] != '"':
                end += 2 if rest[end] == "\\" else 1
            if end >= len(rest):
                return None
            raw = rest[1:end]
            parts.append(raw.encode().decode("unicode_escape") if "\\" in raw else raw)
            rest = rest[end + 1 :]
        elif rest[:1] == "'":
            end = rest.find("'", 1)
            if end < 0:
                return None
            parts.append(rest[1:end])
            rest = rest[end + 1 :]
        else:
            m = _BARE.match(rest)
            if not m:
                return None
            parts.append(m[0])
            rest = rest[m.end() :]
        rest = rest.lstrip(" \t")
        if rest[:1] != ".":
            return parts, rest
        rest = rest[1:]


def _opens_multiline(value: str) -> str | None:
    """The delimiter of a multi-line string that ``value`` opens and does not close."""
    value = value.lstrip()
    for quote in ('"""', "'''"):
        if value.startswith(quote) and value.count(quote) == 1:
            return quote
    return None


@dataclass
class Lines:
    """Where each table and key of one TOML text is (1-based line numbers)."""

    at: dict[Path, int] = field(default_factory=dict)

    def of(self, *path: str | int) -> int:
        """The line of ``path``, else of its closest mapped parent, else 1."""
        for n in range(len(path), 0, -1):
            line = self.at.get(tuple(path[:n]))
            if line is not None:
                return line
        return 1

    def _add(self, path: Path, line: int) -> None:
        for n in range(1, len(path) + 1):
            self.at.setdefault(tuple(path[:n]), line)


def locate(text: str) -> Lines:
    """Map the headers and keys of ``text`` to their lines."""
    lines = Lines()
    table: Path = ()
    arrays: dict[Path, int] = {}
    closing: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        if closing is not None:
            if closing in raw:
                closing = None
            continue
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[["):
            parsed = _key(s[2:])
            if parsed is not None and parsed[1].startswith("]]"):
                base = tuple(parsed[0])
                index = arrays[base] = arrays.get(base, -1) + 1
                table = (*base, index)
                lines._add(table, number)
            continue
        if s.startswith("["):
            parsed = _key(s[1:])
            if parsed is not None and parsed[1].startswith("]"):
                table = tuple(parsed[0])
                lines._add(table, number)
            continue
        parsed = _key(s)
        if parsed is None or not parsed[1].startswith("="):
            continue  # a continuation line of a multi-line array or inline table
        lines._add((*table, *parsed[0]), number)
        closing = _opens_multiline(parsed[1][1:])
    return lines
