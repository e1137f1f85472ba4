"""Checking one node's table and turning it into the ``zaudio`` command it runs.

A recorder ``[recorder.NAME]`` becomes ``zaudio record --stream NAME ...``
(``stream`` may rename it), a processor ``[processor.NAME]`` becomes
``zaudio process FUNCTION --name NAME ...``. Besides each command's options a
node takes ``restart``, ``backoff``, ``backoff_max`` and ``env``; a processor
also ``function``, and with a ``group`` ``replicas = N``: N members of that
group (``NAME.1`` .. ``NAME.N`` under ``zaudio up``, one service or Deployment
of N replicas when exported); a group processor that declares an ``output`` gets
a sequencer node ``NAME.sequence`` (``zaudio sequence OUTPUT``), which publishes
its members' arrays as the one stream ``output``. Sources and functions are tried
here, the way the command would load them, so that a typo is a line of ``zaudio check`` rather than a
node that keeps restarting.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zaudio.errors import ConfigError, ProtocolError
from zaudio.pipeline.schema import options, to_args

if TYPE_CHECKING:
    from zaudio.pipeline.config import Node, Restart, _Checker

__all__ = [
    "Common",
    "check_keys",
    "processor_node",
    "recorder_node",
    "sequencer_node",
    "source_path",
]

NODE_KEYS = ("restart", "backoff", "backoff_max", "env")
_DEVICE_SOURCES = ("mic", "device")


def check_keys(c: _Checker, proxy: dict[str, Any], server: bool) -> str | None:
    """The absolute key directory of ``[proxy] keys``, or None; a problem if unusable."""
    from zaudio.security import Keys

    if "keys" not in proxy:
        return None
    raw = proxy["keys"]
    if not isinstance(raw, str) or not raw:
        c.bad(
            ("proxy", "keys"),
            f"invalid keys {raw!r}",
            "give a directory made by 'zaudio keygen DIR'",
        )
        return None
    directory = (c.dir / raw).resolve()
    if not directory.is_dir():
        c.bad(
            ("proxy", "keys"),
            f"keys directory {raw!r} does not exist ({directory})",
            f"create it with 'zaudio keygen {raw}', or fix the path",
        )
        return None
    try:
        if server:
            Keys.for_server(directory)
        Keys.for_client(directory)
    except ConfigError as exc:
        c.bad_error(("proxy", "keys"), exc, f"run 'zaudio keygen {raw}'")
        return None
    return str(directory)


def source_path(spec: str, directory: Path) -> str | None:
    """The file a ``source`` names (absolute), or None when it names no file."""
    from zaudio.sources import _SUFFIXES, SOURCES

    name, sep, arg = spec.partition(":")
    if name == "file" and sep:
        return str(directory / arg)
    if name in SOURCES:
        return None
    path = directory / spec
    if path.exists() or "/" in spec or spec.lower().endswith(_SUFFIXES):
        return str(path)
    return None


def _check_source(c: _Checker, where: tuple[str, ...], values: dict[str, Any]) -> None:
    from zaudio.pipeline.config import closest
    from zaudio.sources import SOURCES, open_source

    spec = values.get("source", "mic")
    at = (*where, "source")
    if spec == "-":
        c.bad(
            at,
            "the stdin source '-' reads nothing under 'zaudio up'",
            "use a file or a synthetic source",
        )
        return
    name = spec.partition(":")[0]
    if name in _DEVICE_SOURCES:
        return  # devices are opened by the recorder itself (and may come and go)
    path = source_path(spec, c.dir)
    if path is None and name not in SOURCES:
        guess = closest(name, SOURCES)
        c.bad(
            at,
            f"unknown source {spec!r}",
            (f"did you mean '{guess}'? " if guess else "")
            + "use mic, device:N, sine:FREQ, noise, speech, chirp, silence or file:PATH",
        )
        return
    try:
        source = open_source(
            f"file:{path}" if path else spec,
            rate=values.get("rate"),
            channels=values.get("channels"),
            block=values.get("block", "10ms"),
            loop=bool(values.get("loop")),
        )
    except ConfigError as exc:
        c.bad_error(at, exc, "fix the source, rate, channels or block")
        return
    source.stop()


def _name(c: _Checker, where: tuple[str | int, ...], name: Any, what: str) -> None:
    from zaudio.protocol import validate_name

    try:
        validate_name(name, what)
    except ProtocolError as exc:
        c.bad_error(where, exc, f"rename the {what}")


@dataclass(frozen=True)
class Common:
    """What every node of a file shares: restart defaults, environment, ``--proxy``/``--keys``."""

    defaults: Restart
    env: Mapping[str, str]
    tail: tuple[str, ...]

    def node(
        self, c: _Checker, kind: str, name: str, table: dict[str, Any], args: list[str]
    ) -> Node:
        from zaudio.pipeline.config import Node

        where = (kind, name)
        env = {**self.env, **c.env((*where, "env"), table.get("env", {}))}
        restart = c.restart(where, table, self.defaults)
        return Node(name, kind, (*args, *self.tail), env, restart, c.lines.of(*where))


def recorder_node(c: _Checker, name: str, table: dict[str, Any], common: Common) -> Node:
    where = ("recorder", name)
    opts = options("record")
    values = c.values(where, table, opts, NODE_KEYS, "record")
    values.setdefault("stream", name)
    _name(c, (*where, "stream") if "stream" in table else where, values["stream"], "stream")
    _check_source(c, where, values)
    return common.node(c, "recorder", name, table, ["record", *to_args(opts, values)])


@contextlib.contextmanager
def _importable_from(directory: Path) -> Iterator[None]:
    """Modules next to the pipeline file import, as they will in its nodes."""
    folder = str(directory)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def _check_function(c: _Checker, where: tuple[str, ...], spec: Any) -> None:
    from zaudio.importer import BUILTINS, import_from_string
    from zaudio.pipeline.config import closest

    at = (*where, "function")
    if not isinstance(spec, str) or not spec:
        c.bad(at, f"invalid function {spec!r}", 'give a built-in ("level") or "module:attr"')
        return
    module, sep, attr = spec.rpartition(":")
    target = spec
    if sep and (module.endswith(".py") or "/" in module):
        target = f"{c.dir / module}:{attr}"
    if ":" not in spec and spec not in BUILTINS:
        guess = closest(spec, BUILTINS)
        c.bad(
            at,
            f"unknown processor {spec!r}",
            (f"did you mean '{guess}'? " if guess else "")
            + f"use a built-in ({', '.join(sorted(BUILTINS))}) or module:attr",
        )
        return
    try:
        with _importable_from(c.dir):
            import_from_string(target)
    except ConfigError as exc:
        c.bad(
            at,
            str(exc).rstrip("."),
            f"give a module that imports from {c.dir} (or a path/to/file.py:attr)",
        )
    except Exception as exc:
        c.bad(
            at,
            f"importing {spec!r} raised {type(exc).__name__}: {exc}",
            f"fix the module (python -c 'import {module.removesuffix('.py')}' shows the traceback)",
        )


def processor_node(c: _Checker, name: str, table: dict[str, Any], common: Common) -> Node:
    from zaudio.protocol import subscription

    where = ("processor", name)
    opts = options("process")
    values = c.values(where, table, opts, (*NODE_KEYS, "function", "replicas"), "process")
    _name(c, where, name, "processor")
    if "function" not in table:
        c.bad(
            where,
            f"processor '{name}' has no 'function'",
            'add function = "level" (a built-in) or "module:attr"',
        )
    else:
        _check_function(c, where, table["function"])
    if "output" in values:
        _name(c, (*where, "output"), values["output"], "output stream")
    for topic in values.get("topics", []):
        try:
            subscription(topic)
        except ProtocolError as exc:
            c.bad_error((*where, "topics"), exc, "fix the topic")
    function = str(table.get("function", ""))
    args = ["process", function, "--name", name, *to_args(opts, values)]
    node = common.node(c, "processor", name, table, args)
    replicas = _replicas(c, where, table, values)
    return replace(node, replicas=replicas) if replicas != 1 else node


def _replicas(c: _Checker, where: tuple[str, ...], table: dict[str, Any], values: Any) -> int:
    """``replicas``: 1 to MAX_ITEMS members of the processor's group (1 when absent)."""
    from zaudio.bounds import MAX_ITEMS

    if "replicas" not in table:
        return 1
    n = table["replicas"]
    at = (*where, "replicas")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ITEMS:
        c.bad(at, f"invalid replicas {n!r}", f"give a whole number from 1 to {MAX_ITEMS}")
        return 1
    if n > 1 and "group" not in values:
        c.bad(
            at,
            f"replicas = {n} without a group would process every block {n} times",
            'add group = "NAME": the replicas then share the work, each block once',
        )
        return 1
    return n


def _flag(args: tuple[str, ...], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def sequencer_node(node: Node) -> Node | None:
    """The sequencer of a group processor that declares an ``output``, else None.

    Its members publish their arrays on parts (zaudio.sequencer); ``NAME.sequence``
    runs ``zaudio sequence OUTPUT`` so that ``output`` is one stream, as declared.
    """
    if node.kind != "processor":
        return None
    group, output = _flag(node.args, "--group"), _flag(node.args, "--output")
    if group is None or output is None:
        return None
    proxy, keys = _flag(node.args, "--proxy"), _flag(node.args, "--keys")
    tail: tuple[str, ...] = ("--proxy", proxy) if proxy is not None else ()
    tail += ("--keys", keys) if keys is not None else ()
    return replace(
        node, name=f"{node.name}.sequence", kind="sequencer", args=("sequence", output, *tail),
        replicas=1,
    )  # fmt: skip
