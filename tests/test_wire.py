"""The compiled wire (zaudio/_wire.c) does exactly what its Python twin does, on real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq

from tests.helpers import Listener
from zaudio.bus import recv_message
from zaudio.expected import Expected
from zaudio.protocol import AudioHeader, AudioStream, decode
from zaudio.proxy import Proxy
from zaudio.publisher import Publisher
from zaudio.tracking import IN_ORDER, StreamTracker
from zaudio.wire import WIRE, libzmq_path


def test_the_wire_is_built_and_uses_pyzmqs_libzmq() -> None:
    # CI must test the compiled path: a build that skipped it fails here
    assert WIRE is not None
    path = libzmq_path()
    assert path is not None and "zmq" in os.path.basename(path)


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[Any], zmq.Socket[Any]]]:
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire")
    b.connect("inproc://wire")
    b.rcvtimeo = 2000
    yield a, b
    a.close(0)
    b.close(0)
    ctx.term()


def send(sock: zmq.Socket[Any], msg: list[Any]) -> None:
    """Send a message as zaudio encodes it (bytes and arrays) as plain frames."""
    sock.send_multipart([m if isinstance(m, bytes) else bytes(m) for m in msg])


def c_recv(sock: zmq.Socket[Any], expected: dict[bytes, Expected] | None = None) -> Any:
    assert WIRE is not None
    return WIRE.recv(sock.underlying, 0, expected)


MESSAGES = [
    [b"audio/mic\x00", b'{"h":1}', np.arange(6, dtype=np.float32).tobytes()],
    [b"only-a-topic"],
    [b"t", b""],
    [b"t", b"a", b"b", b"c"],
    [b"", b"", b""],
    [b"t", b"x" * 100_000, b"y" * 70_000],
]


@pytest.mark.parametrize("msg", MESSAGES, ids=["audio", "one", "two", "four", "empty", "big"])
def test_recv_returns_the_frames_recv_message_returns(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]], msg: list[bytes]
) -> None:
    a, b = pair
    a.send_multipart(msg)
    a.send_multipart(msg)
    hit, frames, block, bad = c_recv(b)
    want = recv_message(b)
    assert hit is None and block is None and bad is None
    assert len(frames) == len(want) == len(msg)
    assert frames[0] == want[0] == msg[0]
    for got, w, m in zip(frames[1:], want[1:], msg[1:], strict=True):
        assert bytes(got) == w.bytes == m
    if len(msg) > 1:  # the last part: a read-only buffer over the frame, not a copy
        last = frames[-1]
        assert memoryview(last).readonly and len(last) == len(msg[-1])
        assert last.bytes == msg[-1]


def test_recv_waits_up_to_rcvtimeo_and_none_means_nothing_came(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    _, b = pair
    b.rcvtimeo = 50
    assert c_recv(b) is None
    assert WIRE is not None
    assert WIRE.recv(b.underlying, zmq.NOBLOCK, None) is None


def test_recv_runs_signal_handlers_while_it_waits(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    _, b = pair
    b.rcvtimeo = 5000

    class Woken(Exception):
        pass

    def wake(*_: object) -> None:
        raise Woken

    old = signal.signal(signal.SIGALRM, wake)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Woken):  # Ctrl-C reaches a processor waiting for blocks
            c_recv(b)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_recv_and_send_raise_zmq_errors() -> None:
    ctx = zmq.Context()
    pub, push = ctx.socket(zmq.PUB), ctx.socket(zmq.PUSH)
    try:
        assert WIRE is not None
        with pytest.raises(zmq.ZMQError):
            WIRE.recv(pub.underlying, 0, None)  # a PUB socket cannot receive
        # a PUSH with no peer cannot queue: -1, as Outlet.post says for a full outlet
        assert WIRE.send(push.underlying, [b"a", b"b"]) == -1
        with pytest.raises(TypeError):  # checked before any part leaves
            WIRE.send(pub.underlying, [b"a", 3])
        assert WIRE.send(pub.underlying, [b"whole"]) >= 0
    finally:
        pub.close(0)
        push.close(0)
        ctx.term()


def predicted(stream: AudioStream) -> tuple[Expected, StreamTracker, bytes]:
    """An Expected made as the processor makes it, after stream's first block."""
    tracker = StreamTracker()
    msg = stream.encode(np.zeros((4, 2), np.float32), 1.0)
    h, b = decode([msg[0], msg[1], np.asarray(msg[2]).tobytes()])
    assert tracker.follow(h, b) == IN_ORDER
    exp = Expected.of(h, bytes(msg[1]), tracker)
    assert exp is not None
    return exp, tracker, msg[0]


