"""Hostile input never crashes or hangs a node: it is rejected, counted, and service goes on.

Thousands of generated cases (hypothesis, bounded by ``max_examples``) against a
real proxy: its control channel, its data path (XSUB -> XPUB) with
:func:`zaudio.protocol.decode` on the receiving end, oversize messages, and a
running ``zaudio process``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import listing, spawn, wait_node, wait_until
from zaudio.bus import Inlet, Outlet, Publisher, confirm_subscriptions
from zaudio.client import request
from zaudio.errors import RemoteProtocolError
from zaudio.protocol import AudioStream, decode, encode_json
from zaudio.proxy import Proxy

OPS = ["hello", "register", "heartbeat", "disconnect", "list", "time"]
FIELDS = ["op", "id", "role", "name", "host", "pid", "streams", "topics", "outputs", "stats"]
HEADER_FIELDS = ["v", "kind", "stream", "processor", "src", "seq", "index", "t", "rate",
                 "channels", "frames", "dtype", "data"]  # fmt: skip

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
absurd = st.one_of(
    json_value,
    st.sampled_from([0, -1, 2**63 - 1, 2**64, -(2**63), 1e308, -1e308, "", "x" * 5000, [], {}]),
    st.sampled_from(["../../etc", "a\x00b", "é", "result/x", "audio/", " ", "*"]),
)
control_dicts = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(OPS), absurd)},
    optional={f: absurd for f in FIELDS[1:]},
)
streams_field = st.lists(
    st.fixed_dictionaries(
        {},
        optional={"name": absurd | st.just("mic"), "rate": absurd, "channels": absurd},
    ),
    max_size=3,
)
control_requests = st.one_of(
    st.binary(max_size=300).map(lambda b: [b]),
    st.lists(st.binary(max_size=50), min_size=2, max_size=4),
    json_value.map(lambda v: [json.dumps(v).encode()]),
    control_dicts.map(lambda d: [json.dumps(d).encode()]),
    st.builds(
        lambda op, streams, extra: [json.dumps({"op": op, "streams": streams, **extra}).encode()],
        st.sampled_from(["register", "heartbeat"]),
        streams_field,
        st.fixed_dictionaries({}, optional={f: absurd for f in FIELDS[1:6]}),
    ),
)


def _control_socket(proxy: Proxy) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    sock.connect(proxy.control)
    return sock


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """The conftest proxy, with the per-connection request limit out of the way.

    The fuzzing sends thousands of requests a second from one connection (as fast
    as the machine runs); the limit's own tests are in test_control.py and
    test_flood.py. Here every request must get its real answer.
    """
    with Proxy(port=0, heartbeat=0.2, request_rate=1e9, request_burst=1e9) as p:
        yield p


@pytest.fixture
def ctl(proxy: Proxy) -> Iterator[zmq.Socket[Any]]:
    """One REQ socket on the proxy's control channel, for every generated case."""
    sock = _control_socket(proxy)
    yield sock
    sock.close(0)


def _ask(sock: zmq.Socket[Any], frames: list[bytes], timeout_ms: int = 2000) -> dict[str, Any]:
    sock.send_multipart(frames)
    assert sock.poll(timeout_ms), f"no reply to {frames!r:.200}"
    reply = json.loads(sock.recv())
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    return reply


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=control_requests)
def test_control_channel_answers_garbage_and_keeps_serving(
    ctl: zmq.Socket[Any], frames: list[bytes]
) -> None:
    reply = _ask(ctl, frames)
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
        assert reply.get("code") != "internal", reply
    else:
        req = json.loads(frames[0])
        assert len(frames) == 1 and isinstance(req, dict) and req.get("op") in OPS
    assert _ask(ctl, [b'{"op": "time"}'])["ok"]


def test_control_channel_after_the_fuzzing_lists_cleanly(proxy: Proxy) -> None:
    sock = _control_socket(proxy)
    try:
        for frames in ([b"\xff" * 10], [b"[]"], [b'{"op": 1}'], [b"{}"], [b'{"op":"nope"}']):
            reply = _ask(sock, frames)
            assert reply["ok"] is False and reply["error"]
        assert _ask(sock, [b'{"op": "list"}'])["ok"]
    finally:
        sock.close(0)
    assert proxy.bad_requests >= 5


