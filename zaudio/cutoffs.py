"""Publishers the proxy cut off: a socket monitor on the publish-in (XSUB) socket.

libzmq enforces the proxy's frame-size cap (``MAXMSGSIZE``) by closing the
publisher's connection, and says nothing else: the socket monitor shows the same
``DISCONNECTED`` event whether libzmq closed the connection (a frame over the
cap, a failed handshake such as an unknown CURVE key, a ZMTP protocol error) or
the publisher closed it (it stopped). This module tells the two apart.

At ``ACCEPTED`` (the event's value is the accepted connection's file
descriptor, zmq_socket_monitor(3)) the watch keeps a duplicate of the
descriptor. At ``DISCONNECTED`` libzmq has closed its own descriptor, but the
duplicate still holds the TCP connection, so one non-blocking ``MSG_PEEK`` says
who ended it: end of stream means the publisher closed it (``closed``); data
still arriving or none yet means the publisher is still there and the proxy
dropped it (``cut_off``); a reset means the connection failed (``failed``).
Then the duplicate is closed, which ends the connection for the publisher too.
A connection libzmq refuses at the handshake (``HANDSHAKE_FAILED_AUTH`` or
``_PROTOCOL``, which come just before its ``DISCONNECTED``) is ``refused``.

The duplicate is checked to be a connection on the publish-in port before it is
kept (a descriptor number is reused once closed). Where descriptors cannot be
duplicated this way (not POSIX), every ``DISCONNECTED`` is only counted as
``disconnected``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

__all__ = ["PublisherWatch"]

log = logging.getLogger(__name__)

_EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_REFUSED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
_CAN_PEEK = os.name == "posix" and hasattr(socket, "MSG_DONTWAIT")


class PublisherWatch:
    """Counts publish-in connections: accepted, closed by the publisher, cut off by the proxy.

    Make it before the socket binds (so no connection is missed), call
    :meth:`start` once the socket is bound; it stops when the context is
    terminated. Its thread owns the monitor's PAIR socket and the duplicates.

    Attributes
    ----------
    accepted : int
        Connections accepted.
    closed : int
        Ended by the publisher.
    cut_off : int
        Ended by the proxy after the handshake, the publisher still connected:
        a frame over the size cap (or a ZMTP protocol error).
    refused : int
        Ended by the proxy at the handshake: an unknown CURVE key, or not ZMTP
        (libzmq's ``HANDSHAKE_FAILED_AUTH``/``_PROTOCOL`` events).
    failed : int
        Reset, timed out, or broken during the handshake.
    disconnected : int
        Ended, cause unknown.
    """

    def __init__(self, ctx: zmq.Context[Any], sock: zmq.Socket[Any], max_message: int) -> None:
        self.max_message = max_message
        self.accepted = self.closed = self.cut_off = self.refused = 0
        self.failed = self.disconnected = 0
        # libzmq's one I/O thread reports a failed handshake and then, next, the
        # DISCONNECTED of that same connection
        self._handshake: str | None = None
        self.port: int | None = None
        self._dups: dict[int, socket.socket] = {}
        address = f"inproc://zaudio-publish-in-{secrets.token_hex(4)}"
        sock.monitor(address, _EVENTS)
        self._pair: zmq.Socket[Any] = ctx.socket(zmq.PAIR)
        self._pair.linger = 0
        self._pair.connect(address)  # before any event: PAIR drops what it cannot deliver
        self._thread = threading.Thread(target=self._run, name="zaudio-publish-in", daemon=True)

    @property
    def connected(self) -> int:
        """Publish-in connections open now."""
        ended = self.closed + self.cut_off + self.refused + self.failed + self.disconnected
        return max(0, self.accepted - ended)

    def counters(self) -> dict[str, int]:
        return {
            "connected": self.connected,
            "accepted": self.accepted,
            "closed": self.closed,
            "cut_off": self.cut_off,
            "refused": self.refused,
            "failed": self.failed,
            "disconnected": self.disconnected,
        }

    def start(self, port: int) -> threading.Thread:
        """Start watching; ``port`` is the publish-in port the socket is bound to."""
        self.port = port
        self._thread.start()
        return self._thread

    def _run(self) -> None:
        try:
            while True:
                event = parse_monitor_message(self._pair.recv_multipart())
                kind, value = event["event"], int(event["value"])
                if kind == zmq.EVENT_ACCEPTED:
                    self.accepted += 1
                    self._keep(value)
                elif kind == zmq.EVENT_DISCONNECTED:
                    self._ended(value)
                elif kind & _REFUSED:
                    self._handshake = "refused"
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    self._handshake = "failed"
                elif kind == zmq.EVENT_MONITOR_STOPPED:
                    break
        except zmq.ContextTerminated:
            pass
        finally:
            self._pair.close(0)
            for dup in self._dups.values():
                dup.close()
            self._dups.clear()

    def _keep(self, fd: int) -> None:
        old = self._dups.pop(fd, None)
        if old is not None:  # its DISCONNECTED was missed: the number is reused
            old.close()
        if not _CAN_PEEK:
            return
        try:
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            return  # gone already, or out of descriptors: counted as "disconnected"
        try:
            ours = dup.getsockname()[1] == self.port and not dup.getsockopt(
                socket.SOL_SOCKET, socket.SO_ACCEPTCONN
            )
        except OSError:
            ours = False
        if ours:
            self._dups[fd] = dup
        else:
            dup.close()

    def _ended(self, fd: int) -> None:
        dup = self._dups.pop(fd, None)
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            if dup is not None:
                dup.close()
            if handshake == "failed":
                self.failed += 1
            else:
                self.refused += 1
                self._warn(self.refused, "refused a publisher's handshake (unknown CURVE key?)")
            return
        if dup is None:
            self.disconnected += 1
            return
        with dup:
            try:
                # b"": end of stream, the publisher closed it; bytes: libzmq stopped
                # reading mid-stream
                cut = bool(dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except BlockingIOError:
                cut = True  # still connected, nothing unread: libzmq closed it
            except OSError as exc:  # reset, timed out: the connection failed
                log.debug("publish-in connection fd %d failed: %s", fd, exc)
                self.failed += 1
                return
        if not cut:
            self.closed += 1
            return
        self.cut_off += 1
        self._warn(
            self.cut_off, f"cut off a publisher: it sent a frame over {self.max_message} bytes"
        )

    @staticmethod
    def _warn(n: int, what: str) -> None:
        if n == 10 ** (len(str(n)) - 1):  # the 1st, 10th, 100th...
            log.warning("%s (%d so far; see 'zaudio ls')", what, n)

    def close(self) -> None:
        """Close the monitor's socket of a watch that was never started."""
        if not self._thread.is_alive():
            self._pair.close(0)
