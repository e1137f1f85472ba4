"""A TCP relay that delays every chunk by a fixed time, keeping order.

``tc netem`` does not exist in this kernel, so added latency comes from here:
each accepted connection is paired with one to the target; per direction one
thread reads chunks and stamps them, another sends each one when its time has
come. TCP keeps order, and so does the queue between the two.

Run inside a network namespace::

    python -m tests.relay --delay 0.05 127.0.0.1:5555=10.77.0.1:5555 ...

It prints ``ready`` once every listener is bound and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import socket
import threading
import time

CHUNK = 65536


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Relay:
    """Forward ``listen`` -> ``target``, holding each chunk ``delay`` seconds.

    Parameters
    ----------
    listen, target : (host, port)
        Where to accept connections, and where to connect for each.
    delay : float
        Seconds each chunk is held, in each direction.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.server = socket.create_server(listen, reuse_port=False)
        self.server.settimeout(0.2)
        self.closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> Relay:
        self.thread.start()
        return self

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks += [client, upstream]
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        q: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            try:
                while True:
                    data = src.recv(CHUNK)
                    q.put((time.monotonic() + self.delay, data))
                    if not data:
                        return
            except OSError:
                q.put((0.0, b""))

        def write() -> None:
            try:
                while True:
                    due, data = q.get()
                    if not data:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    dst.sendall(data)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                src.shutdown(socket.SHUT_RD)

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.server.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, required=True, help="seconds per direction")
    parser.add_argument("routes", nargs="+", metavar="LISTEN=TARGET")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    relays = []
    for route in args.routes:
        listen, _, target = route.partition("=")
        relays.append(Relay(_addr(listen), _addr(target), args.delay).start())
    print("ready", flush=True)
    stop.wait()
    for r in relays:
        r.close()


if __name__ == "__main__":
    main()