def test_oversize_control_request_is_dropped_and_proxy_keeps_answering(proxy: Proxy) -> None:
    sock = _control_socket(proxy)
    try:
        sock.send(b'{"op": "time", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
        assert not sock.poll(500)  # MAXMSGSIZE: the connection is dropped, no reply
    finally:
        sock.close(0)
    # a large request under the limit gets an answer that names the problem
    big = {"op": "register", "role": "recorder", "name": "big", "host": "h", "pid": 1,
           "streams": [{"name": "x" * 300_000, "rate": 8000, "channels": 1}]}  # fmt: skip
    sock = _control_socket(proxy)
    try:
        reply = _ask(sock, [json.dumps(big).encode()])
        assert reply["ok"] is False and reply["error"]
    finally:
        sock.close(0)
    assert request(proxy.control, {"op": "time"})["ok"]


# -- data path ------------------------------------------------------------------


def _valid_header() -> dict[str, Any]:
    return {"v": 1, "kind": "audio", "stream": "mic", "src": "abc", "seq": 0, "index": 0,
            "t": 1.0, "rate": 8000, "channels": 1, "frames": 4, "dtype": "float32"}  # fmt: skip


topics = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"audio/mic\0", b"result/x\0", b"audio/\0", b"audio/mic", b"audio/\xff\0"]),
)
headers = st.one_of(
    st.binary(max_size=200),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(HEADER_FIELDS), absurd, max_size=6).map(
        lambda d: json.dumps({**_valid_header(), **d}).encode()
    ),
    st.builds(
        lambda k, v: (
            json.dumps({**{f: x for f, x in _valid_header().items() if f != k}}).encode()
            if v is None
            else json.dumps({**_valid_header(), k: v}).encode()
        ),
        st.sampled_from(HEADER_FIELDS),
        st.none() | absurd,
    ),
)
payloads = st.one_of(st.binary(max_size=64), st.integers(0, 40).map(lambda n: b"\0" * n))
messages = st.one_of(
    st.lists(st.binary(max_size=80), min_size=1, max_size=5),
    st.tuples(topics, headers, payloads).map(list),
    st.tuples(topics, headers, payloads, st.lists(st.binary(max_size=8), max_size=2)).map(
        lambda t: [t[0], t[1], t[2], *t[3]]
    ),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=messages)
def test_decode_raises_only_remote_protocol_error(frames: list[bytes]) -> None:
    try:
        header, block = decode(frames)
    except RemoteProtocolError as exc:
        assert exc.reason
        return
    if block is not None:
        assert block.shape == (header.frames, header.channels)  # type: ignore[union-attr]
        assert not block.flags.writeable


@pytest.fixture
def wire(proxy: Proxy) -> Iterator[tuple[Outlet, Inlet]]:
    """A raw outlet into the proxy's XSUB and an inlet subscribed to everything."""
    inlet = Inlet()
    inlet.connect(proxy.sub)
    inlet.subscribe(b"")
    outlet = Outlet()
    outlet.connect(proxy.pub)
    assert outlet.wait_for(b"", 5) and outlet.wait_ready(5)
    try:
        yield outlet, inlet
    finally:
        outlet.close(0)
        inlet.close()


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=messages)
def test_garbage_through_the_proxy_never_crashes_decode(
    wire: tuple[Outlet, Inlet], frames: list[bytes]
) -> None:
    outlet, inlet = wire
    assert outlet.send(frames)
    got = inlet.recv(2)
    assert got is not None, "the proxy stopped forwarding"
    assert [bytes(f) for f in got] == frames
    try:
        decode(got)
    except RemoteProtocolError:
        pass


