"""The in-order fast path: a predicted header matches only the block decode+follow call in order."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import zmq

from zaudio.expected import Expected
from zaudio.protocol import AudioStream, decode
from zaudio.tracking import CONFIRMED, IN_ORDER, RESTART, SKIP, StreamTracker, info_of


def frames(msg: list[Any]) -> list[Any]:
    """A message as the processor's receive returns it: topic bytes, then zmq frames."""
    return [msg[0], zmq.Frame(bytes(msg[1])), zmq.Frame(np.asarray(msg[2]).tobytes())]


def block(k: int) -> np.ndarray:
    return np.full((480, 2), k, np.float32)


def first(stream: AudioStream, tracker: StreamTracker) -> Expected:
    fr = frames(stream.encode(block(0), 1.0))
    h, b = decode(fr)
    assert tracker.follow(h, b) == IN_ORDER
    exp = Expected.of(h, fr[1].bytes, tracker)
    assert exp is not None
    return exp


def test_the_next_blocks_match_as_decode_and_follow_see_them() -> None:
    tr = StreamTracker()
    st = AudioStream("lab/mic", 48000, 2)
    exp = first(st, tr)
    for k in range(1, 5):
        fr = frames(st.encode(block(k), 1.0 + k / 100))
        got = exp.match(fr)
        assert got is not None
        info, b = got
        h, want = decode(fr)
        assert info == info_of(h, False, False)
        assert not b.flags.writeable and b.shape == (480, 2)
        np.testing.assert_array_equal(b, want)
    # the tracker's position moved with the matches: the next block is in order there too
    h, b = decode(frames(st.encode(block(5), 2.0)))
    assert tr.follow(h, b) == IN_ORDER and (tr.gaps, tr.rejected) == (0, 0)


def test_a_gap_a_restart_or_another_format_does_not_match() -> None:
    tr = StreamTracker()
    st = AudioStream("mic", 48000, 2)
    exp = first(st, tr)
    st.skip(480)  # one block never sent
    gap = frames(st.encode(block(2), 1.1))
    assert exp.match(gap) is None
    h, b = decode(gap)
    assert tr.follow(h, b) == SKIP  # the full path holds it until the next block says
    assert Expected.of(h, gap[1].bytes, tr) is None
    nxt = frames(st.encode(block(3), 1.2))
    assert exp.match(nxt) is None
    h, b = decode(nxt)
    assert tr.follow(h, b) == CONFIRMED
    tr.release()
    exp2 = Expected.of(h, nxt[1].bytes, tr)
    assert exp2 is not None
    st2 = AudioStream("mic", 48000, 2)  # a new run: another src
    assert exp2.match(frames(st2.encode(block(0), 1.3))) is None
    for other in (
        AudioStream("mic", 44100, 2, src=st.src),
        AudioStream("mic", 48000, 1, src=st.src),
    ):
        other.seq, other.index = st.seq, st.index
        silence = np.zeros((480, other.channels), np.float32)
        assert exp2.match(frames(other.encode(silence, 1.3))) is None
    assert exp2.match(frames(st.encode(np.zeros((240, 2), np.float32), 1.3))) is None  # frames
    h3, b3 = decode(frames(st2.encode(block(1), 1.4)))
    assert tr.follow(h3, b3) == RESTART


def test_only_what_decode_accepts_matches() -> None:
    tr = StreamTracker()
    st = AudioStream("mic", 48000, 2)
    exp = first(st, tr)
    good = frames(st.encode(block(1), 1.5))
    raw = good[1].bytes
    pre, post = raw[: raw.index(b'"t":') + 4], raw[raw.index(b',"rate"') :]
    for t in (b'"1.5"', b"nan", b'1.5,"seq":9', b"", b"1_5"):
        bad = [good[0], zmq.Frame(pre + t + post), good[2]]
        assert exp.match(bad) is None
    short = [good[0], good[1], zmq.Frame(b"\0" * 100)]
    assert exp.match(short) is None  # payload size
    assert exp.match(good[:2]) is None  # frame count
    assert exp.match(good) is not None


def test_a_header_zaudio_did_not_write_is_never_predicted() -> None:
    tr = StreamTracker()
    st = AudioStream("mic", 48000, 2)
    msg = st.encode(block(0), 1.0)
    spaced = json.dumps(json.loads(bytes(msg[1]))).encode()  # ", " and ": " separators
    fr = [msg[0], zmq.Frame(spaced), zmq.Frame(np.asarray(msg[2]).tobytes())]
    h, b = decode(fr)
    assert tr.follow(h, b) == IN_ORDER
    assert Expected.of(h, spaced, tr) is None
    st.skip(480)
    st.skip(480)  # two blocks never sent
    ahead = frames(st.encode(block(3), 1.3))
    h2, b2 = decode(ahead)
    tr.follow(h2, b2)  # held: ahead of the position, not yet confirmed
    assert Expected.of(h2, ahead[1].bytes, tr) is None
