"""Reading and checking a pipeline file: every mistake, each with its line.

A pipeline file (TOML) describes a proxy, recorders and processors; see
docs/pipelines.md. :func:`check` parses and checks it and returns a
:class:`Pipeline` whose nodes are the ``zaudio`` command lines to run, in start
order (proxy, recorders, processors), or, since it never stops at the first
mistake, a :class:`Problem` for each, printed as ``FILE:LINE: what is wrong —
what to do``. :func:`load` is the same raising one ConfigError with them all.

Paths in the file (sources, ``function = "x.py:fn"``, keys, processor params)
are relative to the file's directory, where the nodes run.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zaudio.errors import ConfigError
from zaudio.pipeline.lines import Lines, locate
from zaudio.pipeline.schema import NOT_YET, OWNED, Option, options, to_args

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["POLICIES", "Node", "Pipeline", "Problem", "Restart", "check", "load"]

POLICIES = ("on-failure", "always", "no")
RESTART_KEYS = ("restart", "backoff", "backoff_max")
TOP = ("proxy", "recorder", "processor", "env", "defaults")
_WILDCARD = ("", "*", "0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class Problem:
    """One mistake: where it is, what is wrong, what to do."""

    line: int
    what: str
    fix: str

    def format(self, file: str | os.PathLike[str]) -> str:
        return f"{file}:{self.line}: {self.what} — {self.fix}"


@dataclass(frozen=True)
class Restart:
    """When a node that exited is started again, and how long to wait first."""

    policy: str = "on-failure"  # one of POLICIES
    backoff: float = 0.25  # first delay (s); doubles per failure in a row
    backoff_max: float = 30.0  # the delay never exceeds it

    def delay(self, failures: int) -> float:
        """The wait before restart number ``failures`` of a run of failures (1-based)."""
        return min(self.backoff_max, self.backoff * 2.0 ** max(0, failures - 1))


@dataclass(frozen=True)
class Node:
    """One child process: ``zaudio ARGS`` in the file's directory."""

    name: str
    kind: str  # "proxy", "recorder", "processor" or "sequencer"
    args: tuple[str, ...]
    env: Mapping[str, str]
    restart: Restart
    line: int
    #: processes of a group processor (``replicas = N``): one ``zaudio process`` each
    replicas: int = 1

    def processes(self) -> list[Node]:
        """The node as the processes ``zaudio up`` runs: one, or ``NAME.1`` .. ``NAME.N``."""
        if self.replicas == 1:
            return [self]
        return [
            replace(self, name=f"{self.name}.{k}", replicas=1) for k in range(1, self.replicas + 1)
        ]


@dataclass(frozen=True)
class Pipeline:
    """A checked pipeline file: its nodes in start order."""

    path: Path
    control: str  # the proxy's control endpoint
    keys: str | None  # absolute key directory, or None
    nodes: tuple[Node, ...]
    started_proxy: bool = field(default=True)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def processes(self) -> list[Node]:
        """Every process ``zaudio up`` runs, in start order (replicas expanded)."""
        return [p for node in self.nodes for p in node.processes()]