def _monitor_disconnect(sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
    mon: zmq.Socket[Any] = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    return mon


def test_oversize_message_disconnects_only_the_rogue_publisher() -> None:
    limit = 256 * 1024
    with Proxy(port=0, heartbeat=0.2, max_message=limit) as proxy:
        inlet = Inlet()
        inlet.connect(proxy.sub)
        inlet.subscribe(b"audio/")
        rogue = Outlet()
        rogue.connect(proxy.pub)
        mon = _monitor_disconnect(rogue.sock)
        try:
            assert confirm_subscriptions(inlet, rogue, 5) and rogue.wait_ready(5)
            evil = AudioStream("evil", 8000, 1)
            with Publisher("good", rate=8000, proxy=proxy.control) as good:
                n = 60
                for i in range(n):
                    assert good.send(np.full(80, i, np.float32))
                    if i == 20:
                        assert rogue.send(evil.encode(np.zeros(limit // 4 + 1, np.float32), 0.0))
                    if i == 10:
                        assert rogue.send(evil.encode(np.ones(80, np.float32), 0.0))
                    time.sleep(0.002)
                assert mon.poll(5000), "the rogue publisher was not disconnected"
                got: list[Any] = []
                deadline = time.monotonic() + 5
                while sum(h.stream == "good" for h, _ in got) < n and time.monotonic() < deadline:
                    frames = inlet.recv(1)
                    if frames is not None:
                        h, b = decode(frames)
                        got.append((h, b.copy() if b is not None else None))
        finally:
            mon.close(0)
            rogue.close(0)
            inlet.close()
    good_blocks = [(h, b) for h, b in got if h.stream == "good"]
    assert [h.seq for h, _ in good_blocks] == list(range(n))
    assert [float(b[0, 0]) for _, b in good_blocks] == [float(i) for i in range(n)]
    evil_blocks = [h for h, _ in got if h.stream == "evil"]
    assert [h.frames for h in evil_blocks] == [80]  # the small one, never the oversize one


# -- a running processor -----------------------------------------------------------


def _garbage(topic: bytes, n: int, seed: int = 7) -> list[list[bytes]]:
    """``n`` malformed messages on ``topic``: every one must be counted as malformed."""
    rng = random.Random(seed)
    ok = _valid_header()
    bad_headers = [
        {**ok, "frames": 10**12},
        {**ok, "frames": 0},
        {**ok, "channels": -1},
        {**ok, "seq": -5},
        {**ok, "rate": "fast"},
        {**ok, "t": "now"},
        {**ok, "dtype": "float64"},
        {**ok, "v": 2},
        {**ok, "stream": "other"},
        {**ok, "kind": "result"},
        {k: v for k, v in ok.items() if k != "src"},
    ]
    out: list[list[bytes]] = []
    for i in range(n):
        choice = i % 5
        if choice == 0:
            out.append([topic, rng.randbytes(rng.randrange(0, 100)), rng.randbytes(16)])
        elif choice == 1:
            out.append([topic, encode_json(bad_headers[i % len(bad_headers)]), b"\0" * 16])
        elif choice == 2:
            out.append([topic, encode_json(ok), b"\0" * rng.choice([0, 3, 15, 17, 1000])])
        elif choice == 3:
            out.append([topic, b"x" * (64 * 1024 + 1), b"\0" * 16])
        else:
            out.append([topic] + [rng.randbytes(4) for _ in range(rng.choice([0, 1, 3]))])
    return out


def _stats(control: str, name: str) -> dict[str, Any]:
    for node in listing(control)["nodes"]:
        if node["name"] == name:
            return node.get("stats") or {}  # type: ignore[no-any-return]
    return {}


def test_running_processor_counts_garbage_and_keeps_processing(proxy: Proxy) -> None:
    control = proxy.control
    with spawn("process", "tests.procs_chaos:quiet", "--name", "victim", "--topic", "mic",
               "--proxy", control) as proc:  # fmt: skip
        wait_node(control, "victim", role="processor")
        garbage = _garbage(b"audio/mic\0", 400)
        rogue = Outlet()
        rogue.connect(proxy.pub)
        try:
            assert rogue.wait_ready(5)
            with Publisher("mic", rate=8000, proxy=control) as mic:
                sent = 0
                for i, g in enumerate(garbage):
                    assert rogue.send(g)
                    if i % 4 == 0:
                        assert mic.send(np.zeros(80, np.float32))
                        sent += 1
                for _ in range(50):  # and after all that, audio still flows
                    assert mic.send(np.zeros(80, np.float32))
                    sent += 1

                def settled() -> dict[str, Any] | None:
                    s = _stats(control, "victim")
                    return s if s.get("processed") == sent and s.get("malformed") else None

                s = wait_until(settled, 15, "the processor to process every block")
        finally:
            rogue.close(0)
        assert proc.poll() is None, "the processor died"
        assert s["malformed"] == len(garbage)
        assert s["errors"] >= len(garbage)
        assert s["received"] == sent and s["gaps"] == 0 and s["dropped"] == 0
        assert request(control, {"op": "time"})["ok"]
