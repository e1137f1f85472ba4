"""``zaudio web``: one port serving the pages, the capture socket and the monitor socket.

Routes (HTTP GET, served from ``process_request`` before any WebSocket handshake):

- ``/`` links to both pages; ``/capture`` and ``/monitor`` are the pages;
  ``/static/<file>`` their scripts and style;
- ``/ws/capture``: one browser tab publishing one stream (see :mod:`.capture`);
- ``/ws/monitor``: updates for a monitor page (see :mod:`.monitor`).

Everything runs on one asyncio loop. Each capture connection has its own
:class:`~zaudio.publisher.Publisher` (which stamps, sequences and holds a proxy
outage like every publisher); it is made and started in a worker thread
(``start`` waits for the proxy) and from then on used only by the loop's thread.
The server is a node itself (role ``web``): its heartbeats carry the counters,
including every rejected browser message by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from zaudio import clock
from zaudio.client import NodeClient
from zaudio.endpoints import is_loopback
from zaudio.errors import RemoteProtocolError, RequestRefused
from zaudio.protocol import encode_json
from zaudio.publisher import Publisher
from zaudio.security import Keys
from zaudio.web.capture import FrameChecker, parse_hello
from zaudio.web.monitor import Monitor
from zaudio.web.pages import PAGES, TYPES, load_static, response, text_response

__all__ = ["WebServer", "is_loopback"]

log = logging.getLogger(__name__)

#: WebSocket messages larger than this close the connection (1009) before we see them.
MAX_MESSAGE = 1 << 20
MAX_CAPTURES = 32
MAX_MONITORS = 32
#: A capture connection is closed after this many dropped (flooded or non-finite) blocks.
MAX_DROPS = 200
HELLO_TIMEOUT = 10.0

# Close codes the page understands: 44xx do not retry, 45xx/4409 retry with back-off.
BAD_REQUEST = 4400
CONFLICT = 4409
UNAVAILABLE = 4503


class WebServer:
    """The web server: pages, capture and monitor WebSockets, and its node on the bus.

    Parameters
    ----------
    host, port : str, int
        Where to listen (``port=0``: any free port, see :attr:`port` after start).
    proxy : str, optional
        Control endpoint of the proxy.
    keys : Keys, optional
        CurveZMQ client keys for the bus.
    tls : ssl.SSLContext, optional
        Serve https/wss directly (else put a TLS reverse proxy in front).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        proxy: str | None = None,
        keys: Keys | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.proxy = proxy
        self.keys = keys
        self.tls = tls
        self.static = load_static()
        self.counters: dict[str, int] = {
            "sent": 0,
            "dropped": 0,
            "errors": 0,
            "captures": 0,
            "monitors": 0,
            "connections": 0,
        }
        self.rejected: dict[str, int] = {}
        self._captures: set[ServerConnection] = set()
        self._publishers: set[Publisher] = set()
        self._monitor_queues: set[asyncio.Queue[str]] = set()
        self._monitor: Monitor | None = None
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.node: NodeClient | None = None

    # -- counters ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for heartbeats: blocks sent/dropped, rejected messages by reason.

        ``sent`` and ``dropped`` add up what every capture's Publisher counted:
        the closed ones (in :attr:`counters`) and the open ones.
        """
        out: dict[str, Any] = {**self.counters, "rejected": dict(self.rejected)}
        for pub in list(self._publishers):
            out["sent"] += pub.counters["sent"]
            out["dropped"] += pub.counters["dropped"]
        return out

    def reject(self, reason: str, detail: str, peer: Any) -> None:
        """Count one rejected browser message; log the 1st, 10th, 100th... of each reason."""
        n = self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.counters["errors"] += 1
        if n == 10 ** (len(str(n)) - 1):
            log.warning("rejected %s from %s: %s (%d so far)", reason, peer, detail, n)

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self) -> None:
        """Listen, and register the server's node with the proxy (in the background)."""
        if not is_loopback(self.host):
            log.warning(
                "serving on %s beyond loopback: anyone who can reach this port can publish "
                "audio and watch the bus%s",
                self.host,
                ""
                if self.tls
                else "; browsers allow the microphone only on https or "
                "localhost, so put TLS in front (see docs/web.md)",
            )
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            max_size=MAX_MESSAGE,
            ping_interval=5,
            ping_timeout=10,
            close_timeout=2,
            ssl=self.tls,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self.node = NodeClient(
            self.proxy,
            role="web",
            name=f"web@{self.host}:{self.port}",
            stats=self.stats,
            keys=self.keys,
        ).start()

    async def stop(self) -> None:
        """Close every connection (streams disconnect), the monitor and the node."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._monitor is not None:
            await asyncio.to_thread(self._monitor.stop)
            self._monitor = None
        if self.node is not None:
            await asyncio.to_thread(self.node.close)
            self.node = None

    async def run(self, stop: asyncio.Event | Callable[[], Any]) -> None:
        """Serve until ``stop`` (an event, or a coroutine function) completes."""
        await self.start()
        try:
            if isinstance(stop, asyncio.Event):
                await stop.wait()
            else:
                await stop()
        finally:
            await self.stop()

    # -- HTTP ------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        self.counters["connections"] += 1
        path = urlsplit(request.path).path
        if path.startswith("/ws/"):
            if path not in ("/ws/capture", "/ws/monitor"):
                return text_response(404, f"no WebSocket at {path}\n")
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("Host"):
                # a page from another site must not publish to (or watch) the bus
                self.reject("origin", f"WebSocket from origin {origin}", conn.remote_address)
                return text_response(403, "cross-origin WebSocket refused\n")
            if path == "/ws/capture" and len(self._captures) >= MAX_CAPTURES:
                return text_response(503, "too many capture connections\n")
            if path == "/ws/monitor" and len(self._monitor_queues) >= MAX_MONITORS:
                return text_response(503, "too many monitor connections\n")
            return None  # the WebSocket handshake goes on
        if path == "/favicon.ico":
            return response(204, b"", "image/x-icon")
        name = PAGES.get(path)
        if name is None and path.startswith("/static/"):
            name = path[len("/static/") :]
        body = self.static.get(name) if name else None
        if body is None:
            return text_response(404, f"not found: {path}\n")
        ctype = TYPES.get(name[name.rfind(".") :], "application/octet-stream") if name else ""
        return response(200, body, ctype)

    # -- WebSockets ------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path).path if ws.request else ""
        try:
            if path == "/ws/capture":
                await self._capture(ws)
            elif path == "/ws/monitor":
                await self._watch(ws)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                self.reject("size", "message larger than 1 MiB", ws.remote_address)

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(encode_json({"type": "error", "reason": reason}).decode())
        await ws.close(code, reason[:120])

    async def _capture(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        try:
            raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT)
        except TimeoutError:
            self.reject("handshake", "no hello within 10 s", peer)
            await self._close(ws, BAD_REQUEST, "no hello within 10 s")
            return
        arrival = clock.now()
        try:
            hello = parse_hello(raw, arrival)
        except RemoteProtocolError as exc:
            self.reject(exc.reason, str(exc), peer)
            await self._close(ws, BAD_REQUEST, str(exc))
            return
        pub = Publisher(
            hello.stream,
            rate=hello.rate,
            channels=hello.channels,
            proxy=self.proxy,
            keys=self.keys,
            name=f"browser:{hello.stream}",
            t0=arrival + hello.lead,
        )
        try:
            await asyncio.to_thread(pub.start)
        except RequestRefused as exc:
            await self._close(ws, CONFLICT, str(exc))
            return
        if not (pub.outlet.ready and pub.client.registered.is_set()):
            why = pub.client.error or "the bus is not ready"
            await asyncio.to_thread(pub.close)
            await self._close(ws, UNAVAILABLE, f"no proxy: {why}")
            return
        self._captures.add(ws)
        self._publishers.add(pub)
        self.counters["captures"] += 1
        try:
            log.info(
                "browser %s publishes %r at %d Hz x %d (src %s, browser clock %+.3f s)",
                peer,
                hello.stream,
                hello.rate,
                hello.channels,
                pub.stream.src,
                hello.skew or 0.0,
            )
            ready = {
                "type": "ready",
                "stream": hello.stream,
                "src": pub.stream.src,
                "rate": hello.rate,
                "channels": hello.channels,
            }
            await ws.send(encode_json(ready).decode())
            await self._publish(ws, pub, hello.rate, hello.channels)
        finally:
            self._captures.discard(ws)
            self.counters["captures"] -= 1
            self._publishers.discard(pub)
            await asyncio.to_thread(pub.close)
            for key in ("sent", "dropped"):
                self.counters[key] += pub.counters[key]
            log.info("browser %s stopped %r", peer, hello.stream)

    async def _publish(
        self, ws: ServerConnection, pub: Publisher, rate: int, channels: int
    ) -> None:
        """The per-block loop: check, then publish (the Publisher stamps on the sample clock)."""
        checker = FrameChecker(rate, channels)
        drops = 0
        async for message in ws:
            try:
                block = checker.check(message)
            except RemoteProtocolError as exc:
                self.reject(exc.reason, str(exc), ws.remote_address)
                if exc.reason in ("text", "size"):
                    await self._close(ws, BAD_REQUEST, str(exc))
                    return
                # the audio is lost: seq and index move on so receivers see the gap
                if not isinstance(message, str) and len(message) % checker.stride == 0:
                    pub.skip(len(message) // checker.stride)
                drops += 1
                if drops > MAX_DROPS:
                    await self._close(ws, BAD_REQUEST, f"too many rejected blocks ({exc})")
                    return
                continue
            pub.send(block)

    async def _watch(self, ws: ServerConnection) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        self._monitor_queues.add(queue)
        self.counters["monitors"] += 1
        if self._monitor is None or not self._monitor.running:
            self._monitor = Monitor(self.proxy, self._emit, keys=self.keys).start()
        elif self._monitor.last_list is not None:
            queue.put_nowait(self._monitor.last_list)

        async def drain() -> None:
            async for _ in ws:  # the page sends nothing we need; notice when it leaves
                pass

        reader = asyncio.ensure_future(drain())
        try:
            while not reader.done():
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                await ws.send(get.result())
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            self._monitor_queues.discard(queue)
            self.counters["monitors"] -= 1
            if not self._monitor_queues and self._monitor is not None:
                monitor, self._monitor = self._monitor, None
                await asyncio.to_thread(monitor.stop)

    def _emit(self, text: str) -> None:
        """From the monitor thread: hand one update to every open monitor page."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._fanout, text)

    def _fanout(self, text: str) -> None:
        for queue in self._monitor_queues:
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:  # a slow page misses updates; the others do not
                self.counters["monitor_dropped"] = self.counters.get("monitor_dropped", 0) + 1