def closest(word: str, known: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def split(message: str, fix: str) -> tuple[str, str]:
    """``"what: fix"`` (zaudio's one-line errors) as (what, fix); ``fix`` if none."""
    what, sep, tail = message.rpartition(": ")
    if sep and what and re.match(r"[a-z]", tail):
        return what, tail
    return message, fix


class _Checker:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.dir = path.parent
        self.lines: Lines = locate(text)
        self.problems: list[Problem] = []

    def bad(self, where: tuple[str | int, ...], what: str, fix: str) -> None:
        self.problems.append(Problem(self.lines.of(*where), what, fix))

    def bad_error(self, where: tuple[str | int, ...], exc: Exception, fix: str) -> None:
        self.bad(where, *split(str(exc), fix))

    def table(self, where: tuple[str, ...], value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.bad(where, f"'{'.'.join(where)}' must be a table", f"write [{'.'.join(where)}]")
        return {}

    def unknown(self, where: tuple[str, ...], key: str, known: Iterable[str], command: str) -> None:
        known = list(known)
        if key in NOT_YET.get(command, {}):
            self.bad(
                (*where, key),
                f"'{key}' is not supported yet: 'zaudio {command}' here has no "
                f"{NOT_YET[command][key]} option",
                "remove it, or update zaudio to a version that has it",
            )
            return
        guess = closest(key, known)
        fix = f"did you mean '{guess}'?" if guess else f"use one of: {', '.join(sorted(known))}"
        inside = f" in [{'.'.join(where)}]" if where else ""
        self.bad((*where, key), f"unknown key '{key}'{inside}", fix)

    def values(
        self,
        where: tuple[str, ...],
        table: dict[str, Any],
        opts: dict[str, Option],
        extra: Iterable[str],
        command: str,
    ) -> dict[str, Any]:
        """The table's option values, checked; pipeline keys (``extra``) left as they are."""
        extra = set(extra)
        out: dict[str, Any] = {}
        for key, value in table.items():
            if key in opts:
                try:
                    out[key] = opts[key].check(value)
                except ConfigError as exc:
                    self.bad_error((*where, key), exc, f"fix the value of '{key}'")
            elif key in OWNED and where[0] != "proxy":
                self.bad((*where, key), f"'{key}' is not a per-node key", OWNED[key])
            elif key not in extra:
                self.unknown(where, key, [*opts, *extra], command)
        return out

    def env(self, where: tuple[str, ...], value: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, v in self.table(where, value).items():
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                self.bad((*where, key), f"environment variable {key} = {v!r}", "give a string")
            else:
                out[key] = str(v)
        return out

    def restart(self, where: tuple[str, ...], table: dict[str, Any], base: Restart) -> Restart:
        from zaudio.units import parse_duration

        policy, backoff, backoff_max = base.policy, base.backoff, base.backoff_max
        if "restart" in table:
            if table["restart"] in POLICIES:
                policy = table["restart"]
            else:
                self.bad(
                    (*where, "restart"),
                    f"invalid restart {table['restart']!r}",
                    'use "on-failure", "always" or "no"',
                )
        seconds = {}
        for key in ("backoff", "backoff_max"):
            if key in table:
                try:
                    seconds[key] = parse_duration(table[key], key)
                except ConfigError as exc:
                    self.bad_error((*where, key), exc, f"give '{key}' as a duration such as \"1s\"")
                except TypeError:
                    self.bad(
                        (*where, key),
                        f"invalid {key} {table[key]!r}",
                        'use a duration such as "1s"',
                    )
        backoff = seconds.get("backoff", backoff)
        backoff_max = seconds.get("backoff_max", backoff_max)
        if backoff > backoff_max:
            self.bad(
                (*where, "backoff" if "backoff" in table else "backoff_max"),
                f"backoff {backoff:g} s is more than backoff_max {backoff_max:g} s",
                "make backoff_max at least backoff",
            )
        return Restart(policy, backoff, backoff_max)


def _control(host: str, port: int) -> str:
    return f"tcp://{'127.0.0.1' if host in _WILDCARD else host}:{port}"


def load(path: str | os.PathLike[str]) -> Pipeline:
    """The checked pipeline in ``path``.

    Raises
    ------
    ConfigError
        Every mistake found, one ``FILE:LINE: ...`` line each (see :func:`check`).
    """
    pipeline, problems = check(path)
    if pipeline is None:
        raise ConfigError("\n".join(p.format(path) for p in problems))
    return pipeline


def check(path: str | os.PathLike[str]) -> tuple[Pipeline | None, list[Problem]]:
    """Parse and check the pipeline file at ``path``: (the pipeline, []) or (None, problems).

    Problems come in line order, every one found. ``zaudio check`` and ``zaudio up``
    print them and exit 2.

    Raises
    ------
    ConfigError
        The file cannot be read.
    """
    from zaudio.endpoints import control_endpoint
    from zaudio.pipeline.graph import check_graph
    from zaudio.pipeline.nodes import (
        Common,
        check_keys,
        processor_node,
        recorder_node,
        sequencer_node,
    )

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read pipeline file {str(file)!r}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m[1]) if m else 1
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
        return None, [Problem(line, message, "fix the TOML syntax")]
    c = _Checker(file.resolve(), text)
    for key in data:
        if key not in TOP:
            c.unknown((), key, TOP, "up")
    defaults_table = c.table(("defaults",), data.get("defaults", {}))
    for key in defaults_table:
        if key not in RESTART_KEYS:
            c.unknown(("defaults",), key, RESTART_KEYS, "up")
    defaults = c.restart(("defaults",), defaults_table, Restart())
    common_env = c.env(("env",), data.get("env", {}))

    # the proxy: started here, or an existing one's endpoint
    proxy_table = c.table(("proxy",), data.get("proxy", {}))
    keys = check_keys(c, proxy_table, "endpoint" not in proxy_table)
    nodes: list[Node] = []
    started = "endpoint" not in proxy_table
    if not started:
        try:
            control = control_endpoint(str(proxy_table["endpoint"]))
        except ConfigError as exc:
            c.bad_error(("proxy", "endpoint"), exc, 'write endpoint = "tcp://HOST:PORT"')
            control = "tcp://127.0.0.1:5555"
        for key in proxy_table:
            if key not in ("endpoint", "keys"):
                c.bad(
                    ("proxy", key),
                    f"'{key}' has no effect with 'endpoint' (a proxy running elsewhere)",
                    "remove it, or remove 'endpoint' to start a proxy here",
                )
    else:
        opts = options("proxy")
        values = c.values(("proxy",), proxy_table, opts, ("keys", *RESTART_KEYS, "env"), "proxy")
        host = values.get("host", opts["host"].param.default)
        port: Any = values.get("port", opts["port"].param.default)
        control = _control(str(host), int(port))
        args = ["proxy", *to_args(opts, values)]
        if keys:
            args += ["--keys", keys]
        nodes.append(
            Node(
                "proxy",
                "proxy",
                tuple(args),
                {**common_env, **c.env(("proxy", "env"), proxy_table.get("env", {}))},
                c.restart(("proxy",), proxy_table, defaults),
                c.lines.of("proxy"),
            )
        )
    tail = ("--proxy", control, *(("--keys", keys) if keys else ()))
    common = Common(defaults, common_env, tail)
    for kind, build in (("recorder", recorder_node), ("processor", processor_node)):
        for name, table in c.table((kind,), data.get(kind, {})).items():
            nodes.append(build(c, name, c.table((kind, name), table), common))
    nodes += [s for n in nodes if (s := sequencer_node(n)) is not None]
    if not any(n.kind != "proxy" for n in nodes) and not c.problems:
        c.bad(
            (),
            "the pipeline has no recorder or processor",
            "add a [recorder.NAME] or [processor.NAME] table",
        )
    check_graph(c, data)
    if c.problems:
        return None, sorted(c.problems, key=lambda p: p.line)
    return Pipeline(file.resolve(), control, keys, tuple(nodes), started), []
