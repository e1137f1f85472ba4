"""What a processor does when the user's code fails: count, log (rate-limited), or stop.

One :class:`Failures` per processor handles every failure of the user's code:
a raising call (``on_error="log"``: counted, logged at most every
:data:`LOG_INTERVAL` seconds with how many were not shown; ``"stop"``: raise
:class:`~zaudio.errors.ProcessorFailed`), a return value that cannot be
published, a failing ``setup()`` or ``close()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from zaudio.errors import ConfigError, ProcessorFailed
from zaudio.perstream import PerStream
from zaudio.tracking import Info

__all__ = ["LOG_INTERVAL", "Failures", "OnError"]

log = logging.getLogger(__name__)

#: Seconds between two logged failures of the user function (others are counted).
LOG_INTERVAL = 5.0

OnError = Literal["log", "stop"]


class Failures:
    """Failure counters and policy of one processor.

    Attributes
    ----------
    failed : int
        Calls that raised, and returned values that could not be published (also
        counted in ``streams``, per input stream, when given: :mod:`zaudio.perstream`).
    """

    def __init__(self, name: str, on_error: OnError, streams: PerStream | None = None) -> None:
        self.name = name
        self.streams = streams
        self.on_error = on_error
        self.failed = 0
        self._last_log = -LOG_INTERVAL
        self._unlogged = 0

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            return True
        self._unlogged += 1
        return False

    def call_failed(self, exc: Exception, info: Info) -> None:
        """The function raised on ``info``'s block: count, then log or raise by ``on_error``."""
        self._count(info)
        if self.on_error == "stop":
            log.error(
                "processor %r failed on %s seq %d", self.name, info.stream, info.seq, exc_info=exc
            )
            raise ProcessorFailed(
                f"processor {self.name!r} raised on stream {info.stream!r} seq {info.seq}: "
                f"{exc!r} (--on-error stop)"
            ) from exc
        if self._due():
            more = f" ({self._unlogged} more failures not shown)" if self._unlogged else ""
            log.error(
                "processor %r raised on stream %r seq %d%s",
                self.name,
                info.stream,
                info.seq,
                more,
                exc_info=exc,
            )
            self._unlogged = 0

    def unpublishable(self, exc: Exception, info: Info) -> None:
        """The function returned something that cannot be sent (counted, logged rate-limited)."""
        self._count(info)
        if self._due():
            log.error(
                "processor %r returned something it cannot publish (stream %r seq %d): %s",
                self.name,
                info.stream,
                info.seq,
                exc,
            )
            self._unlogged = 0

    def _count(self, info: Info) -> None:
        self.failed += 1
        counts = self.streams.get(info.stream) if self.streams is not None else None
        if counts is not None:
            counts.failed += 1

    def setup(self, setup: Callable[[Info], Any] | None, info: Info) -> None:
        """Run the class's ``setup(info)``: a ConfigError stays one (exit 2), others stop."""
        if setup is None:
            return
        try:
            setup(info)
        except ConfigError:
            raise  # a parameter that does not fit this stream: one line, exit 2
        except Exception as exc:
            raise ProcessorFailed(f"setup() of processor {self.name!r} failed: {exc!r}") from exc

    def close(self, close: Callable[[], Any] | None) -> None:
        """Run the class's ``close()``; a failure is logged, not raised."""
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("close() of processor %r failed", self.name)