def candidates(src: str) -> list[list[Any]]:
    """Messages that follow the predicted block, or nearly: C and Python must agree on each."""
    st = AudioStream("lab/mic", 48000, 2, src=src)
    st.seq, st.index = 1, 4
    ok = st.encode(np.arange(8, dtype=np.float32).reshape(4, 2), 2.5)
    out = [ok]
    for t in ("2", "-0.0", "1e3", "2.5e-3", "nan", "1.5.5", '"x"', "", "2 ", "1" * 400):
        raw = bytes(ok[1]).replace(b'"t":2.5', b'"t":' + t.encode())
        out.append([ok[0], raw, ok[2]])
    raw = bytes(ok[1])
    out.append([ok[0], raw.replace(b'"seq":1', b'"seq":2'), ok[2]])  # a gap
    out.append([ok[0], raw.replace(b'"rate":48000', b'"rate":44100'), ok[2]])
    out.append([ok[0], raw, np.zeros((5, 2), np.float32)])  # payload of another size
    out.append([ok[0], raw[:-1], ok[2]])
    out.append([ok[0], raw + b" " * 70_000, ok[2]])  # over MAX_HEADER
    out.append([b"audio/other\x00", raw, ok[2]])  # a topic not predicted
    return out


def test_recv_matches_exactly_what_expected_match_matches(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    a, b = pair
    src = AudioStream("lab/mic", 48000, 2).src
    for msg in candidates(src):
        exp_c, track_c, topic = predicted(AudioStream("lab/mic", 48000, 2, src=src))
        exp_py, track_py, _ = predicted(AudioStream("lab/mic", 48000, 2, src=src))
        send(a, msg)
        send(a, msg)
        got = c_recv(b, {topic: exp_c})
        frames = recv_message(b)  # as the processor's Python loop does it:
        hit_py = {topic: exp_py}.get(frames[0])
        want = hit_py.match(frames) if hit_py is not None else None
        if want is None:
            assert got[0] is None, msg[1]
            assert [bytes(f) for f in got[1]] == [bytes(m) for m in msg]
        else:
            hit, info, block, bad = got
            assert hit is exp_c, msg[1]
            assert info == want[0]
            assert not block.flags.writeable and block.dtype == np.float32
            np.testing.assert_array_equal(block, want[1])
            assert bad == 0
        assert (exp_c.seq, exp_c.index) == (exp_py.seq, exp_py.index)
        c, p = track_c._tracks["lab/mic"], track_py._tracks["lab/mic"]
        assert (c.seq, c.index) == (p.seq, p.index)


def test_a_matched_block_keeps_its_frame_alive(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    a, b = pair
    st = AudioStream("lab/mic", 48000, 2)
    exp, _, topic = predicted(st)
    want = np.arange(8, dtype=np.float32).reshape(4, 2)
    send(a, st.encode(want, 2.0))
    _, _, block, _ = c_recv(b, {topic: exp})
    del exp
    a.send_multipart([b"x" * 4096] * 3)  # reuse of freed memory would show here
    c_recv(b)
    np.testing.assert_array_equal(block, want)


def test_recv_counts_the_nan_and_inf_samples_of_a_matched_block(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    a, b = pair
    st = AudioStream("lab/mic", 48000, 2)
    exp, _, topic = predicted(st)
    for k, values in enumerate(([1.0, 2.0], [np.nan, 1.0], [np.inf, -np.inf], [np.nan] * 2)):
        data = np.zeros((4, 2), np.float32)
        data[k % 4, :] = values
        send(a, st.encode(data, 2.0 + k))
        hit, _, block, bad = c_recv(b, {topic: exp})
        assert hit is exp
        assert bad == int(np.count_nonzero(~np.isfinite(data))) == (0, 1, 2, 2)[k]
        np.testing.assert_array_equal(block, data)


@pytest.mark.parametrize("way", ["post", "post_python"])
def test_outlet_post_sends_and_looks_as_the_python_way_does(proxy: Proxy, way: str) -> None:
    with Publisher("wire/x", rate=1000, channels=1, proxy=proxy.control) as pub:
        outlet = pub.outlet
        post = getattr(outlet, way)
        msg = pub.stream.encode(np.arange(4, dtype=np.float32).reshape(4, 1), 1.0)
        outlet.pump()
        assert post(msg) == zmq.POLLOUT  # sent, nothing to read
        listener = Listener(proxy.control, "wire/x")  # its subscription reaches the outlet
        try:
            deadline = time.monotonic() + 10
            while not post(msg) & zmq.POLLIN:  # a look right after a send sees it
                assert time.monotonic() < deadline, "the subscription never showed"
                outlet.sock.poll(10)
            outlet.pump()
            assert outlet.wants(pub.stream.topic)
            h, b = listener.recv()
            assert isinstance(h, AudioHeader) and b.tolist() == [[0.0], [1.0], [2.0], [3.0]]
        finally:
            listener.conn.close()


def test_a_closed_outlet_says_so_and_does_not_crash(proxy: Proxy) -> None:
    pub = Publisher("wire/closed", rate=1000, channels=1, proxy=proxy.control).start()
    msg = pub.stream.encode(np.zeros((4, 1), np.float32), 1.0)
    pub.close()
    with pytest.raises(zmq.ZMQError):
        pub.outlet.post(msg)


def test_zaudio_wire_python_turns_it_off() -> None:
    env = dict(os.environ, ZAUDIO_WIRE="python")
    out = subprocess.run(
        [sys.executable, "-c", "import zaudio.wire as w; print(w.WIRE is None)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "True"
