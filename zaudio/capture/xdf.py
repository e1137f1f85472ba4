"""An XDF 1.0 writer: a capture as the file LabRecorder users analyse.

XDF (https://github.com/sccn/xdf, specification 1.0) is ``b"XDF:"`` followed by
chunks, each ``[NumLengthBytes][Length][Tag u16][Content]`` with ``Length``
counting the tag and the content. This module writes:

- a FileHeader (tag 1);
- for each audio stream a StreamHeader (tag 2; ``float32``, ``nominal_srate`` the
  stream's rate, type ``Audio``) when its first block comes, then one Samples
  chunk (tag 3) per block: the first sample with its timestamp (the block's ``t``),
  the others without (a reader adds ``1 / nominal_srate``), so a gap shows as a
  jump in the timestamps, never as invented samples;
- for each processor a string marker stream (type ``Markers``, ``nominal_srate``
  0, one channel) whose samples are the results' header JSON, stamped with their ``t``;
- Boundary chunks (tag 5) every :data:`BOUNDARY_SECONDS` of recording, so a reader
  can resynchronise in a damaged file;
- for each stream its ClockOffset chunks (tag 4) and a StreamFooter (tag 6).

Timestamps are ``t``: Unix seconds in the proxy's time base. The clock offsets
are the capture's own measurements (its ``clock`` events): collection time on
the capture host's clock, and value ``capture host clock - proxy clock``, which
is what XDF means by the offset to add to a stream's timestamps to put them on
the recording host's clock. A capture with fewer than two measurements gets
offsets of 0 at its first and last timestamps (the host's clock is the proxy's).
"""

from __future__ import annotations

import os
import socket
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final
from xml.sax.saxutils import escape

import numpy as np

from zaudio.capture.summary import Captures, blocks
from zaudio.errors import ConfigError
from zaudio.protocol import AudioHeader, ResultHeader

__all__ = ["BOUNDARY_SECONDS", "XdfExport", "write_xdf"]

#: Seconds of recording (by receive time) between Boundary chunks.
BOUNDARY_SECONDS: Final = 10.0
_BOUNDARY: Final = bytes(
    [0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F, 0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4]
)
_XML: Final = '<?xml version="1.0"?>'


def _varlen(n: int) -> bytes:
    if n < 256:
        return bytes([1, n])
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


@dataclass
class _Stream:
    id: int
    name: str
    count: int = 0
    first: float | None = None
    last: float = 0.0


@dataclass
class XdfExport:
    """What :func:`write_xdf` wrote: samples per stream (audio) and markers (results)."""

    path: Path
    samples: dict[str, int] = field(default_factory=dict)
    markers: dict[str, int] = field(default_factory=dict)
    offsets: int = 0


