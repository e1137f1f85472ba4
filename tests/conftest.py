from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import proxy_process
from zaudio.proxy import Proxy


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
