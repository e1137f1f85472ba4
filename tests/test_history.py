"""The proxy's history (``zaudio proxy --history D``): the op, its frames, the bounds, ``zaudio ls``.

The proxy runs as a real process; the ``history`` op is sent on a plain REQ
socket, as a node written from docs/protocol.md would send it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import zmq

from tests.helpers import Listener, proxy_process, run
from zaudio.history import History
from zaudio.protocol import decode
from zaudio.publisher import Publisher


def exchange(control: str, msg: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """``msg`` on a fresh REQ socket: the JSON reply and the frames after it."""
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.REQ) as s:
        s.linger = 0
        s.connect(control)
        s.send(json.dumps(msg).encode())
        assert s.poll(5000), "proxy did not answer"
        frames = s.recv_multipart()
    reply: dict[str, Any] = json.loads(frames[0])
    return reply, frames[1:]


def history_op(control: str, topics: list[str], since: float) -> tuple[dict[str, Any], list[bytes]]:
    """``{"op": "history", "topics": ..., "since": ...}``: the reply and the kept frames."""
    return exchange(control, {"op": "history", "topics": topics, "since": since})


def publish(control: str, n: int, stream: str = "mic", channels: int = 2) -> list[Any]:
    """Send ``n`` numbered blocks on ``stream`` and return them as a live subscriber got them."""
    with (
        Listener(control, stream) as live,
        Publisher(stream, rate=48000, channels=channels, proxy=control) as pub,
    ):
        for i in range(n):
            assert pub.send(np.full((480, channels), i, np.float32))
        got = [live.inlet.recv(5) for _ in range(n)]
        assert all(f is not None for f in got)
        assert live.inlet.recv(0.2) is None  # a node that does not ask sees nothing more
    return [[bytes(x) for x in f] for f in got]  # type: ignore[union-attr]


def test_history_op_returns_the_messages_exactly_as_forwarded() -> None:
    with proxy_process("--history", "5s") as (control, _):
        live = publish(control, 50)
        publish(control, 5, stream="other")
        reply, frames = history_op(control, ["audio/mic\u0000"], 10)
        assert reply["ok"] is True
        assert reply["messages"] == 50
        assert reply["seconds"] == 5
        assert 0 < reply["oldest"] < 5
        kept = [frames[i : i + 3] for i in range(0, len(frames), 3)]
        assert kept == live  # topic, header, payload: byte for byte, in order
        assert [decode(k)[0].seq for k in kept] == list(range(50))
        # a prefix matches both streams; a short `since` gets only the latest
        reply, frames = history_op(control, ["audio/"], 10)
        assert reply["messages"] == 55
        reply, frames = history_op(control, ["audio/mic\u0000"], 1e-6)
        assert reply["messages"] == 0 and frames == []


def test_without_history_the_op_says_it_is_off(proxy_proc: str) -> None:
    reply, frames = history_op(proxy_proc, ["audio/"], 2)
    assert reply["ok"] is False
    assert reply["code"] == "history_off"
    assert "--history" in reply["error"]
    assert frames == []
    listing = json.loads(run("ls", "--json", "--proxy", proxy_proc).stdout)
    assert listing["proxy"]["history"] is None


def test_eviction_by_bytes_is_counted_and_shown_in_ls() -> None:
    with proxy_process("--history", "30s", "--history-bytes", "100kB") as (control, _):
        publish(control, 100)  # ~4 kB a message: ~400 kB
        reply, frames = history_op(control, ["audio/"], 60)
        seqs = [decode(frames[i : i + 3])[0].seq for i in range(0, len(frames), 3)]
        n = reply["messages"]
        assert 0 < n < 100
        assert seqs == list(range(100 - n, 100))  # the oldest went first
        listing = json.loads(run("ls", "--json", "--proxy", control).stdout)
        h = listing["proxy"]["history"]
        assert h["messages"] == n
        assert h["bytes"] <= 100_000 == h["max_bytes"]
        assert h["evicted"] == 100 - n
        assert h["streams"]["mic"]["evicted"] == 100 - n
        assert h["evicted_bytes"] > 0 and h["missed"] == 0
        text = run("ls", "--proxy", control).stdout
        assert f"history 30 s: {n} messages kept" in text
        assert f"evicted {100 - n} " in text
        assert "mic:" in text


def test_messages_older_than_the_history_expire_uncounted() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    store = History(ctx, History.endpoint(), seconds=1.0, max_bytes=10_000)
    thread = store.start()
    try:
        header = b'{"stream":"mic","src":"a","seq":%d}'
        store.add(b"audio/mic\x00", header % 0, b"x" * 100, 100.0)
        store.add(b"audio/mic\x00", header % 1, b"x" * 100, 100.5)
        assert store.stats()["messages"] == 2
        store.add(b"audio/mic\x00", header % 3, b"x" * 100, 101.2)  # seq 2 never seen
        stats = store.stats()
        assert stats["messages"] == 2  # seq 0 is older than 1 s
        assert stats["evicted"] == 0  # expired by age, not evicted by bytes
        assert stats["missed"] == 1
        store.add(b"audio/mic\x00", header % 4, b"x" * 9_800, 101.3)
        stats = store.stats()
        assert stats["bytes"] <= 10_000 and stats["evicted"] >= 1
    finally:
        store.close()
        ctx.term()
        thread.join(2)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--history", "soon"), "invalid --history 'soon'"),
        (("--history", "0"), "must be more than 0"),
        (("--history", "5s", "--history-bytes", "lots"), "invalid --history-bytes 'lots'"),
    ],
)
def test_bad_history_options_exit_2_in_one_line(args: tuple[str, ...], message: str) -> None:
    result = run("proxy", "--port", "0", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_history_requests_are_refused() -> None:
    bad = [
        ({"op": "history", "topics": ["audio/"], "since": -1}, "since"),
        ({"op": "history", "topics": [], "since": 1}, "topics"),
        ({"op": "history", "since": 1}, "topics"),
    ]
    with proxy_process("--history", "1s") as (control, _):
        for msg, word in bad:
            reply, frames = exchange(control, msg)
            assert reply["ok"] is False and reply["code"] == "bad_request", msg
            assert word in reply["error"], reply
            assert frames == []


def test_a_late_joiner_written_from_the_docs_alone_gets_an_exact_seam() -> None:
    """Plain pyzmq and json, following docs/protocol.md "History for late joiners"."""
    with proxy_process("--history", "10s") as (control, _):
        with Publisher("mic", rate=48000, channels=1, proxy=control) as pub:
            for i in range(30):
                assert pub.send(np.full((480, 1), i, np.float32))
            ctx = zmq.Context.instance()
            hello, _ = exchange(control, {"op": "hello"})
            host = control.rsplit(":", 1)[0]
            sub = ctx.socket(zmq.SUB)
            echo = ctx.socket(zmq.XPUB)
            try:
                for s in (sub, echo):
                    s.linger = 0
                sub.connect(host + ":" + hello["sub"].rsplit(":", 1)[1])
                echo.connect(host + ":" + hello["pub"].rsplit(":", 1)[1])
                # 1. subscribe, and prove it is in effect with the echo handshake
                sub.subscribe(b"audio/mic\x00")
                token = b"\xff\xfezaudio/echo/" + b"docs-node"
                sub.subscribe(token)
                for _ in range(500):
                    assert echo.poll(5000), "no subscription forwarded"
                    if echo.recv() == b"\x01" + token:
                        break
                for i in range(30, 40):  # live now, and queued in the SUB socket
                    assert pub.send(np.full((480, 1), i, np.float32))
                # 2. ask for the history of the same prefix
                reply, frames = history_op(control, ["audio/mic\u0000"], 10)
                history = [json.loads(frames[i + 1]) for i in range(0, len(frames), 3)]
                last = {(h["stream"], h["src"]): h["seq"] for h in history}
                # 3. history first, then live without what the history had
                seqs = [h["seq"] for h in history]
                while seqs[-1] < 39:
                    assert sub.poll(5000), f"live stopped at {seqs[-1]}"
                    _topic, header, _payload = sub.recv_multipart()
                    h = json.loads(header)
                    if h["seq"] <= last.get((h["stream"], h["src"]), -1):
                        continue  # overlap: already delivered by the history
                    seqs.append(h["seq"])
            finally:
                sub.close(0)
                echo.close(0)
    assert reply["messages"] >= 30
    assert seqs == list(range(40))  # no gap, no duplicate, in order


def test_the_history_counters_are_prometheus_metrics() -> None:
    from zaudio.metrics import families
    from zaudio.proxy import Proxy

    with Proxy(port=0, history=30.0, history_bytes=20_000) as proxy:
        publish(proxy.control, 10)  # ~40 kB: about half evicted
        got = {
            f.name: {s["stream"]: v for s, v in f.samples}
            for f in families(proxy)
            if f.name.startswith("zaudio_proxy_history_")
        }
        stats = proxy.history.stats() if proxy.history is not None else {}
    assert got["zaudio_proxy_history_kept_messages"] == {"mic": stats["messages"]}
    assert got["zaudio_proxy_history_evicted"] == {"mic": stats["evicted"]} != {"mic": 0}
    assert got["zaudio_proxy_history_kept_bytes"]["mic"] <= 20_000
    assert "zaudio_proxy_history_missed" in got
