"""The one publishing stack: a Publisher holds a proxy outage, bounded and counted."""

from __future__ import annotations

import numpy as np

from tests.helpers import Listener, free_ports, spawn, wait_node, wait_until
from zaudio.publisher import Publisher

RATE = 1000


def test_an_outage_is_held_up_to_the_buffer_and_the_rest_is_counted() -> None:
    """No proxy yet: blocks are held (at most 50 ms of audio), the oldest dropped, counted;
    when the proxy comes, what was held goes out in order, stamped on the sample clock."""
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    pub = Publisher("held", rate=RATE, proxy=control, buffer=0.05, wait=0.0).start()
    try:
        for k in range(10):
            assert not pub.send(np.full(10, k, np.float32))  # held, not sent
        s = pub.stats()
        assert (s["sent"], s["queued"], s["dropped"], s["dropped_frames"]) == (0, 5, 5, 50)
        with spawn("proxy", "--port", str(port)):
            wait_node(control, "held")
            with Listener(control, "held") as listener:
                wait_until(pub.flush, 10, "the held blocks to go out")
                got = listener.collect(5)
        headers = [h for h, _ in got]
        # the five newest, with the seq and index they were given when sent
        assert [h.seq for h in headers] == [5, 6, 7, 8, 9]
        assert [h.index for h in headers] == [50, 60, 70, 80, 90]
        assert [float(b[0, 0]) for _, b in got] == [5.0, 6.0, 7.0, 8.0, 9.0]
        t0 = headers[0].t - 50 / RATE
        assert all(abs(h.t - (t0 + h.index / RATE)) < 1e-9 for h in headers)
        assert pub.counters["sent"] == 5
    finally:
        pub.close(0)


def test_close_counts_what_it_could_not_send() -> None:
    pub = Publisher("gone", rate=RATE, proxy=f"tcp://127.0.0.1:{free_ports(1)}", wait=0.0)
    pub.start()
    for _ in range(3):
        pub.send(np.zeros(10, np.float32))
    pub.close(0)
    assert pub.counters["dropped"] == 3 and pub.counters["dropped_frames"] == 30
