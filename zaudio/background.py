"""A node that runs in this thread (``run``) or in a background one (``start``/``stop``)."""

from __future__ import annotations

import logging
import threading
from typing import TypeVar

__all__ = ["Background"]

log = logging.getLogger("zaudio")

_B = TypeVar("_B", bound="Background")


class Background:
    """``start()``, ``stop()`` and ``with`` around a blocking ``run(stop)`` (mixed in).

    The class sets ``_stop`` (the event ``run`` watches), ``_thread`` (None) and
    ``error`` (None) in its ``__init__``, and says what it is in :meth:`_what`.
    """

    _stop: threading.Event
    _thread: threading.Thread | None
    #: what ended a background run (:meth:`start`) with an error, if anything
    error: BaseException | None

    def run(self, stop: threading.Event | None = None) -> None:
        raise NotImplementedError

    def _what(self) -> str:
        raise NotImplementedError

    def start(self: _B) -> _B:
        """Run in a background thread (see :meth:`run`); stop it with :meth:`stop`."""
        name = "zaudio-" + self._what().partition(" ")[0]
        self._thread = threading.Thread(target=self._run_thread, name=name)
        self._thread.start()
        return self

    def _run_thread(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.error = exc
            log.error("%s stopped: %s", self._what(), exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask :meth:`run` to finish; wait for the background thread if :meth:`start` made one."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self: _B) -> _B:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
