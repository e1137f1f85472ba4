"""The pipeline files shipped with zaudio: ``zaudio up --example NAME``.

They live in the repository's ``examples/`` folder, installed as the data
package ``zaudio.examples`` (``NAME.toml`` beside the modules they use).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from zaudio.errors import ConfigError

__all__ = ["example", "examples"]


def _folder() -> Path:
    try:
        return Path(str(importlib.resources.files("zaudio.examples")))
    except ModuleNotFoundError:
        # an editable install made before examples/ was mapped: the checkout's folder
        import zaudio

        return Path(zaudio.__file__).resolve().parent.parent / "examples"


def examples() -> dict[str, Path]:
    """Shipped example name -> its pipeline file."""
    return {p.stem: p for p in sorted(_folder().glob("*.toml"))}


def example(name: str) -> Path:
    """The file of the shipped example ``name``; ConfigError naming the known ones."""
    found = examples()
    if name not in found:
        raise ConfigError(
            f"no example {name!r}: use one of {', '.join(found) or '(none installed)'}"
        )
    return found[name]
