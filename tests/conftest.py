from __future__ import annotations

from collections.abc import Iterator

import pytest

import zaudio.bus
import zaudio.delivery
from tests.helpers import proxy_process
from zaudio.proxy import Proxy
from zaudio.wire import WIRE


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """An in-process proxy on free loopback ports, heartbeat 0.2 s."""
    with Proxy(port=0, heartbeat=0.2) as p:
        yield p


@pytest.fixture
def proxy_proc() -> Iterator[str]:
    """A ``zaudio proxy`` process on free loopback ports; yields its control endpoint."""
    with proxy_process() as (control, _proc):
        yield control


@pytest.fixture(params=["c", "python"])
def wire(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on the compiled wire (zaudio/_wire.c) and on its Python twin.

    The C one must be there: CI builds it (a missing compiler would skip it silently
    in the build, and then this fails rather than test one path twice).
    """
    if request.param == "python":
        monkeypatch.setattr(zaudio.delivery, "WIRE", None)
        monkeypatch.setattr(zaudio.bus, "WIRE", None)
    else:
        assert WIRE is not None, "zaudio._wire is not built: pip install -e . with a C compiler"
    return str(request.param)
