"""The control messages (zaudio.control): exact bytes, every bound, unknown fields dropped.

The bounds are held at the real proxy too: a request over one is refused with a
sentence, and the registry keeps nothing a peer sent beyond the known fields.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import zmq

from tests.helpers import wait_until
from tests.test_proxy import op
from zaudio import control
from zaudio.client import NodeClient
from zaudio.control import (
    Disconnect,
    ErrorReply,
    Heartbeat,
    Hello,
    HelloReply,
    List,
    RateLimited,
    Register,
    StreamInfo,
    Time,
    decode_reply,
    decode_request,
    encode,
)
from zaudio.errors import RemoteProtocolError, RequestError
from zaudio.proxy import Proxy

REC: dict[str, Any] = {"op": "register", "role": "recorder", "name": "r", "host": "h", "pid": 1}


def frame(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def refused(**fields: Any) -> str:
    with pytest.raises(RequestError) as info:
        decode_request(frame(**fields))
    assert info.value.code == "bad_request"
    return str(info.value)


# -- exact bytes: the wire format of docs/protocol.md --------------------------

EXACT = [
    (Hello(), b'{"op":"hello"}'),
    (Time(), b'{"op":"time"}'),
    (List(), b'{"op":"list"}'),
    (Disconnect(id="ab"), b'{"op":"disconnect","id":"ab"}'),
    (Heartbeat(id="ab"), b'{"op":"heartbeat","id":"ab"}'),
    (
        Heartbeat(id="ab", stats={"sent": 3, "lag": 0.5}),
        b'{"op":"heartbeat","id":"ab","stats":{"sent":3,"lag":0.5}}',
    ),
    (
        Heartbeat(id="ab", streams=[StreamInfo("out", 8000, 1)]),
        b'{"op":"heartbeat","id":"ab","streams":[{"name":"out","rate":8000,"channels":1}]}',
    ),
    (
        Register(role="recorder", name="r", host="h", pid=1, streams=[StreamInfo("mic", 48000, 2)]),
        b'{"op":"register","role":"recorder","name":"r","host":"h","pid":1,'
        b'"streams":[{"name":"mic","rate":48000,"channels":2}]}',
    ),
    (
        Register(
            role="processor", name="p", host="h", pid=2, topics=["audio/mic\x00"], outputs=["o"]
        ),
        b'{"op":"register","role":"processor","name":"p","host":"h","pid":2,'
        b'"topics":["audio/mic\\u0000"],"outputs":["o"]}',
    ),
    (ErrorReply(error="no"), b'{"ok":false,"error":"no","code":"bad_request"}'),
    (
        RateLimited(error="slow down", retry_after=0.25),
        b'{"ok":false,"error":"slow down","code":"rate_limited","retry_after":0.25}',
    ),
]


@pytest.mark.parametrize(("msg", "wire"), EXACT, ids=[w[:40].decode() for _, w in EXACT])
def test_exact_bytes_and_back(msg: msgspec.Struct, wire: bytes) -> None:
    assert encode(msg) == wire
    if not isinstance(msg, ErrorReply):
        assert decode_request(wire) == msg


def test_reply_decoding() -> None:
    hello = decode_reply(
        b'{"ok":true,"protocol":1,"version":"1","pub":"p","sub":"s","time":2,"x":1}', HelloReply
    )
    assert isinstance(hello, HelloReply) and hello.pub == "p" and hello.time == 2.0
    err = decode_reply(b'{"ok":false,"error":"gone","code":"unknown_id"}', HelloReply)
    assert isinstance(err, ErrorReply) and (err.error, err.code) == ("gone", "unknown_id")
    for bad in (b"[]", b"nope", b'{"ok":"yes"}', b'{"ok":true,"pub":1}'):
        with pytest.raises(RemoteProtocolError):
            decode_reply(bad, HelloReply)


# -- bounds -------------------------------------------------------------------


def test_unknown_fields_are_ignored_not_kept() -> None:
    req = decode_request(frame(**REC, extra="x" * 1000, streams=[]))
    assert req == Register(role="recorder", name="r", host="h", pid=1)
    assert "extra" not in msgspec.structs.asdict(req)


def test_text_bounds() -> None:
    ok = decode_request(frame(**{**REC, "name": "n" * control.MAX_TEXT}))
    assert isinstance(ok, Register) and len(ok.name) == control.MAX_TEXT
    for key in ("role", "name", "host"):
        assert "length <= 256" in refused(**{**REC, key: "n" * (control.MAX_TEXT + 1)})
    for key in ("role", "name"):
        assert "length >= 1" in refused(**{**REC, key: ""})
    assert "length <= 256" in refused(op="heartbeat", id="i" * 257)


def test_list_bounds() -> None:
    n = control.MAX_ITEMS
    assert decode_request(frame(**REC, topics=["audio/"] * n))
    assert "length <= 256" in refused(**REC, topics=["audio/"] * (n + 1))
    assert "length <= 256" in refused(**REC, topics=["t" * 257])
    streams = [{"name": f"s{i}", "rate": 1, "channels": 1} for i in range(n + 1)]
    assert "length <= 256" in refused(**REC, streams=streams)
    assert "length <= 256" in refused(**REC, outputs=[f"o{i}" for i in range(n + 1)])
    assert "invalid stream name" in refused(**REC, outputs=["a b"])
    assert "listed twice" in refused(**REC, outputs=["a"], streams=[streams[0] | {"name": "a"}])


def test_stats_bounds() -> None:
    def beat(stats: Any) -> str:
        return refused(op="heartbeat", id="x", stats=stats)

    good = {"sent": 1, "lag": 0.5, "ready": True, "proc_time": None, "state": "ok",
            "rejected": {"size": 2}}  # fmt: skip
    assert decode_request(frame(op="heartbeat", id="x", stats=good)) == Heartbeat("x", good)
    assert "length <= 64" in beat({f"k{i}": 1 for i in range(control.MAX_STATS_KEYS + 1)})
    assert "length <= 64" in beat({"k" * (control.MAX_STATS_KEY + 1): 1})
    assert "got `array`" in beat({"k": [1]})
    assert "only 'streams' may" in beat({"k": {"deeper": {"x": 1}}})
    # a processor's per-stream breakdown: one level more, under "streams" only, bounded
    per = {"received": 3, "processed": 2, "dropped": 1, "gaps": 0, "lost_frames": 0}
    streams = {"received": 3, "streams": {"mic": per, "lab/b": per}}
    assert decode_request(frame(op="heartbeat", id="x", stats=streams)).stats == streams
    assert "got `object`" in beat({"streams": {"mic": {"received": {"x": 1}}}})
    over = {f"s{i}": {"received": 1} for i in range(control.MAX_STATS_STREAMS + 1)}
    assert "streams: at most 8" in beat({"streams": over})
    assert "not an object of counters" in beat({"streams": {"mic": per, "n": 1}})
    wide = {f"s{i}": {f"k{j}": 1 for j in range(15)} for i in range(8)}  # 1 + 8 + 120
    assert "entries: at most 128" in beat({"streams": wide})
    assert "length <= 256" in beat({"k": "v" * 257})
    assert "got `array`" in beat([1, 2])
    many = {f"g{i}": {f"k{j}": 1 for j in range(3)} for i in range(40)}  # 40 + 120 entries
    assert "entries: at most 128" in beat(many)
    big = {f"k{i}": "v" * 200 for i in range(30)}  # about 6 KiB of JSON
    assert "bytes of JSON: at most 4096" in beat(big)
    assert "entries" in refused(**REC, stats=many)  # a registration's counters too
    assert control.stats_problem(good) is None and control.stats_problem(big)
    assert control.stats_problem({"x": object()})


def test_proxy_keeps_only_checked_fields(proxy: Proxy) -> None:
    reg = op(proxy.control, **REC, extra="x" * 10_000, stats={"sent": 4}, streams=[
        {"name": "mic", "rate": 8000, "channels": 1, "gain": 3}])  # fmt: skip
    assert reg["ok"], reg
    node = op(proxy.control, op="list")["nodes"][0]
    assert set(node) == {"id", "role", "name", "host", "pid", "streams", "topics", "outputs",
                         "since", "last_seen", "stats", "origin", "via"}  # fmt: skip
    assert (node["origin"], node["via"]) == (proxy.name, "")  # federation (extension)
    assert node["stats"] == {"sent": 4}  # a registration may bring its counters (extension)
    assert node["streams"] == [{"name": "mic", "rate": 8000, "channels": 1}]
    # a heartbeat over a bound is refused and changes nothing
    beat = op(proxy.control, op="heartbeat", id=reg["id"], stats={"k": "v" * 300})
    assert beat["ok"] is False and "length <= 256" in beat["error"]
    assert op(proxy.control, op="list")["nodes"][0]["stats"] == {"sent": 4}


def test_node_with_oversize_counters_keeps_its_heartbeats(proxy: Proxy) -> None:
    """Counters over the bounds are not sent (warned once); the node stays registered."""
    stats = {f"k{i}": "v" * 200 for i in range(30)}
    client = NodeClient(proxy.control, role="x", name="big", stats=lambda: stats).start()
    try:
        assert client.wait_registered(3)
        node = proxy.registry.nodes[client.id or ""]
        # alive for more than 3 heartbeat periods (0.2 s here): its heartbeats were taken
        wait_until(lambda: node.last_seen - node.since > 4 * 0.2, 5, "heartbeats")
        assert node.stats == {} and client.registrations == 1 and client.error is None
    finally:
        client.close()


def test_numpy_counters_are_sent_as_numbers(proxy: Proxy) -> None:
    import numpy as np

    stats = {"sent": np.int64(3), "lag": np.float32(0.5), "bad": float("nan")}
    client = NodeClient(proxy.control, role="x", name="np", stats=lambda: stats).start()
    try:
        assert client.wait_registered(3)
        node = proxy.registry.nodes[client.id or ""]
        assert node.stats == {"sent": 3, "lag": 0.5, "bad": None}
    finally:
        client.close()


def test_live_nodes_per_connection_and_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """One connection may hold 64 live nodes; the proxy MAX_NODES (here made 70)."""

    with Proxy(port=0, heartbeat=60) as proxy:  # nothing expires during the test
        _fill(proxy, monkeypatch)


def _fill(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    from zaudio import registry

    ctx = zmq.Context.instance()

    def ask(sock: zmq.Socket[Any], **msg: Any) -> dict[str, Any]:
        sock.send(json.dumps(msg).encode())
        assert sock.poll(2000)
        reply: dict[str, Any] = json.loads(sock.recv())
        return reply

    one, two = ctx.socket(zmq.REQ), ctx.socket(zmq.REQ)
    try:
        for s in (one, two):
            s.linger = 0
            s.connect(proxy.control)
        ids = [
            ask(one, **{**REC, "name": f"n{i}"})["id"] for i in range(registry.MAX_NODES_PER_PEER)
        ]
        full = ask(one, **REC)
        assert full["ok"] is False and full["code"] == "full" and "64 live nodes" in full["error"]
        assert ask(one, op="disconnect", id=ids[0])["ok"]
        assert ask(one, **REC)["ok"]  # room again
        monkeypatch.setattr(registry, "MAX_NODES", 70)
        assert all(ask(two, **{**REC, "name": f"m{i}"})["ok"] for i in range(6))
        full = ask(two, **REC)
        assert full["ok"] is False and full["code"] == "full" and "70 live nodes" in full["error"]
    finally:
        one.close(0)
        two.close(0)


def test_peer_limiter_buckets() -> None:
    from zaudio.limits import PeerLimiter

    lim = PeerLimiter(rate=10, burst=3)
    assert [lim.allow(b"a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.allow(b"a", 0.0) == pytest.approx(0.1)  # empty: next token in 1/rate s
    assert lim.allow(b"b", 0.0) == 0.0  # another peer is not affected
    assert lim.allow(b"a", 0.1) == 0.0  # refilled one
    lim.charge(b"b", 5)  # a costly request: b now owes tokens
    assert lim.allow(b"b", 0.0) > 0.3 and lim.limited == 2
    lim.forget_idle(10.0)  # full again long ago: forgotten, and would start full anyway
    assert len(lim) == 0 and lim.allow(b"a", 10.0) == 0.0


def test_rate_limited_reply_and_other_connections_served() -> None:
    """A connection pipelining past its limit gets rate_limited at once; others do not."""
    with Proxy(port=0, request_rate=1, request_burst=20) as proxy:
        ctx = zmq.Context.instance()
        flood, calm = ctx.socket(zmq.DEALER), ctx.socket(zmq.REQ)
        try:
            for s in (flood, calm):
                s.linger = 0
                s.connect(proxy.control)
            for _ in range(50):
                flood.send_multipart([b"", b'{"op": "time"}'])
            replies = []
            while len(replies) < 50:
                assert flood.poll(2000), f"{len(replies)} replies"
                replies.append(json.loads(flood.recv_multipart()[-1]))
            ok = [r for r in replies if r["ok"]]
            limited = [r for r in replies if not r["ok"]]
            assert 20 <= len(ok) < 25 and len(ok) + len(limited) == 50
            assert all(r["code"] == "rate_limited" and r["retry_after"] > 0 for r in limited)
            assert "at most 1 per second" in limited[0]["error"]
            calm.send(b'{"op": "time"}')
            assert calm.poll(2000) and json.loads(calm.recv())["ok"]
            assert op(proxy.control, op="list")["proxy"]["refused"]["rate_limited"] == len(limited)
        finally:
            flood.close(0)
            calm.close(0)


def test_counters_over_the_bounds_lose_their_breakdown_first(proxy: Proxy) -> None:
    """The per-stream breakdown goes, the totals stay (zaudio.perstream)."""
    per = {f"s{i}": {"received": 10**15, "note": "v" * 250} for i in range(8)}  # ~2.2 KiB
    stats = {"received": 7, "padding": "p" * 250, **{f"k{i}": "v" * 200 for i in range(9)}}
    client = NodeClient(
        proxy.control, role="x", name="wide", stats=lambda: {**stats, "streams": per}
    ).start()
    try:
        assert client.wait_registered(3)
        node = proxy.registry.nodes[client.id or ""]
        assert node.stats == stats  # without "streams", every total in it
    finally:
        client.close()


def test_a_full_breakdown_of_the_longest_names_fits_a_heartbeat() -> None:
    """MAX_STATS_STREAMS streams named MAX_STATS_KEY long, with 13-digit counts, fit."""
    from zaudio.perstream import FIELDS
    from zaudio.runtime import Processor

    proc = Processor(lambda block: None, topics="x", name="n" * 100)
    for i in range(control.MAX_STATS_STREAMS + 2):
        counts = proc.tracker.counts.of(f"{i:02d}" + "x" * (control.MAX_STATS_KEY - 2))
        for field in FIELDS:
            setattr(counts, field, 10**12)
    proc.tracker.counts.of("y" * (control.MAX_STATS_KEY + 1)).received = 1  # cannot be a key
    stats = msgspec.json.decode(msgspec.json.encode(proc.stats()))
    assert len(stats["streams"]) == control.MAX_STATS_STREAMS  # the first ones seen
    assert sorted(stats["streams"])[0].startswith("00")
    assert all(v == dict.fromkeys(FIELDS, 10**12) for v in stats["streams"].values())
    assert control.stats_problem(stats) is None
