"""The capture writer: append-only, crash-safe, rotating.

Each record goes to the kernel in one ``writev`` as soon as it is made, so a
capture killed with SIGKILL loses nothing it had received, and at most the last
record is torn (the reader ignores it). The file is fsynced at most
:data:`FSYNC_INTERVAL` seconds after a write, so a power cut loses about that
much. A write that fails (disk full, quota, I/O error) is cut back to the end
of the last whole record, so the file stays valid, and raises
:class:`~zaudio.errors.CaptureError`.

With rotation (``rotate_bytes`` / ``rotate_seconds``) the capture is a series
of files ``NAME.0000.EXT``, ``NAME.0001.EXT``, ...: each one a whole capture
(header, ``start`` event with its ``part`` number, ``end`` event).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any, Final

from zaudio.capture.format import event_record, file_header, message_prefix
from zaudio.errors import CaptureError, ConfigError

__all__ = ["FSYNC_INTERVAL", "CaptureWriter", "part_path"]

#: Seconds between fsyncs of a capture file that is being written.
FSYNC_INTERVAL: Final = 1.0


def part_path(path: Path, part: int) -> Path:
    """The file of rotation part ``part``: ``run.zcap`` -> ``run.0003.zcap``."""
    return path.with_name(f"{path.stem}.{part:04d}{path.suffix}")


class CaptureWriter:
    """Write capture records to ``path`` (or a rotating series of files).

    Parameters
    ----------
    path : str or Path
        The capture file; refused if it (or its first part) exists already.
    start : dict
        Fields of the ``start`` event written at the head of every file.
    rotate_bytes, rotate_seconds : float, optional
        Begin a new file once the current one holds this many bytes, or this
        many seconds have passed since it was opened.

    Attributes
    ----------
    paths : list of Path
        Every file written so far, in order.
    messages, bytes : int
        Message records written and bytes written, over all files.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start: dict[str, Any],
        rotate_bytes: float | None = None,
        rotate_seconds: float | None = None,
    ) -> None:
        self.base = Path(path)
        self.rotating = rotate_bytes is not None or rotate_seconds is not None
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.start_fields = dict(start)
        self.paths: list[Path] = []
        self.messages = 0
        self.bytes = 0
        self._fd = -1
        self._size = 0
        self._opened = 0.0
        self._dirty_since: float | None = None
        self._open(0)

    def _open(self, part: int) -> None:
        path = part_path(self.base, part) if self.rotating else self.base
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise ConfigError(
                f"{path} exists already: give a new file name (a capture never overwrites)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
        self._fd = fd
        self._size = 0
        self._opened = time.monotonic()
        self.paths.append(path)
        self._write([file_header(), event_record({**self.start_fields, "part": part})])

    @property
    def path(self) -> Path:
        """The file being written now."""
        return self.paths[-1]

    def message(self, t: float, topic: bytes, header: Any, payload: Any) -> None:
        """Append one data message received at ``t`` (frames as bytes-like objects)."""
        if self.rotating:
            self._maybe_rotate()
        self._write([message_prefix(t, topic, header, payload), topic, header, payload])
        self.messages += 1

    def event(self, data: dict[str, Any]) -> None:
        """Append one event (a JSON object with an ``"event"`` field)."""
        self._write([event_record(data)])

    def _maybe_rotate(self) -> None:
        full = self.rotate_bytes is not None and self._size >= self.rotate_bytes
        old = (
            self.rotate_seconds is not None
            and time.monotonic() - self._opened >= self.rotate_seconds
        )
        if full or old:
            self._finish({"event": "end", "rotated": True})
            self._open(len(self.paths))

    def _write(self, parts: list[Any]) -> None:
        fd = self._fd
        total = sum(memoryview(p).nbytes for p in parts)
        try:
            n = os.writev(fd, parts)
            if n != total:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            self._cut()
            self.close_fd()
            what = (
                "the disk is full"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
                else exc.strerror
            )
            raise CaptureError(
                f"capture stopped: {what} writing {self.path} ({self.messages} messages kept; "
                "the file is valid): free some space or use --rotate"
            ) from None
        self._size += n
        self.bytes += n
        now = time.monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        elif now - self._dirty_since >= FSYNC_INTERVAL:
            self.sync()

    def _cut(self) -> None:
        """Truncate a partly written record off the end (best effort)."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass  # the reader ignores a torn end anyway

    def sync(self) -> None:
        """fsync the file being written."""
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            except OSError:
                pass  # counted as nothing: the data is in the kernel already
        self._dirty_since = None

    def _finish(self, end: dict[str, Any]) -> None:
        self._write([event_record(end)])
        self.sync()
        self.close_fd()

    def close(self, end: dict[str, Any]) -> None:
        """Write the ``end`` event and close (idempotent)."""
        if self._fd >= 0:
            self._finish(end)

    def close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_SIZES: Final = {
    "b": 1,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_rotate(text: str) -> tuple[float | None, float | None]:
    """``--rotate``: a size (``100MB``, ``1GiB``) or a duration (``10m``, ``1h``).

    Returns ``(rotate_bytes, rotate_seconds)``, one of them None.
    """
    from zaudio.units import parse_duration

    raw = text.strip().lower()
    for unit in sorted(_SIZES, key=len, reverse=True):
        if raw.endswith(unit):
            number = raw[: -len(unit)].strip()
            try:
                size = float(number) * _SIZES[unit]
            except ValueError:
                break
            if size < 4096:
                raise ConfigError(f"invalid --rotate {text!r}: use at least 4kB")
            return size, None
    try:
        return None, parse_duration(text, "--rotate")
    except ConfigError:
        raise ConfigError(
            f"invalid --rotate {text!r}: use a size (100MB, 1GiB) or a duration (10m, 1h)"
        ) from None
