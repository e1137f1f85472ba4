"""The zaudio wire protocol, version 1, with no I/O in it.

Frames in, validated frozen headers and read-only arrays out, and back
(see docs/protocol.md). A data message is exactly three frames::

    b"audio/mic\\x00"   JSON header   float32 payload (frames x channels, little-endian)

Decoding never raises anything but :class:`~zaudio.errors.RemoteProtocolError`;
encoding raises :class:`~zaudio.errors.LocalProtocolError` for what cannot be sent.
Names and topic frames are :mod:`zaudio.names` (re-exported here).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from zaudio.errors import LocalProtocolError, RemoteProtocolError
from zaudio.names import (
    AUDIO,
    MAX_NAME,
    READY,
    RESULT,
    _parse_topic,
    audio_topic,
    new_src,
    result_topic,
    subscription,
    validate_name,
)

__all__ = [
    "MAX_HEADER",
    "MAX_NAME",
    "MAX_PAYLOAD",
    "READY",
    "VERSION",
    "AudioHeader",
    "AudioStream",
    "ResultHeader",
    "ResultStream",
    "audio_topic",
    "count_nonfinite",
    "decode",
    "new_src",
    "result_topic",
    "subscription",
    "validate_name",
    "view_block",
]

VERSION: Final = 1
MAX_HEADER: Final = 64 * 1024
#: Our own cap on one payload: 64 MiB, about 5.8 minutes of mono 48 kHz audio. The
#: proxy caps each publish-in frame at 64 MiB + 64 KiB (docs/protocol.md, "Limits
#: zaudio adds").
MAX_PAYLOAD: Final = 64 * 1024 * 1024

Block: TypeAlias = npt.NDArray[np.float32]

_NonNeg = Annotated[int, msgspec.Meta(ge=0)]
_Pos = Annotated[int, msgspec.Meta(ge=1)]


class AudioHeader(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="audio"):
    """Header of one audio block (docs/protocol.md, "Header frame")."""

    v: Literal[1]
    stream: str
    src: str
    seq: _NonNeg
    index: _NonNeg
    t: float
    rate: _Pos
    channels: _Pos
    frames: _Pos
    dtype: Literal["float32"]


class ResultHeader(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="result"):
    """Header of one processor result; the payload is empty and ``data`` is the result."""

    v: Literal[1]
    processor: str
    stream: str
    src: str
    seq: _NonNeg
    index: _NonNeg
    frames: _NonNeg
    t: float
    data: Any


Header: TypeAlias = AudioHeader | ResultHeader


def _enc_hook(obj: Any) -> Any:
    # numpy scalars and arrays in results become plain JSON numbers and lists.
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON")


_F32: Final = np.dtype("<f4")
# The dtype float32 arrays carry here, if it is the wire's (little-endian) one.
_F32N: Final = np.dtype(np.float32) if sys.byteorder == "little" else None
_decoder: Final = msgspec.json.Decoder(Header)
_encoder: Final = msgspec.json.Encoder(enc_hook=_enc_hook)


def decode(
    frames: Sequence[Any],
) -> tuple[AudioHeader, Block] | tuple[ResultHeader, None]:
    """Decode one data message.

    Parameters
    ----------
    frames : sequence of bytes-like
        The received frames (``bytes``, ``memoryview`` or ``zmq.Frame``). The
        payload is not copied: the returned block is a read-only view of it.

    Returns
    -------
    (AudioHeader, ndarray) or (ResultHeader, None)
        For audio, a read-only float32 array of shape ``(frames, channels)``.

    Raises
    ------
    RemoteProtocolError
        For anything that does not fit docs/protocol.md; nothing else.
    """
    if len(frames) != 3:
        raise RemoteProtocolError(f"expected 3 frames, got {len(frames)}", "frames")
    topic_f, header_f, payload_f = frames
    try:
        topic = topic_f if type(topic_f) is bytes else bytes(topic_f)
        payload = memoryview(payload_f)
        header_len = len(header_f)
    except TypeError:
        raise RemoteProtocolError("frames are not bytes-like", "frames") from None
    kind, name = _parse_topic(topic)
    if header_len > MAX_HEADER:
        raise RemoteProtocolError(f"header of {header_len} bytes exceeds 64 KiB", "size")
    try:
        header = _decoder.decode(header_f)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError(f"bad header: {exc}", "header") from None
    except msgspec.DecodeError as exc:
        raise RemoteProtocolError(f"header is not JSON: {exc}", "header") from None
    if type(header) is AudioHeader:
        if kind is not AUDIO or header.stream != name:
            raise RemoteProtocolError("topic and header stream disagree", "topic")
        if payload.nbytes != header.frames * header.channels * 4:
            raise RemoteProtocolError(
                f"payload has {payload.nbytes} bytes, header says "
                f"{header.frames} x {header.channels} x 4",
                "payload",
            )
        return header, view_block(payload, (header.frames, header.channels))
    assert type(header) is ResultHeader  # the decoder yields one of the two
    if kind is not RESULT or header.processor != name:
        raise RemoteProtocolError("topic and header processor disagree", "topic")
    if payload.nbytes:
        raise RemoteProtocolError("a result carries an empty payload", "payload")
    return header, None


def view_block(payload: memoryview, shape: tuple[int, int]) -> Block:
    """A read-only float32 array of ``shape`` over ``payload`` (of the right size), no copy."""
    # A read-only view makes a read-only array: cheaper than setting its flags
    # (this runs once per block, often on a cold cache; see docs/benchmarks.md).
    if not payload.readonly:
        payload = payload.toreadonly()
    return np.ndarray(shape, _F32, payload)


def _as_block(block: npt.ArrayLike, channels: int) -> Block:
    if (
        type(block) is np.ndarray
        and block.dtype is _F32N
        and block.ndim == 2
        and block.shape[1] == channels
        and block.flags.c_contiguous
        and 0 < block.nbytes <= MAX_PAYLOAD
    ):
        # what a publisher sends nearly always: no numpy calls (~9 us less cold)
        return block
    arr = np.asarray(block)
    if arr.dtype != np.float32 or arr.dtype.byteorder == ">":
        if arr.dtype.kind != "f":
            raise LocalProtocolError(
                f"cannot send a block of dtype {arr.dtype}: send float samples (float32)",
                "payload",
            )
        arr = arr.astype("<f4")
    if arr.ndim == 1 and channels == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != channels or arr.shape[0] < 1:
        raise LocalProtocolError(
            f"block of shape {arr.shape} does not fit (frames, {channels}) with frames >= 1",
            "payload",
        )
    if arr.nbytes > MAX_PAYLOAD:
        raise LocalProtocolError(f"block of {arr.nbytes} bytes exceeds the 64 MiB cap", "size")
    return np.ascontiguousarray(arr)


class AudioStream:
    """Encoder state of one published audio stream: topic, ``src``, ``seq``, ``index``.

    Parameters
    ----------
    name : str
        The stream name.
    rate, channels : int
        The stream's format.
    src : str, optional
        The publisher-run id; a fresh random one by default.
    """

    __slots__ = ("channels", "index", "name", "rate", "seq", "src", "topic")

    def __init__(self, name: str, rate: int, channels: int, src: str | None = None) -> None:
        self.topic = audio_topic(name)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            raise LocalProtocolError(f"rate must be a positive integer, got {rate!r}", "header")
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise LocalProtocolError(f"channels must be >= 1, got {channels!r}", "header")
        self.name = name
        self.rate = rate
        self.channels = channels
        self.src = src or new_src()
        self.seq = 0
        self.index = 0

    def encode(
        self, block: npt.ArrayLike, t: float, index: int | None = None
    ) -> list[bytes | Block]:
        """Frames for the next block, advancing ``seq`` and ``index``.

        ``index`` overrides the running frame index (a processor carrying its
        input's index); by default the block follows the previous one.
        """
        arr = _as_block(block, self.channels)
        frames = arr.shape[0]
        if index is None:
            index = self.index
        header = AudioHeader(
            v=1,
            stream=self.name,
            src=self.src,
            seq=self.seq,
            index=index,
            t=t,
            rate=self.rate,
            channels=self.channels,
            frames=frames,
            dtype="float32",
        )
        self.seq += 1
        self.index = index + frames
        return [self.topic, _encoder.encode(header), arr]

    def skip(self, frames: int) -> None:
        """Account for a block that was not sent: ``seq`` and ``index`` advance."""
        self.seq += 1
        self.index += frames


def count_nonfinite(data: Any) -> int:
    """NaN and infinite numbers in ``data`` (floats, numpy values, in lists/tuples/dicts)."""
    count = 0
    stack = [data]
    while stack:
        obj = stack.pop()
        if isinstance(obj, float):  # np.float64 too
            count += not math.isfinite(obj)
        elif isinstance(obj, np.ndarray | np.generic):
            if obj.dtype.kind == "f":
                count += int(obj.size - np.count_nonzero(np.isfinite(obj)))
            elif obj.dtype.kind == "O":
                stack.extend(np.asarray(obj).ravel().tolist())
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
    return count


class ResultStream:
    """Encoder state of one processor's results: topic, ``src``, ``seq``.

    JSON has no NaN or infinity: such a number in a result is sent as ``null``
    and counted in :attr:`nonfinite` (for the node's stats), never refused, so
    the rest of the result still arrives.

    Attributes
    ----------
    nonfinite : int
        NaN and infinite numbers sent as ``null`` so far, over all results.
    """

    __slots__ = ("name", "nonfinite", "seq", "src", "topic")

    def __init__(self, processor: str, src: str | None = None) -> None:
        self.topic = result_topic(processor)
        self.name = processor
        self.src = src or new_src()
        self.seq = 0
        self.nonfinite = 0

    def encode(self, data: Any, *, stream: str, index: int, frames: int, t: float) -> list[bytes]:
        """Frames for one result computed from ``frames`` frames of ``stream`` at ``index``."""
        header = ResultHeader(
            v=1,
            processor=self.name,
            stream=stream,
            src=self.src,
            seq=self.seq,
            index=index,
            frames=frames,
            t=t,
            data=data,
        )
        try:
            raw = _encoder.encode(header)
        except (TypeError, NotImplementedError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"result is not JSON-able: {exc}", "header") from exc
        if len(raw) > MAX_HEADER:
            raise LocalProtocolError(f"result header of {len(raw)} bytes exceeds 64 KiB", "size")
        if b"null" in raw:  # msgspec writes NaN and inf as null: count them (rarely walked)
            self.nonfinite += count_nonfinite(data)
        self.seq += 1
        return [self.topic, raw, b""]


def encode_json(obj: Any) -> bytes:
    """JSON bytes of ``obj`` (numpy values become numbers); used by the control channel."""
    return _encoder.encode(obj)


def decode_json(raw: Any) -> Any:
    """Parse JSON bytes; raises :class:`RemoteProtocolError` when they are not JSON."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise RemoteProtocolError(f"not JSON: {exc}", "header") from None