class _Writer:
    def __init__(self, f: BinaryIO, host: str) -> None:
        self.f = f
        self.host = host
        self.streams: dict[str, _Stream] = {}

    def header(self, key: str, name: str, kind: str, channels: int, rate: int, fmt: str) -> _Stream:
        s = self.streams[key] = _Stream(len(self.streams) + 1, name)
        xml = (
            f"{_XML}<info><name>{escape(name)}</name><type>{kind}</type>"
            f"<channel_count>{channels}</channel_count><nominal_srate>{rate}</nominal_srate>"
            f"<channel_format>{fmt}</channel_format><source_id>zaudio:{escape(key)}</source_id>"
            f"<version>1.1</version><created_at>0</created_at><uid>{uuid.uuid4()}</uid>"
            f"<session_id>default</session_id><hostname>{escape(self.host)}</hostname>"
            "<desc><acquisition><manufacturer>zaudio</manufacturer></acquisition></desc></info>"
        )
        self.f.write(_chunk(2, struct.pack("<I", s.id) + xml.encode()))
        return s

    def audio(self, s: _Stream, h: AudioHeader, block: Any) -> None:
        n, ch = h.frames, h.channels
        rows = np.zeros(n, np.dtype([("stamped", "u1"), ("values", "<f4", (ch,))]))
        rows["values"] = block
        body = bytearray(struct.pack("<I", s.id) + _varlen(n))
        body += b"\x08" + struct.pack("<d", h.t) + rows[:1]["values"].tobytes()
        body += rows[1:].tobytes()
        self.f.write(_chunk(3, bytes(body)))
        self._count(s, h.t, h.t + (n - 1) / h.rate, n)

    def marker(self, s: _Stream, t: float, text: bytes) -> None:
        body = struct.pack("<I", s.id) + _varlen(1) + b"\x08" + struct.pack("<d", t)
        self.f.write(_chunk(3, body + _varlen(len(text)) + text))
        self._count(s, t, t, 1)

    @staticmethod
    def _count(s: _Stream, first: float, last: float, n: int) -> None:
        if s.first is None:
            s.first = first
        s.last = last
        s.count += n

    def finish(self, clocks: list[tuple[float, float]]) -> int:
        """ClockOffset chunks and a footer for every stream; returns offsets written."""
        written = 0
        for s in self.streams.values():
            first = s.first if s.first is not None else 0.0
            offsets = clocks if len(clocks) >= 2 else [(first, 0.0), (s.last, 0.0)]
            xml_offsets = ""
            for when, value in offsets:
                self.f.write(_chunk(4, struct.pack("<Idd", s.id, when, value)))
                xml_offsets += f"<offset><time>{when!r}</time><value>{value!r}</value></offset>"
                written += 1
            xml = (
                f"{_XML}<info><first_timestamp>{first!r}</first_timestamp>"
                f"<last_timestamp>{s.last!r}</last_timestamp><sample_count>{s.count}"
                f"</sample_count><clock_offsets>{xml_offsets}</clock_offsets></info>"
            )
            self.f.write(_chunk(6, struct.pack("<I", s.id) + xml.encode()))
        return written


def write_xdf(paths: list[str | os.PathLike[str]], out: str | os.PathLike[str]) -> XdfExport:
    """Write every stream (and every processor's results) of a capture to an XDF file."""
    out = Path(out)
    report = XdfExport(out)
    try:
        f = open(out, "wb")  # noqa: SIM115 (closed below, also on errors)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    with f, Captures(paths) as caps:
        f.write(b"XDF:")
        f.write(_chunk(1, f"{_XML}<info><version>1.0</version></info>".encode()))
        w = _Writer(f, socket.gethostname())
        boundary: float | None = None
        channels: dict[str, int] = {}

        def audio_only() -> Any:
            nonlocal boundary
            for item in caps.decoded():
                rec = item[0]
                if boundary is None or rec.time - boundary >= BOUNDARY_SECONDS:
                    boundary = rec.time
                    f.write(_chunk(5, _BOUNDARY))
                if type(item[1]) is ResultHeader:
                    h = item[1]
                    key = "result/" + h.processor
                    s = w.streams.get(key) or w.header(key, h.processor, "Markers", 1, 0, "string")
                    w.marker(s, h.t, rec.header)
                    continue
                yield item

        for p in blocks(audio_only()):
            h = p.header
            key = "audio/" + h.stream
            if channels.setdefault(key, h.channels) != h.channels:  # a restart in a new format
                key = f"audio/{h.stream}#{h.src}"
            s = w.streams.get(key) or w.header(
                key, h.stream, "Audio", h.channels, h.rate, "float32"
            )
            w.audio(s, h, p.block)
        clocks = [
            (float(e["time"]), -float(e["offset"]))
            for e in caps.named("clock")
            if isinstance(e.get("time"), int | float) and isinstance(e.get("offset"), int | float)
        ]
        report.offsets = w.finish(clocks)
        for key, s in w.streams.items():
            (report.samples if key.startswith("audio/") else report.markers)[s.name] = s.count
    return report
