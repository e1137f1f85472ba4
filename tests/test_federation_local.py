"""Federation on loopback, fast: the subscription rules, wildcards, keys, metrics, bad input.

The namespace tests (tests/test_federation.py) show the links for real; these
run a hub and site proxies in this process on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from tests.helpers import run, wait_until
from zaudio.client import request
from zaudio.errors import RequestRefused
from zaudio.interest import owner_check, tap, upstream
from zaudio.protocol import decode
from zaudio.proxy import Proxy
from zaudio.publisher import Publisher
from zaudio.security import Keys, keygen

HB = 0.2


def own_of(*streams: str) -> Any:
    return owner_check(lambda s: s in streams, lambda p: p == "vad")


def test_what_goes_upstream_exact_topics_never_our_own() -> None:
    own = own_of("a/mic")
    remote = [b"audio/hub\0", b"audio/b/x\0", b"audio/b/y\0", b"result/level\0"]
    site = {b"audio/hub\0", b"audio/a/mic\0", b"audio/b/\0", b"\xff\xffzaudio/ready",
            b"\xff\xfezaudio/echo/1", b"audio/later\0"}  # fmt: skip
    # exact: passes unless ours (a name nobody owns yet passes too: it may start elsewhere)
    assert upstream(site, set(), own, remote) == {b"audio/hub\0", b"audio/later\0"}
    # a wildcard becomes the exact topics known elsewhere that it matches, never ours
    assert upstream({b"audio/b/"}, set(), own, remote) == {b"audio/b/x\0", b"audio/b/y\0"}
    assert upstream({b"audio/"}, set(), own, [*remote, b"audio/a/mic\0"]) == set(remote[:3])
    assert upstream({b"result/"}, set(), own, [*remote, b"result/vad\0"]) == {b"result/level\0"}
    # the tap's own local subscriptions are not a subscriber's
    assert upstream({b"audio/x", b"audio"}, {b"audio/x", b"audio"}, own, remote) == set()


def test_what_the_tap_subscribes_for_the_hub() -> None:
    own = own_of("a/mic")
    remote = {b"audio/b/x\0"}
    hub = {b"audio/a/mic\0", b"audio/b/x\0", b"audio/lab/", b"audio/", b"\xff\xffzaudio/ready",
           b"audio/nobody-yet\0", b""}  # fmt: skip
    # the hub's prefix minus its last byte; a stream owned elsewhere is never ours to send
    assert tap(hub, own, remote) == {b"audio/a/mic", b"audio/lab", b"audio", b"audio/nobody-yet"}


@pytest.fixture
def hub() -> Iterator[Proxy]:
    with Proxy(port=0, name="hub", heartbeat=HB) as p:
        yield p


def site(hub: Proxy, name: str, **kw: Any) -> Proxy:
    p = Proxy(port=0, name=name, heartbeat=HB, upstream=hub.control, **kw).start()
    assert p.federation is not None
    wait_until(lambda: p.federation is not None and p.federation.up, 10, f"{name}'s link up")
    return p


def collect(
    sub: zmq.Socket[Any], want: set[str], per: int, timeout: float, pubs: list[Publisher]
) -> dict[str, list[int]]:
    """seq of every message received per stream, until each of ``want`` has ``per``.

    Each publisher sends a block every 10 ms meanwhile: the first ones may go out
    before the subscriptions from beyond the links reached it.
    """
    got: dict[str, list[int]] = {}
    block = np.zeros((160, 1), np.float32)
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while not all(len(got.get(s, [])) >= per for s in want):
        now = time.monotonic()
        assert now < deadline, f"timed out: { ({k: len(v) for k, v in got.items()}) }"
        if now >= next_send:
            for p in pubs:
                p.send(block)
            next_send = now + 0.01
        if sub.poll(5):
            header, _ = decode(sub.recv_multipart())
            got.setdefault(header.stream, []).append(header.seq)
    return got


def test_a_wildcard_at_a_site_hears_every_proxy_once_and_its_own_streams_locally(
    hub: Proxy,
) -> None:
    a, b = site(hub, "a"), site(hub, "b")
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        sub.connect(a.sub)
        sub.subscribe(b"audio/")
        pubs = [Publisher(n, rate=16000, channels=1, proxy=p.control).start()
                for n, p in (("hubmic", hub), ("a/own", a), ("b/x", b))]  # fmt: skip
        try:
            # A learns the others' streams from the hub's list, then asks for them
            wait_until(lambda: len(a.federation.data.up) == 2, 10, "A subscribed upstream")  # type: ignore[union-attr]
            wait_until(lambda: len(b.federation.data.taps) > 0, 10, "B's tap")  # type: ignore[union-attr]
            got = collect(sub, {"hubmic", "a/own", "b/x"}, 20, 15, pubs)
            listed = request(a.control, {"op": "list"})
            hub_list = request(hub.control, {"op": "list"})
        finally:
            for p in pubs:
                p.close()
        for stream, seqs in got.items():  # never twice, nothing missing once it flows
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (stream, seqs)
        fa = a.federation
        assert fa is not None
        assert fa.data.up == {b"audio/hubmic\0", b"audio/b/x\0"}  # exact, never a/own
        assert fa.data.counters["echoed"] == 0 and fa.data.counters["dropped"] == 0
        origins = {s["name"]: (s["origin"], s["via"]) for s in listed["streams"]}
        assert origins == {"a/own": ("a", ""), "hubmic": ("hub", "hub"), "b/x": ("b", "hub")}
        assert {s["name"]: s["origin"] for s in hub_list["streams"]} == {
            "hubmic": "hub", "a/own": "a", "b/x": "b"}  # fmt: skip
        assert all(s["via"] == "" for s in hub_list["streams"])
    finally:
        sub.close()
        b.stop()
        a.stop()
    # a site that stops takes its mirrors off the hub at once
    left = request(hub.control, {"op": "list"})
    assert [n["origin"] for n in left["nodes"]] == []


def test_metrics_and_ls_show_the_link(hub: Proxy) -> None:
    pytest.importorskip("prometheus_client")
    from zaudio.metrics import families

    a = site(hub, "a")
    try:
        fams = {f.name: f for f in families(a)}
        assert fams["zaudio_upstream_up"].samples == [({}, 1.0)]
        assert fams["zaudio_upstream_losses"].samples == [({}, 0.0)]
        assert "zaudio_upstream_messages" in fams and "zaudio_upstream_bytes" in fams
        ls = run("ls", "--proxy", a.control)
        assert ls.returncode == 0, ls.stderr
        assert f"upstream {hub.control} (hub 'hub'): up; 0 losses, 0 reconnects" in ls.stdout
    finally:
        a.stop()
    assert "zaudio_upstream_up" not in {f.name for f in families(hub)}


def test_a_site_reaches_a_hub_with_keys(tmp_path: Path) -> None:
    keygen(tmp_path)
    with Proxy(port=0, name="hub", heartbeat=HB, keys=Keys.for_server(tmp_path)) as hub:
        a = site(hub, "a", upstream_keys=Keys.for_client(tmp_path))
        try:
            assert a.federation is not None and a.federation.error is None
        finally:
            a.stop()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--upstream", "tcp://h"], "invalid --upstream 'tcp://h': no port"),
        (["--upstream", "tcp://h:0"], "invalid --upstream 'tcp://h:0': the port must be 1-65535"),
        (["--upstream", "udp://h:5555"], "invalid --upstream 'udp://h:5555'"),
        (["--name", " "], "--name"),
    ],
)
def test_bad_upstream_is_one_line_exit_2(args: list[str], says: str) -> None:
    res = run("proxy", "--port", "0", *args)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], res.stderr


def test_one_name_taken_at_two_sites_at_once_is_kept_by_one(hub: Proxy) -> None:
    a, b = site(hub, "a"), site(hub, "b")
    try:
        reg = {"op": "register", "role": "recorder", "name": "r", "host": "h", "pid": 1,
               "streams": [{"name": "dup", "rate": 8000, "channels": 1}]}  # fmt: skip
        ids = {p.name: request(p.control, reg)["id"] for p in (a, b)}  # both accepted locally
        # the hub takes the first mirror and refuses the second: that site evicts its node
        wait_until(lambda: sum(p.federation.conflicts for p in (a, b)) == 1, 10, "a conflict")  # type: ignore[union-attr]
        loser, winner = (a, b) if a.federation.conflicts else (b, a)  # type: ignore[union-attr]
        wait_until(lambda: ids[loser.name] not in loser.registry.nodes, 5, "the eviction")
        beat = request(winner.control, {"op": "heartbeat", "id": ids[winner.name]})
        assert beat["ok"], beat
        with pytest.raises(RequestRefused) as forgot:
            request(loser.control, {"op": "heartbeat", "id": ids[loser.name]})
        assert forgot.value.code == "unknown_id"
        wait_until(lambda: loser.registry.remote.get("dup"), 5, "the winner's name learned")
        with pytest.raises(RequestRefused) as taken:
            request(loser.control, reg)
        assert taken.value.code == "stream_taken"
        assert f"at proxy {winner.name!r}" in str(taken.value), taken.value
        hub_list = request(hub.control, {"op": "list"})
        assert [s["origin"] for s in hub_list["streams"]] == [winner.name]
    finally:
        b.stop()
        a.stop()


def test_a_hub_of_hubs_carries_a_leaf_stream_to_the_top(hub: Proxy) -> None:
    mid = site(hub, "mid")
    leaf = site(mid, "leaf")
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        sub.connect(hub.sub)
        sub.subscribe(b"audio/deep\0")
        with Publisher("deep", rate=16000, channels=1, proxy=leaf.control) as pub:
            wait_until(lambda: leaf.federation.data.taps, 10, "the top's wish at the leaf")  # type: ignore[union-attr]
            # the middle passes up only streams registered there: the leaf's mirror
            wait_until(lambda: mid.registry.owns("deep"), 10, "the leaf's mirror at mid")
            got = collect(sub, {"deep"}, 20, 15, [pub])
            top = wait_until(
                lambda: (r := request(hub.control, {"op": "list"}))["streams"] and r, 5, "top list"
            )
            at_leaf = request(leaf.control, {"op": "list"})
        seqs = got["deep"]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        assert [(s["name"], s["origin"]) for s in top["streams"]] == [("deep", "leaf")]
        assert [s["origin"] for s in at_leaf["streams"]] == ["leaf"]  # its own, not learned
    finally:
        sub.close()
        leaf.stop()
        mid.stop()
