"""Loading a processor from ``module:attr``, ``path/to/file.py:attr`` or a built-in name.

Built-ins go through the same path as user code: :data:`BUILTINS` maps a name to
an import string. :func:`load_processor` turns what was imported (a function, a
class, or a callable object) into a :class:`Loaded` processor: the per-block
callable, whether it takes ``info``, and the optional ``setup``/``close`` hooks.

Importing is :func:`zaudio.loader.import_from_string` (the one loader, shared with
sources and the CLI). Errors a user can fix (no such module, attribute or built-in,
a bad ``-p``, a constructor argument missing) raise
:class:`~zaudio.errors.ImportFromStringError` / :class:`~zaudio.errors.ConfigError`
with one line naming it. An ``ImportError`` raised *inside* the user's module
(a missing dependency of theirs) propagates as it is, with its traceback.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from zaudio import loader
from zaudio.errors import ConfigError

__all__ = ["BUILTINS", "Loaded", "import_from_string", "load_processor", "parse_params"]

#: Built-in processors: name -> import string.
BUILTINS: dict[str, str] = {
    "level": "zaudio.processors.level:Level",
    "vad": "zaudio.processors.vad:VAD",
    "silero-vad": "zaudio.processors.silero:SileroVAD",
    "logmel": "zaudio.processors.logmel:LogMel",
    "spectrum": "zaudio.processors.spectrum:Spectrum",
    "writer": "zaudio.processors.writer:Writer",
    "print": "zaudio.processors.printer:Print",
}


def import_from_string(spec: str) -> Any:
    """Import ``module:attr``, ``path/to/file.py:attr`` or a built-in name.

    Parameters
    ----------
    spec : str
        ``"mymod:fn"``, ``"pkg.mod:Class"``, ``"proc.py:fn"`` or a key of
        :data:`BUILTINS` (``"level"``). ``attr`` may be dotted (``"mod:obj.method"``).

    Raises
    ------
    ImportFromStringError
        The string is malformed, or the module or attribute does not exist.
    """
    if ":" not in spec and spec in BUILTINS:
        spec = BUILTINS[spec]
    return loader.import_from_string(spec, ", or a built-in: " + ", ".join(sorted(BUILTINS)))


def default_name(spec: str) -> str:
    """The processor name implied by ``spec``: the built-in name or the last attribute."""
    if ":" not in spec:
        return spec
    return spec.rpartition(":")[2].rpartition(".")[2]


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["n=3", "label=hi"]`` -> ``{"n": 3, "label": "hi"}`` (JSON where it parses)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"invalid parameter {item!r}: use -p KEY=VALUE (KEY a Python name)")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@dataclass
class Loaded:
    """A processor ready to run.

    Attributes
    ----------
    call : callable
        Called per block: ``call(block, info)`` if ``takes_info`` else ``call(block)``.
    takes_info : bool
        Decided once from the signature.
    setup, close : callable or None
        The optional hooks of a class-based processor.
    obj : object
        The function, or the processor instance.
    """

    call: Callable[..., Any]
    takes_info: bool
    setup: Callable[[Any], Any] | None
    close: Callable[[], Any] | None
    obj: Any


def _takes_info(fn: Callable[..., Any], what: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # a builtin we cannot inspect: assume (block, info)
    positional = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    if positional == 0:
        raise ConfigError(f"{what} takes no argument: it must accept (block) or (block, info)")
    return positional >= 2


def _check_params(
    fn: Callable[..., Any], params: dict[str, Any], what: str, *, complete: bool = False
) -> None:
    """Check ``params`` fit ``fn``'s keywords; ``complete``: every required one is given."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind_partial(**params)
    except TypeError as exc:
        raise ConfigError(f"{what} does not accept the -p parameters given: {exc}") from None
    if not complete:
        return
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in params
    ]
    if missing:
        given = " ".join(f"-p {name}=VALUE" for name in missing)
        raise ConfigError(f"{what} needs {', '.join(map(repr, missing))}: pass {given}")


def load_processor(target: Any, params: dict[str, Any] | None = None) -> Loaded:
    """Make a :class:`Loaded` processor from an import string, function, class or object.

    A class is instantiated once with ``params`` as keyword arguments; its
    ``process`` method (or ``__call__``) runs per block. A function gets
    ``params`` bound as keyword arguments.

    Raises
    ------
    ImportFromStringError, ConfigError
        Nothing to load, or it cannot be called per block.
    """
    params = dict(params or {})
    what = repr(target)
    if isinstance(target, str):
        what = f'"{target}"'
        target = import_from_string(target)
    if inspect.isclass(target):
        _check_params(target, params, f"processor class {what}", complete=True)
        obj = target(**params)
        params = {}
    else:
        obj = target
    method = getattr(obj, "process", None)
    if not callable(method):
        if not callable(obj):
            raise ConfigError(f"{what} is not callable: give a function or a class")
        method = obj if inspect.isroutine(obj) else obj.__call__
    if params:
        _check_params(method, params, f"processor {what}")
        method = functools.partial(method, **params)
    takes_info = _takes_info(method, f"processor {what}")
    setup = getattr(obj, "setup", None) if not inspect.isroutine(obj) else None
    close = getattr(obj, "close", None) if not inspect.isroutine(obj) else None
    return Loaded(
        call=method,
        takes_info=takes_info,
        setup=setup if callable(setup) else None,
        close=close if callable(close) else None,
        obj=obj,
    )
