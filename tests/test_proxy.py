"""The proxy with real sockets: data path, every control op and rule, bad requests, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Any

import numpy as np
import pytest
import zmq

from tests.helpers import Listener, free_ports, proxy_process, run, spawn, stop, wait_until
from zaudio.bus import Outlet, Publisher
from zaudio.client import request
from zaudio.errors import RequestRefused
from zaudio.protocol import AudioHeader
from zaudio.proxy import Proxy


def raw(control: str, *frames: bytes, timeout: float = 2.0) -> dict[str, Any]:
    """Send raw request frames on a fresh REQ socket; return the decoded reply."""
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.REQ) as s:
        s.linger = 0
        s.connect(control)
        s.send_multipart(list(frames))
        assert s.poll(int(timeout * 1000)), "proxy did not answer"
        reply: dict[str, Any] = json.loads(s.recv())
        return reply


def op(control: str, **msg: Any) -> dict[str, Any]:
    return raw(control, json.dumps(msg).encode())


REC = {"role": "recorder", "name": "r", "host": "h", "pid": 1}


def test_pub_through_proxy_to_sub(proxy: Proxy) -> None:
    with (
        Listener(proxy.control, "mic") as listener,
        Publisher("mic", rate=48000, proxy=proxy.control) as pub,
    ):
        for i in range(20):
            assert pub.send(np.full(480, i, np.float32))
        got = listener.collect(20)
    assert [h.seq for h, _ in got] == list(range(20))
    assert [h.index for h, _ in got] == [480 * i for i in range(20)]
    assert all(np.all(b == i) for i, (_, b) in enumerate(got))
    ts = [h.t for h, _ in got]
    assert np.allclose(np.diff(ts), 0.01, rtol=0, atol=1e-6)  # float64 ulp at 1.8e9 s: 2.4e-7


def test_exact_topic_filtering(proxy: Proxy) -> None:
    with Listener(proxy.control, "mic") as exact, Listener(proxy.control, "*") as every:
        with (
            Publisher("mic2", rate=8000, proxy=proxy.control) as p2,
            Publisher("mic", rate=8000, proxy=proxy.control) as p1,
        ):
            p2.send(np.zeros(80, np.float32))
            p1.send(np.ones(80, np.float32))
            names = sorted(h.stream for h, _ in every.collect(2))
            assert names == ["mic", "mic2"]
            h, _ = exact.recv()
            assert isinstance(h, AudioHeader) and h.stream == "mic"
            assert exact.inlet.recv(0.3) is None  # mic2 never arrives


def test_hello_and_time(proxy: Proxy) -> None:
    before = time.time()
    hello = op(proxy.control, op="hello")
    assert hello["ok"] is True and hello["protocol"] == 1
    assert hello["pub"] == proxy.pub and hello["sub"] == proxy.sub
    assert isinstance(hello["version"], str)
    t = op(proxy.control, op="time")["time"]
    assert before <= t <= time.time()


def test_register_list_heartbeat_disconnect(proxy: Proxy) -> None:
    reg = op(
        proxy.control,
        op="register",
        **REC,
        streams=[{"name": "mic", "rate": 48000, "channels": 2}],
    )
    assert reg["ok"] and isinstance(reg["id"], str) and reg["heartbeat"] == 0.2
    proc = op(
        proxy.control,
        op="register",
        role="processor",
        name="vad",
        host="h",
        pid=2,
        topics=["audio/mic"],
        outputs=["clean"],
    )
    assert proc["ok"]
    assert op(proxy.control, op="heartbeat", id=reg["id"], stats={"sent": 7})["ok"]
    listing = op(proxy.control, op="list")
    nodes = {n["id"]: n for n in listing["nodes"]}
    rec = nodes[reg["id"]]
    assert (rec["role"], rec["name"], rec["host"], rec["pid"]) == ("recorder", "r", "h", 1)
    assert rec["stats"] == {"sent": 7}
    assert rec["since"] <= rec["last_seen"]
    assert nodes[proc["id"]]["topics"] == ["audio/mic"]
    # origin (extension): the proxy the publisher is registered at; via: empty, not learned
    assert listing["streams"] == [
        {"name": "mic", "rate": 48000, "channels": 2, "node": reg["id"], "origin": proxy.name,
         "via": ""}
    ]  # fmt: skip
    # an output's format is announced with a heartbeat (extension) and then listed
    assert op(
        proxy.control,
        op="heartbeat",
        id=proc["id"],
        streams=[{"name": "clean", "rate": 48000, "channels": 1}],
    )["ok"]
    assert {s["name"] for s in op(proxy.control, op="list")["streams"]} == {"mic", "clean"}
    assert op(proxy.control, op="disconnect", id=reg["id"])["ok"]
    listing = op(proxy.control, op="list")
    assert reg["id"] not in {n["id"] for n in listing["nodes"]}
    assert [s["name"] for s in listing["streams"]] == ["clean"]


def test_stream_ownership(proxy: Proxy) -> None:
    streams = [{"name": "mic", "rate": 48000, "channels": 1}]
    first = op(proxy.control, op="register", **REC, streams=streams)
    refused = op(proxy.control, op="register", **{**REC, "pid": 9}, streams=streams)
    assert refused["ok"] is False and "'mic'" in refused["error"]
    # a processor output may not take a recorder's stream name either
    out = op(
        proxy.control, op="register", role="processor", name="p", host="h", pid=3, outputs=["mic"]
    )
    assert out["ok"] is False and "mic" in out["error"]
    op(proxy.control, op="disconnect", id=first["id"])
    assert op(proxy.control, op="register", **REC, streams=streams)["ok"]


def test_expiry_after_missed_heartbeats_frees_stream(proxy: Proxy) -> None:
    streams = [{"name": "gone", "rate": 8000, "channels": 1}]
    reg = op(proxy.control, op="register", **REC, streams=streams)
    t0 = time.monotonic()
    wait_until(
        lambda: reg["id"] not in {n["id"] for n in op(proxy.control, op="list")["nodes"]},
        5,
        "expiry",
    )
    assert time.monotonic() - t0 >= 3 * 0.2 - 0.05  # not before 3 missed heartbeats
    beat = op(proxy.control, op="heartbeat", id=reg["id"])
    assert beat["ok"] is False and reg["id"] in beat["error"] and beat["code"] == "unknown_id"
    assert op(proxy.control, op="register", **REC, streams=streams)["ok"]


def test_heartbeats_keep_node_alive(proxy: Proxy) -> None:
    reg = op(proxy.control, op="register", **REC)
    for _ in range(8):  # 8 x 0.1 s = 4 heartbeat periods: would expire without beats
        assert op(proxy.control, op="heartbeat", id=reg["id"])["ok"]
        time.sleep(0.1)  # the cadence under test, not a wait for an event
    assert reg["id"] in {n["id"] for n in op(proxy.control, op="list")["nodes"]}


BAD = {
    "not JSON": [b"{nope"],
    "not UTF-8": [b"\xff\xfe"],
    "array": [b"[1, 2]"],
    "string": [b'"hello"'],
    "no op": [b"{}"],
    "op not a string": [b'{"op": 5}'],
    "unknown op": [b'{"op": "explode"}'],
    "two frames": [b'{"op": "time"}', b"x"],
    "empty": [b""],
    "register missing name": [
        json.dumps({"op": "register", "role": "r", "host": "h", "pid": 1}).encode()
    ],
    "register pid string": [json.dumps({**REC, "op": "register", "pid": "1"}).encode()],
    "register pid bool": [json.dumps({**REC, "op": "register", "pid": True}).encode()],
    "register bad stream name": [
        json.dumps(
            {**REC, "op": "register", "streams": [{"name": "a b", "rate": 1, "channels": 1}]}
        ).encode()
    ],
    "register rate 0": [
        json.dumps(
            {**REC, "op": "register", "streams": [{"name": "a", "rate": 0, "channels": 1}]}
        ).encode()
    ],
    "register streams not list": [json.dumps({**REC, "op": "register", "streams": "mic"}).encode()],
    "register topics not strings": [json.dumps({**REC, "op": "register", "topics": [1]}).encode()],
    "register duplicate stream": [
        json.dumps(
            {
                **REC,
                "op": "register",
                "streams": [{"name": "a", "rate": 1, "channels": 1}],
                "outputs": ["a"],
            }
        ).encode()
    ],
    "register huge name": [json.dumps({**REC, "op": "register", "name": "x" * 300_000}).encode()],
    "register many topics": [
        json.dumps({**REC, "op": "register", "topics": ["a"] * 1000}).encode()
    ],
    "heartbeat no id": [b'{"op": "heartbeat"}'],
    "heartbeat id int": [b'{"op": "heartbeat", "id": 5}'],
    "heartbeat unknown id": [b'{"op": "heartbeat", "id": "nope"}'],
    "heartbeat stats list": [b'{"op": "heartbeat", "id": "nope", "stats": []}'],
    "disconnect unknown": [b'{"op": "disconnect", "id": "nope"}'],
}


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_get_useful_errors(proxy: Proxy, case: str) -> None:
    reply = raw(proxy.control, *BAD[case])
    assert reply["ok"] is False
    assert isinstance(reply["error"], str) and len(reply["error"]) > 10
    assert op(proxy.control, op="time")["ok"]  # still answering


def test_client_request_raises_refused(proxy: Proxy) -> None:
    with pytest.raises(RequestRefused, match="unknown op"):
        request(proxy.control, {"op": "nope"})


def test_stop_is_clean_and_idempotent() -> None:
    p = Proxy(port=0).start()
    control = p.control
    p.stop()
    p.stop()
    # the ports are free again: a new proxy can bind the same control port
    port = int(control.rsplit(":", 1)[1])
    with Proxy(port=port, pub_port=0, sub_port=0) as again:
        assert op(again.control, op="time")["ok"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_proxy_prints_endpoints_and_exits_0(sig: int) -> None:
    with proxy_process() as (control, proc):
        port = int(control.rsplit(":", 1)[1])
        assert op(control, op="hello")["pub"] == f"tcp://127.0.0.1:{port + 1}"
        assert stop(proc, sig) == 0
        out = proc.stdout.read() if proc.stdout else ""
    assert control in out and f":{port + 1}" in out and f":{port + 2}" in out


def test_cli_proxy_port_in_use_is_one_line_error() -> None:
    with proxy_process() as (control, _):
        port = control.rsplit(":", 1)[1]
        with spawn("proxy", "--port", port) as proc:
            assert proc.wait(15) == 1
            err = proc.stderr.read() if proc.stderr else ""
    assert err.count("\n") == 1 and "cannot bind" in err and "Traceback" not in err


@pytest.mark.parametrize(("offset", "what"), [(1, "publish-in"), (2, "subscribe-out")])
def test_cli_proxy_data_port_in_use_exits_1_at_once(offset: int, what: str) -> None:
    """A taken data port: exit 1 at once, one line naming it (it used to hang, holding P).

    "At once" in the units of this machine now: no later than a proxy whose control
    port is taken (which fails at its first bind) plus 2 s, rather than a wall-clock
    bound that a busy machine's Python start-up alone can pass."""
    port = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        t0 = time.monotonic()
        first = run("proxy", "--port", str(port), timeout=15)
        at_once = time.monotonic() - t0
    assert first.returncode == 1 and "cannot bind" in first.stderr, first.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + offset))
        taken.listen()
        t0 = time.monotonic()
        r = run("proxy", "--port", str(port), timeout=15)
        elapsed = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{what} port tcp://127.0.0.1:{port + offset}" in r.stderr
    print(f"{what} port taken: exit after {elapsed:.2f} s (control port taken: {at_once:.2f} s)")
    assert elapsed < at_once + 2, (elapsed, at_once)
    # nothing was left holding the control port: a proxy can take it now
    with Proxy(port=port) as p:
        assert op(p.control, op="time")["ok"]


