"""The one loader of ``module:attr`` import strings: processors, sources and CLI commands.

``import_from_string("pkg.mod:attr")`` imports ``pkg.mod`` and walks the (dotted)
attribute; ``"path/to/file.py:attr"`` imports a file as a module. Only the standard
library's importlib is needed, so the CLI's lazy commands can use it without
slowing ``zaudio --help``.

Errors a user can fix (malformed string, no such module or attribute) raise
:class:`~zaudio.errors.ImportFromStringError` with one line naming it. An
``ImportError`` raised *inside* the imported module (a missing dependency of its
own) propagates as it is, with its traceback.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from zaudio.errors import ImportFromStringError

__all__ = ["import_from_string", "import_module", "split"]


def split(spec: str, hint: str = "") -> tuple[str, str]:
    """``"mod:attr"`` -> ``("mod", "attr")``; one line naming the mistake otherwise."""
    module, sep, attrs = spec.rpartition(":")
    if not sep or not module or not attrs:
        raise ImportFromStringError(
            f'Import string "{spec}" must be in format "<module>:<attribute>" '
            f'(or "path/to/file.py:<attribute>"{hint}).'
        )
    return module, attrs


def import_module(name: str) -> ModuleType:
    """Import the module ``name`` as it is (an ``ImportError`` propagates unchanged).

    For callers that interpret a missing module themselves (optional packages:
    :func:`zaudio.extras.require`).
    """
    return importlib.import_module(name)


def _import_file(path_str: str) -> Any:
    import importlib.util
    from pathlib import Path

    path = Path(path_str)
    if not path.is_file():
        raise ImportFromStringError(f'Could not import module "{path_str}": no such file.')
    name = "_zaudio_user_" + path.stem.replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportFromStringError(f'Could not import module "{path_str}".')
    module = importlib.util.module_from_spec(spec)
    # Siblings of the file import as they would when running it as a script.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(module_str: str) -> Any:
    if module_str.endswith(".py") or "/" in module_str or "\\" in module_str:
        return _import_file(module_str)
    try:
        return importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        # Only "this module (or a parent package of it) does not exist" is ours to
        # report; a missing import inside the module is its own, shown as is.
        missing = exc.name or ""
        if missing != module_str and not module_str.startswith(missing + "."):
            raise
        raise ImportFromStringError(f'Could not import module "{module_str}".') from None


def import_from_string(spec: str, hint: str = "") -> Any:
    """Import ``module:attr`` or ``path/to/file.py:attr`` (``attr`` may be dotted).

    ``hint`` is appended to the message for a malformed string (what else the
    caller accepts, e.g. its built-in names).

    Raises
    ------
    ImportFromStringError
        The string is malformed, or the module or attribute does not exist.
    """
    module_str, attrs = split(spec, hint)
    instance = _import_module(module_str)
    try:
        for attr in attrs.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise ImportFromStringError(
            f'Attribute "{attrs}" not found in module "{module_str}".'
        ) from None
    return instance
