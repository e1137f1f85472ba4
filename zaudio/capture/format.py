"""The capture file format, version 1: framed, checksummed records, no I/O policy.

A capture file (docs/capture.md has the byte layout, for readers in any language)
is a 12-byte file header followed by records::

    b"\\x89ZCAP\\r\\n\\n"  u32 version (1)
    record := b"ZREC"  u32 length  u32 crc  body[length]

``crc`` is the CRC-32 (zlib's, as in gzip and PNG) of the 4 length bytes and the
body, so a torn or corrupted record is found, never misread. The body's first byte
says what it is: :data:`MESSAGE` (one data message as it came off the wire, with
its receive time) or :data:`EVENT` (a JSON object: session start, clock offsets,
the capture's counters, the end).

:class:`CaptureFile` reads a file record by record. A record that does not check
out is skipped: the reader looks for the next ``ZREC`` whose record checks out,
and counts the regions and bytes it skipped (:attr:`CaptureFile.corrupt`,
:attr:`CaptureFile.corrupt_bytes`). Bytes after the last whole record that hold
no whole record are a torn end (:attr:`CaptureFile.torn_bytes`): what a crash
mid-write leaves, ignored, never fatal.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from zaudio.errors import CaptureFileError
from zaudio.protocol import MAX_HEADER, MAX_PAYLOAD

__all__ = [
    "EVENT",
    "FILE_MAGIC",
    "MAX_BODY",
    "MESSAGE",
    "RECORD_MAGIC",
    "VERSION",
    "CaptureFile",
    "Event",
    "Message",
    "event_record",
    "file_header",
    "message_prefix",
]

FILE_MAGIC: Final = b"\x89ZCAP\r\n\n"
VERSION: Final = 1
RECORD_MAGIC: Final = b"ZREC"
MESSAGE: Final = 1
EVENT: Final = 2
#: the largest body a record may have: a whole data message and its framing
MAX_BODY: Final = MAX_PAYLOAD + MAX_HEADER + 1024

_FILE_HEADER = struct.Struct("<8sI")
_FRAMING = struct.Struct("<4sII")  # magic, length, crc
_MESSAGE = struct.Struct("<BdHI")  # kind, receive time, topic length, header length


@dataclass(frozen=True)
class Message:
    """One recorded data message: the three frames as received, and when.

    ``time`` is the capture host's clock (Unix seconds) when it was received;
    ``payload`` is a read-only view into the file (valid while it is open).
    """

    time: float
    topic: bytes
    header: bytes
    payload: memoryview
    offset: int


@dataclass(frozen=True)
class Event:
    """One event record: a JSON object with an ``"event"`` field."""

    data: dict[str, Any]
    offset: int


def file_header() -> bytes:
    """The 12 bytes every capture file starts with."""
    return _FILE_HEADER.pack(FILE_MAGIC, VERSION)


def _framing(body_len: int, crc: int) -> bytes:
    return _FRAMING.pack(RECORD_MAGIC, body_len, crc)


def message_prefix(time: float, topic: bytes, header: Any, payload: Any) -> bytes:
    """Framing and fixed fields of a message record; write ``topic``, ``header``,
    ``payload`` right after it (so the payload is never copied)."""
    fixed = _MESSAGE.pack(MESSAGE, time, len(topic), len(header))
    body_len = len(fixed) + len(topic) + len(header) + len(payload)
    crc = zlib.crc32(struct.pack("<I", body_len))
    for part in (fixed, topic, header, payload):
        crc = zlib.crc32(part, crc)
    return _framing(body_len, crc) + fixed


def event_record(data: dict[str, Any]) -> bytes:
    """A whole event record for the JSON object ``data``."""
    body = bytes([EVENT]) + json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    crc = zlib.crc32(body, zlib.crc32(struct.pack("<I", len(body))))
    return _framing(len(body), crc) + body


class CaptureFile:
    """Read one capture file, skipping (and counting) what does not check out.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Raises
    ------
    CaptureFileError
        The file cannot be read, is not a capture, or has a newer version.

    Attributes
    ----------
    records : int
        Whole records read so far.
    corrupt, corrupt_bytes : int
        Damaged regions skipped before a later whole record, and their bytes.
    torn_bytes : int
        Bytes after the last whole record (a write the capture did not finish).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                head = f.read(_FILE_HEADER.size)
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except OSError as exc:
            raise CaptureFileError(f"cannot read {self.path}: {exc.strerror}") from None
        if len(head) < _FILE_HEADER.size or head[:8] != FILE_MAGIC:
            self.close()
            raise CaptureFileError(
                f"{self.path} is not a zaudio capture (it does not start with the capture "
                "header): give a file written by 'zaudio capture'"
            )
        version = _FILE_HEADER.unpack(head)[1]
        if version != VERSION:
            self.close()
            raise CaptureFileError(
                f"{self.path} is a capture of format version {version}; this zaudio reads "
                f"version {VERSION}: upgrade zaudio"
            )
        self.size = size
        self.records = 0
        self.corrupt = 0
        self.corrupt_bytes = 0
        self.torn_bytes = 0

    def __iter__(self) -> Iterator[Message | Event]:
        buf = self._map
        assert buf is not None  # a file with a header is not empty
        self.records = self.corrupt = self.corrupt_bytes = self.torn_bytes = 0
        view = memoryview(buf)
        pos = _FILE_HEADER.size
        size = self.size
        try:
            while pos < size:
                found = self._record_at(view, pos)
                if found is None:
                    nxt = self._next_whole(view, pos + 1)
                    if nxt is None:
                        self.torn_bytes = size - pos
                        return
                    self.corrupt += 1
                    self.corrupt_bytes += nxt - pos
                    pos = nxt
                    continue
                record, end = found
                self.records += 1
                yield record
                pos = end
        finally:
            view.release()

    def _record_at(self, view: memoryview, pos: int) -> tuple[Message | Event, int] | None:
        """The whole record at ``pos`` and where it ends, or None if there is none."""
        start = pos + _FRAMING.size
        if start > self.size or bytes(view[pos : pos + 4]) != RECORD_MAGIC:
            return None
        _, length, crc = _FRAMING.unpack_from(view, pos)
        end = start + length
        if length < 1 or length > MAX_BODY or end > self.size:
            return None
        body = view[start:end]
        if zlib.crc32(body, zlib.crc32(view[pos + 4 : pos + 8])) != crc:
            return None
        kind = body[0]
        if kind == MESSAGE:
            if length < _MESSAGE.size:
                return None
            _, t, topic_len, header_len = _MESSAGE.unpack_from(body)
            a = _MESSAGE.size
            b = a + topic_len
            c = b + header_len
            if c > length:
                return None
            msg = Message(t, bytes(body[a:b]), bytes(body[b:c]), body[c:].toreadonly(), pos)
            return msg, end
        if kind == EVENT:
            try:
                data = json.loads(bytes(body[1:]))
            except ValueError:
                return None
            if not isinstance(data, dict):
                return None
            return Event(data, pos), end
        return None  # a kind this version does not know: skipped like damage

    def _next_whole(self, view: memoryview, pos: int) -> int | None:
        """The offset of the next whole record at or after ``pos``, or None."""
        buf = self._map
        assert buf is not None
        while True:
            pos = buf.find(RECORD_MAGIC, pos)
            if pos < 0:
                return None
            if self._record_at(view, pos) is not None:
                return pos
            pos += 1

    def close(self) -> None:
        """Release the file (views of payloads become invalid)."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a payload view is still alive; the map goes with it
            self._map = None

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