def test_message_size_cap_disconnects_rogue_publisher() -> None:
    with Proxy(port=0, max_message=1024) as p, Listener(p.control, "*") as listener:
        rogue = Outlet()
        try:
            rogue.connect(p.pub)
            assert rogue.wait_ready(5)  # the proxy is connected and listening to it
            assert rogue.send([b"audio/ok\x00", b"{}", os.urandom(4096)])
            # the proxy drops the connection (zmq then reconnects: READY arrives again)
            wait_until(lambda: (rogue.pump(), rogue.connections >= 2)[1], 5, "rogue dropped")
        finally:
            rogue.close(0)
        watch = p.watch
        assert watch is not None
        # counted as cut off; its second connection, closed by the rogue itself, is not
        wait_until(lambda: watch.cut_off == 1 and watch.closed == 1, 5, "the cut-off counted")
        with Publisher("ok", rate=8000, proxy=p.control) as good:
            good.send(np.zeros(80, np.float32))
            h, _ = listener.recv()
            assert h.stream == "ok" and h.seq == 0
            assert listener.inlet.recv(0.2) is None  # nothing from the rogue
        wait_until(lambda: watch.closed == 2, 5, "the good publisher's close counted")
        assert watch.cut_off == 1 and watch.failed == 0 and watch.disconnected == 0
        assert op(p.control, op="list")["proxy"]["refused"]["publishers"] == 1


def test_a_100_mb_message_is_refused_and_counted_in_ls() -> None:
    """The proxy cuts off a publisher over its size cap: `zaudio ls` shows it (it showed nothing)."""
    with proxy_process() as (control, _), Listener(control, "*"):
        hello = op(control, op="hello")
        rogue = Outlet()
        try:
            rogue.connect(hello["pub"])
            assert rogue.wait_ready(5)
            assert rogue.send([b"audio/big\x00", b"{}", bytes(100 * 1024 * 1024)])

            def proxy_line() -> str:
                return run("ls", "--proxy", control, timeout=15).stdout.splitlines()[0]

            line = wait_until(lambda: "1 cut off" in (x := proxy_line()) and x, 15, "ls")
        finally:
            rogue.close(0)
    assert "publishers " in line and "connected, 1 cut off" in line, line
