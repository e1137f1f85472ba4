"""The wire protocol against exact bytes (docs/protocol.md), every malformed case, and a fuzz."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zaudio.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from zaudio.protocol import (
    AudioHeader,
    AudioStream,
    ResultHeader,
    ResultStream,
    audio_topic,
    decode,
    result_topic,
    subscription,
    validate_name,
)

HEADER = {
    "v": 1,
    "kind": "audio",
    "stream": "mic",
    "src": "abc",
    "seq": 0,
    "index": 0,
    "t": 1700000000.5,
    "rate": 48000,
    "channels": 2,
    "frames": 2,
    "dtype": "float32",
}
PAYLOAD = struct.pack("<4f", 0.0, 0.5, -0.5, 1.0)


def frames(
    topic: bytes = b"audio/mic\x00", payload: bytes = PAYLOAD, **fields: object
) -> list[bytes]:
    header = {**HEADER, **fields}
    for k in [k for k, v in header.items() if v is ...]:
        del header[k]
    return [topic, json.dumps(header).encode(), payload]


# -- encode: exact frames ---------------------------------------------------


def test_audio_encode_exact_frames() -> None:
    s = AudioStream("mic", 48000, 2, src="abc")
    block = np.array([[0.0, 0.5], [-0.5, 1.0]], dtype=np.float32)
    topic, header, payload = s.encode(block, 1700000000.5)
    assert topic == b"audio/mic\x00"
    assert header == (
        b'{"kind":"audio","v":1,"stream":"mic","src":"abc","seq":0,"index":0,'
        b'"t":1700000000.5,"rate":48000,"channels":2,"frames":2,"dtype":"float32"}'
    )
    assert bytes(memoryview(payload)) == PAYLOAD
    _, header2, _ = s.encode(block, 1700000000.6)
    h2 = json.loads(header2)
    assert (h2["seq"], h2["index"]) == (1, 2)


def test_audio_encode_mono_1d_and_float64_and_index_override() -> None:
    s = AudioStream("a/b.c-d_e", 8000, 1, src="x")
    topic, header, payload = s.encode(np.array([1.0, 2.0]), 5.0, index=100)
    assert topic == b"audio/a/b.c-d_e\x00"
    h = json.loads(header)
    assert (h["frames"], h["channels"], h["index"]) == (2, 1, 100)
    assert bytes(memoryview(payload)) == struct.pack("<2f", 1.0, 2.0)
    assert s.index == 102


def test_result_encode_exact_frames() -> None:
    r = ResultStream("level", src="r1")
    topic, header, payload = r.encode(
        {"rms": np.float32(0.5), "v": np.array([1, 2])}, stream="mic", index=480, frames=480, t=2.0
    )
    assert topic == b"result/level\x00"
    assert payload == b""
    assert header == (
        b'{"kind":"result","v":1,"processor":"level","stream":"mic","src":"r1","seq":0,'
        b'"index":480,"frames":480,"t":2.0,"data":{"rms":0.5,"v":[1,2]}}'
    )


def test_result_nan_and_inf_are_sent_as_null_and_counted() -> None:
    r = ResultStream("x", src="r1")
    data = {"a": math.nan, "b": [1.0, math.inf, None], "c": np.array([-np.inf, 2.0]),
            "d": np.float32("nan"), "e": (np.float64(3.0),), "f": "nan"}  # fmt: skip
    _, header, _ = r.encode(data, stream="mic", index=0, frames=1, t=0.0)
    assert header.endswith(
        b'"data":{"a":null,"b":[1.0,null,null],"c":[null,2.0],"d":null,"e":[3.0],"f":"nan"}}'
    )
    assert r.nonfinite == 4  # the None and the string "nan" are not numbers
    r.encode({"ok": [0.5, None]}, stream="mic", index=1, frames=1, t=0.0)
    assert r.nonfinite == 4 and r.seq == 2


@pytest.mark.parametrize(
    ("block", "channels"),
    [
        (np.zeros((4, 2), np.float32), 1),  # wrong channel count
        (np.zeros((0, 1), np.float32), 1),  # no frames
        (np.zeros((2, 2, 2), np.float32), 2),  # 3-D
        (np.array(["a"]), 1),  # not numbers
        (np.zeros(4, np.int16), 1),  # integers: scale them yourself
    ],
)
def test_encode_rejects_bad_blocks(block: np.ndarray, channels: int) -> None:
    with pytest.raises(LocalProtocolError):
        AudioStream("mic", 48000, channels).encode(block, 0.0)


def test_encode_rejects_unencodable_result() -> None:
    with pytest.raises(LocalProtocolError):
        ResultStream("x").encode(object(), stream="mic", index=0, frames=1, t=0.0)


@pytest.mark.parametrize(
    "name",
    ["", "-mic", "mic/", "/mic", "mi c", "mic\x00", "a//b", "ä", "x" * 129, "mic*", 5, None],
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(LocalProtocolError):
        validate_name(name)


def test_valid_names_and_topics() -> None:
    assert validate_name("x" * 128) == "x" * 128
    assert audio_topic("lab-a/mic.1_L") == b"audio/lab-a/mic.1_L\x00"
    assert result_topic("vad") == b"result/vad\x00"
    with pytest.raises(LocalProtocolError):
        AudioStream("mic", 0, 1)
    with pytest.raises(LocalProtocolError):
        AudioStream("mic", 48000, True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("mic", b"audio/mic\x00"),
        ("lab-a/", b"audio/lab-a/"),
        ("lab-a/*", b"audio/lab-a/"),
        ("*", b"audio/"),
        ("result/vad", b"result/vad\x00"),
        ("result/", b"result/"),
        ("audio/mic", b"audio/mic\x00"),
    ],
)
def test_subscription_prefixes(pattern: str, prefix: bytes) -> None:
    assert subscription(pattern) == prefix


def test_exact_subscription_never_matches_longer_name() -> None:
    assert not audio_topic("mic2").startswith(subscription("mic"))
    assert audio_topic("mic").startswith(subscription("mic"))


# -- decode -------------------------------------------------------------------


def test_decode_audio_zero_copy_readonly() -> None:
    payload = bytearray(PAYLOAD)
    h, block = decode([b"audio/mic\x00", json.dumps(HEADER).encode(), payload])
    assert isinstance(h, AudioHeader)
    assert (h.stream, h.seq, h.index, h.rate, h.channels, h.frames) == ("mic", 0, 0, 48000, 2, 2)
    assert block.shape == (2, 2) and block.dtype == np.float32
    assert block.tolist() == [[0.0, 0.5], [-0.5, 1.0]]
    assert not block.flags.writeable
    payload[0:4] = struct.pack("<f", 9.0)  # a view of the frame, not a copy
    assert block[0, 0] == 9.0


def test_decode_accepts_extra_fields_and_int_time() -> None:
    h, _ = decode(frames(t=5, extra={"anything": [1]}))
    assert isinstance(h, AudioHeader) and h.t == 5.0


def test_decode_result_roundtrip() -> None:
    msg = ResultStream("vad", src="s").encode(
        {"speech": True}, stream="mic", index=0, frames=480, t=1.0
    )
    h, block = decode(msg)
    assert isinstance(h, ResultHeader) and block is None
    assert (h.processor, h.stream, h.data) == ("vad", "mic", {"speech": True})


def test_roundtrip_audio() -> None:
    s = AudioStream("mic", 16000, 3)
    data = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    h, block = decode(s.encode(data, 3.25))
    assert isinstance(h, AudioHeader)
    assert np.array_equal(block, data) and h.src == s.src and h.t == 3.25


MALFORMED = {
    "two frames": [b"audio/mic\x00", json.dumps(HEADER).encode()],
    "four frames": [*frames(), b""],
    "no NUL": frames(topic=b"audio/mic"),
    "bad kind prefix": frames(topic=b"video/mic\x00"),
    "bad name": frames(topic=b"audio/m c\x00", stream="m c"),
    "non-ascii topic": frames(topic=b"audio/\xff\x00"),
    "topic/stream mismatch": frames(topic=b"audio/mic2\x00"),
    "audio under result/": frames(topic=b"result/mic\x00"),
    "not JSON": [b"audio/mic\x00", b"{nope", PAYLOAD],
    "JSON array": [b"audio/mic\x00", b"[1,2]", PAYLOAD],
    "not UTF-8": [b"audio/mic\x00", b'{"x":"\xff"}', PAYLOAD],
    "header too big": [b"audio/mic\x00", b" " * (64 * 1024 + 1) + b"{}", PAYLOAD],
    "missing seq": frames(seq=...),
    "missing dtype": frames(dtype=...),
    "missing kind": frames(kind=...),
    "unknown kind": frames(kind="video"),
    "v 2": frames(v=2),
    "seq as string": frames(seq="0"),
    "seq as bool": frames(seq=True),
    "seq as float": frames(seq=1.0),
    "negative index": frames(index=-1),
    "rate 0": frames(rate=0),
    "channels 0": frames(channels=0, payload=b""),
    "frames 0": frames(frames=0, payload=b""),
    "t as string": frames(t="now"),
    "dtype int16": frames(dtype="int16"),
    "payload short": frames(payload=PAYLOAD[:-1]),
    "payload long": frames(payload=PAYLOAD + b"\0\0\0\0"),
    "result with payload": [
        b"result/vad\x00",
        b'{"kind":"result","v":1,"processor":"vad","stream":"mic","src":"s","seq":0,'
        b'"index":0,"frames":1,"t":1.0,"data":null}',
        b"x",
    ],
    "result name mismatch": [
        b"result/vad2\x00",
        b'{"kind":"result","v":1,"processor":"vad","stream":"mic","src":"s","seq":0,'
        b'"index":0,"frames":1,"t":1.0,"data":null}',
        b"",
    ],
    "result missing data": [
        b"result/vad\x00",
        b'{"kind":"result","v":1,"processor":"vad","stream":"mic","src":"s","seq":0,'
        b'"index":0,"frames":1,"t":1.0}',
        b"",
    ],
}


@pytest.mark.parametrize("case", MALFORMED)
def test_decode_rejects_malformed(case: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(MALFORMED[case])
    assert info.value.reason in {"frames", "topic", "name", "header", "payload", "size"}


def test_protocol_errors_are_one_family() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(ProtocolError, ValueError)


_frame = st.binary(max_size=64)
_headerish = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from([*HEADER, "processor", "data", "zz"]),
            st.one_of(
                st.integers(-5, 2**70),
                st.floats(),
                st.text(max_size=8),
                st.none(),
                st.booleans(),
                st.lists(st.integers(), max_size=3),
            ),
        ),
    ),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.one_of(_frame, st.sampled_from([b"audio/mic\x00", b"result/vad\x00"])),
    header=_headerish,
    payload=st.binary(max_size=64),
    extra=st.lists(_frame, max_size=2),
)
def test_decode_never_raises_anything_else(
    topic: bytes, header: bytes, payload: bytes, extra: list[bytes]
) -> None:
    try:
        decode([topic, header, payload, *extra])
    except RemoteProtocolError:
        pass


def test_decoder_counts_each_malformed_message_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from zaudio.decoding import Decoder

    log = logging.getLogger("zaudio.test-decoder")
    decoder = Decoder(log)
    good = AudioStream("mic", 48000, 1).encode(np.zeros((4, 1), np.float32), t=1.0)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        assert decoder([b"audio/mic\x00", b"{", b""]) is None
        assert decoder([b"only one frame"]) is None
        decoded = decoder(good)
    assert decoder.malformed == 2
    assert decoded is not None and decoded[0].stream == "mic" and decoded[1].shape == (4, 1)
    levels = [r.levelno for r in caplog.records if r.name == log.name]
    assert levels == [logging.WARNING, logging.DEBUG], caplog.text
    assert "dropped a malformed message" in caplog.records[0].getMessage()
