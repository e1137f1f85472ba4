"""The keys a pipeline node accepts, read from the ``zaudio`` command it runs.

A ``[recorder.NAME]`` table holds the options of ``zaudio record``, a
``[processor.NAME]`` table those of ``zaudio process``, ``[proxy]`` those of
``zaudio proxy``: the key is the option's long name with ``_`` for ``-``
(``on_overrun`` for ``--on-overrun``), repeatable options take a list
(``topics`` for ``--topic``), ``params`` a table (``-p KEY=VALUE``). The keys
come from the click commands themselves, so an option a newer CLI adds is a
valid key at once, and one the CLI lacks is refused.

:data:`NOT_YET` only words the refusal better for options other issues are
adding: while the CLI lacks one, its key is "not supported yet".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click

from zaudio.cli.main import COMMANDS
from zaudio.errors import ConfigError
from zaudio.loader import import_from_string
from zaudio.units import parse_duration

__all__ = ["DURATIONS", "NOT_YET", "Option", "options", "to_args"]

#: keys whose value is a duration (``"250ms"`` or plain seconds)
DURATIONS = frozenset({"duration", "buffer", "since", "history", "heartbeat_timeout"})
#: keys whose value is a duration or a frame count (``"10ms"`` or ``480``)
BLOCKS = frozenset({"block", "window", "hop"})
#: keys set by the pipeline itself, never per node: key -> what to do instead
OWNED = {
    "proxy": "every node uses the pipeline's proxy: set [proxy] (or its endpoint)",
    "keys": "every node uses the pipeline's keys: set keys in [proxy]",
    "name": "the table's name is the node's name: rename the table",
}

#: options announced by open issues: key -> the option the CLI would need
NOT_YET: dict[str, dict[str, str]] = {
    "process": {
        "rate": "--rate",
        "channels": "--channels",
        "pick": "--pick",
        "dtype": "--dtype",
        "group": "--group",
        "since": "--since",
    },
    "proxy": {
        "history": "--history",
        "history_bytes": "--history-bytes",
        "metrics": "--metrics",
        "upstream": "--upstream",
    },
}


@dataclass(frozen=True)
class Option:
    """One pipeline key and the command-line option it becomes."""

    key: str
    flag: str  # "--source"
    param: click.Option

    def check(self, value: Any) -> Any:
        """``value`` as the option takes it; ConfigError saying what is wrong."""
        p = self.param
        if self.key == "params":
            if not isinstance(value, dict):
                raise ConfigError(f"'{self.key}' must be a table, e.g. params = {{ n = 3 }}")
            return value
        if p.multiple:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise ConfigError(f"'{self.key}' must be a list of strings, e.g. [\"mic\"]")
            return items
        if p.is_flag:
            if not isinstance(value, bool):
                raise ConfigError(f"'{self.key}' must be true or false, not {value!r}")
            return value
        if self.key in DURATIONS or self.key in BLOCKS:
            return _duration(self.key, value)
        return _typed(self.key, p, value)

    def args(self, value: Any) -> list[str]:
        """The command-line words for a checked ``value``."""
        if self.key == "params":
            return [w for k, v in value.items() for w in ("-p", f"{k}={json.dumps(v)}")]
        if self.param.multiple:
            return [w for v in value for w in (self.flag, v)]
        if self.param.is_flag:
            return [self.flag] if value else []
        return [self.flag, str(value)]


def _duration(key: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"'{key}' must be a duration such as \"250ms\", not {value!r}")
    if key in BLOCKS and isinstance(value, int):
        if value < 1:
            raise ConfigError(f"invalid {key} {value}: use a frame count of 1 or more")
        return value
    parse_duration(value, key)
    return value


def _typed(key: str, p: click.Option, value: Any) -> Any:
    t = p.type
    if isinstance(t, click.Choice):
        if value not in t.choices:
            raise ConfigError(
                f"invalid {key} {value!r}: use one of {', '.join(map(str, t.choices))}"
            )
        return value
    if isinstance(t, click.types.IntParamType):
        ok = isinstance(value, int) and not isinstance(value, bool)
        what = "an integer"
    elif isinstance(t, click.types.FloatParamType):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        what = "a number"
    else:
        ok = isinstance(value, str)
        what = "a string"
    if not ok:
        raise ConfigError(f"'{key}' must be {what}, not {value!r}")
    try:
        return t.convert(value, p, None)
    except click.BadParameter as exc:
        raise ConfigError(f"invalid {key} {value!r} ({exc.message.rstrip('.')})") from None


def _command(name: str) -> click.Command:
    command: click.Command = import_from_string(COMMANDS[name][0])
    return command


def options(command: str, *, include_owned: bool = False) -> dict[str, Option]:
    """The pipeline keys of ``zaudio COMMAND`` (``proxy``, ``record``, ``process``)."""
    out: dict[str, Option] = {}
    for p in _command(command).params:
        if not isinstance(p, click.Option) or not p.name:
            continue
        key = p.name.rstrip("_")
        if key in OWNED and not include_owned:
            continue
        flag = max(p.opts, key=len)
        out[key] = Option(key, flag, p)
    return out


def to_args(opts: dict[str, Option], values: dict[str, Any]) -> list[str]:
    """Command-line words for checked ``values`` (keys of ``opts`` only, in file order)."""
    words: list[str] = []
    for key, value in values.items():
        if key in opts:
            words += opts[key].args(value)
    return words
