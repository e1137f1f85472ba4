"""The process-layout scenarios: capacity, fan-in, fan-out (latency: :mod:`~zaudio.bench.paired`).

Each runs zaudio's processes (``zaudio record`` / ``zaudio process`` through
``zaudio proxy``) and the baseline's (:mod:`zaudio.bench.baseline`) in the same
run, alternating which goes first in each round, and records one value per
round for each; :class:`~zaudio.bench.figures.Figure` takes the median ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zaudio.bench.figures import Figure
from zaudio.bench.harness import SOURCE, Bench, Receiver, wait_delivered
from zaudio.bench.probe import percentiles

__all__ = ["Config", "capacity", "fan_in", "fan_out"]

#: Blocks at the start of each stream left out of latency figures (connection warm-up).
WARM = 5
MS = 1e3


@dataclass(frozen=True)
class Config:
    quick: bool

    @property
    def latency_rounds(self) -> int:
        return 1 if self.quick else 3

    @property
    def latency_seconds(self) -> float:
        """Measured seconds per round (after one second of warm-up)."""
        return 3.0 if self.quick else 20.0

    @property
    def capacity_step(self) -> float:
        return 0.4 if self.quick else 1.0

    @property
    def capacity_start(self) -> int:
        return 8000 if self.quick else 4000

    @property
    def capacity_rounds(self) -> int:
        return 1 if self.quick else 2

    @property
    def capacity_attempts(self) -> int:
        """Tries per rate (a rate passes if one does): other load must not decide it."""
        return 1 if self.quick else 2

    @property
    def capacity_bisect(self) -> int:
        return 1 if self.quick else 4  # resolution: 1/16 of the last doubling

    @property
    def fan_in_steps(self) -> list[int]:
        return [8, 32] if self.quick else [16, 32, 48, 64, 80, 96, 128, 192, 256]

    @property
    def fan_in_attempts(self) -> int:
        """Tries per step (a step passes if one does): other load must not end the search."""
        return 1 if self.quick else 2

    @property
    def fan_in_seconds(self) -> float:
        return 0.5 if self.quick else 2.0

    @property
    def fan_out_rounds(self) -> int:
        return 1 if self.quick else 4  # resolution: 1/16 of the last doubling

    @property
    def fan_out_seconds(self) -> float:
        return 0.5 if self.quick else 2.0


def _order(r: int) -> tuple[str, str]:
    return ("z", "b") if r % 2 == 0 else ("b", "z")


def _lat(stream: dict[str, Any]) -> list[float]:
    return [x * MS for x in stream.get("lat", [])[WARM:]]


def _complete(stream: dict[str, Any] | None, count: int) -> bool:
    return stream is not None and stream.get("n") == count and stream.get("gaps") == 0


def _rotate(r: int, kinds: str) -> str:
    """Round ``r``'s order of the variants: each goes first in turn, and backwards on odd rounds."""
    k = r % len(kinds)
    order = kinds[k:] + kinds[:k]
    return order[::-1] if (r // len(kinds)) % 2 else order


def _publish(bench: Bench, kind: str, stream: str, blocks: float, count: int) -> Any:
    """Start the publisher of variant ``kind``: z = zaudio record, p = zaudio.Publisher, b = baseline."""
    if kind == "z":
        return bench.record(stream, blocks, count)
    if kind == "p":
        return bench.multipub(stream, 1, count, blocks=blocks)
    return bench.baseline_pub(stream, blocks, count)


def _name(kind: str, stream: str) -> str:
    # multipub numbers its streams: prefix + "0"
    return stream + "0" if kind == "p" else stream


def _passes(
    bench: Bench, rcv: Receiver, kind: str, rate: int, cfg: Config, tag: str
) -> tuple[bool, str]:
    """One capacity step: (passed, what happened)."""
    count = max(50, round(rate * cfg.capacity_step))
    stream = f"cap/{tag}-"
    pub = _publish(bench, kind, stream, rate, count)
    name = _name(kind, stream)
    wait_delivered([rcv], [name], count, pub, 20 + 2 * count / rate)
    pub.wait(20)
    st = rcv.counts()["streams"].get(name)
    if st is None:
        return False, "nothing received"
    if not _complete(st, count):
        return False, f"lost {count - int(st['n'])} of {count} (gaps {st['gaps']})"
    span = float(st["last"]) - float(st["first"])
    got = (count - 1) / span if span > 0 else float("inf")
    if got < 0.95 * rate:
        return False, f"late: received {got:.0f}/s"
    return True, "ok"


def capacity(bench: Bench, cfg: Config, say: Callable[[str], None]) -> list[Figure]:
    """The most blocks/s one proxy carries to one processor with every block delivered."""
    fig = Figure("capacity_blocks_s", "capacity, 0 loss", "blocks/s", "higher", 0.85)
    pfig = Figure(
        "capacity_publisher_blocks_s", "capacity, 0 loss, zaudio.Publisher source", "blocks/s",
        "higher",
    )  # fmt: skip
    z = bench.processor("cap", "cap/")
    b = bench.baseline_sub("bcap", "cap/")
    serial = 0
    for r in range(cfg.capacity_rounds):
        # Doubling, then bisection; the variants step together, in rotating order.
        lo = {"z": 0, "p": 0, "b": 0}
        hi: dict[str, int | None] = {"z": None, "p": None, "b": None}
        rate = {k: cfg.capacity_start for k in "zpb"}
        halvings = {"z": 0, "p": 0, "b": 0}
        steps = 0
        while any(rate.values()):
            for kind in _rotate(r + steps, "zpb"):
                if not rate[kind]:
                    continue
                rcv = b if kind == "b" else z
                for _ in range(cfg.capacity_attempts):
                    serial += 1
                    ok, what = _passes(bench, rcv, kind, rate[kind], cfg, f"{kind}{serial}")
                    say(f"  capacity {kind} {rate[kind]}/s: {what}")
                    if ok:
                        break
                if ok:
                    lo[kind] = rate[kind]
                else:
                    hi[kind] = rate[kind]
                top = hi[kind]
                if top is None:  # doubling until a rate fails
                    rate[kind] = rate[kind] * 2 if rate[kind] < 256_000 else 0
                elif lo[kind] == 0:  # even the start failed: halve
                    rate[kind] = top // 2 if top >= 1000 else 0
                elif halvings[kind] < cfg.capacity_bisect:
                    halvings[kind] += 1
                    rate[kind] = (lo[kind] + top) // 2
                else:
                    rate[kind] = 0
            steps += 1
        fig.add(lo["z"], lo["b"])
        pfig.add(lo["p"], lo["b"])
    fig.notes.append(
        f"480-frame float32 blocks (1920 B) at rising rates: zaudio record --source {SOURCE} "
        "--rate 480*R --block 480 (paced on its sample clock); pass = every seq received "
        "and the processor kept up (received at >= 95% of the rate)"
    )
    pfig.notes.append("the same with one thread calling zaudio.Publisher.send on time")
    bench.stop(z.proc)
    bench.stop(b.proc)
    return [fig, pfig]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def _fan_in_step(
    bench: Bench, rcv: Receiver, kind: str, prefix: str, n: int, count: int
) -> tuple[bool, float | None]:
    names = [f"{prefix}{s}" for s in range(n)]
    if kind == "z":
        pub = bench.multipub(prefix, n, count)
    else:
        pub = bench.baseline_pub(prefix, 100, count, streams=n)
    wait_delivered([rcv], names, count, pub, 60 + count / 20)
    pub.wait(60)
    snap = rcv.snapshot()["streams"]
    lat: list[float] = []
    ok = True
    for name in names:
        st = snap.get(name)
        ok = ok and _complete(st, count)
        lat.extend(_lat(st or {}))
    p99 = percentiles(lat)["p99"]
    return ok and p99 is not None and p99 < 5.0, p99


def fan_in(bench: Bench, cfg: Config, say: Callable[[str], None]) -> list[Figure]:
    """The most 100 Hz streams one receiver takes with 0 drops and p99 < 5 ms."""
    fig = Figure(
        "fan_in_streams", "fan-in streams (0 drops, p99 < 5 ms)", "streams", "higher", 0.75
    )
    z = bench.processor("fanin", "fi/")
    b = bench.baseline_sub("bfanin", "fi/")
    count = round(100 * cfg.fan_in_seconds)
    best = {"z": 0, "b": 0}
    failed = {"z": False, "b": False}
    p99s: dict[str, dict[int, float | None]] = {"z": {}, "b": {}}
    for i, n in enumerate(cfg.fan_in_steps):
        for kind in _order(i):
            if failed[kind]:
                continue
            ok = False
            for attempt in range(cfg.fan_in_attempts):
                prefix = f"fi/{kind}{n}-{attempt}-"
                ok, p99 = _fan_in_step(bench, z if kind == "z" else b, kind, prefix, n, count)
                p99s[kind][n] = p99
                say(f"  fan-in {kind} {n} streams: p99 {_ms(p99)} {'ok' if ok else 'FAIL'}")
                if ok:
                    break
            if ok:
                best[kind] = n
            else:
                failed[kind] = True
    fig.add(best["z"], best["b"])
    fig.extra["p99_ms"] = p99s
    fig.notes.append(
        "zaudio: one process with N zaudio.Publisher objects (each a registered node "
        "with its own XPUB); baseline: one process with N XPUB sockets; steps "
        + ", ".join(map(str, cfg.fan_in_steps))
    )
    bench.stop(z.proc)
    bench.stop(b.proc)
    return [fig]


def fan_out(bench: Bench, cfg: Config, say: Callable[[str], None]) -> list[Figure]:
    """1, 4, 16 receivers on one 100 Hz stream: drops and the last receiver's p99.

    Sixteen receivers of each kind are started once; receiver ``i`` subscribes to
    ``fo/n{N}/`` for every N > i, so a stream under ``fo/n4/`` reaches four.
    """
    sizes = (1, 4, 16)
    count = round(100 * cfg.fan_out_seconds)

    def topics(i: int) -> list[str]:
        return [f"fo/n{n}/" for n in sizes if i < n]

    zs = bench.processors([f"fo{i}" for i in range(max(sizes))], [topics(i) for i in range(16)])
    bs = [bench.baseline_sub(f"bfo{i}", topics(i)) for i in range(max(sizes))]
    figs = []
    for n in sizes:
        target = 1.5 if n > 1 else None
        fig = Figure(
            f"fan_out_{n}_p99_ms", f"fan-out {n}: last-receiver p99", "ms", "lower", target
        )
        lost = {"z": 0, "b": 0}
        for r in range(cfg.fan_out_rounds):
            got: dict[str, float | None] = {}
            for kind in _order(r):
                stream = f"fo/n{n}/{kind}{r}"
                rcvs = (zs if kind == "z" else bs)[:n]
                if kind == "z":
                    pub = bench.record(stream, 100, count)
                else:
                    pub = bench.baseline_pub(stream, 100, count)
                wait_delivered(rcvs, [stream], count, pub, 30 + count / 50)
                pub.wait(15)
                per = []
                for rcv in rcvs:
                    st = rcv.snapshot()["streams"].get(stream)
                    if not _complete(st, count):
                        lost[kind] += 1
                    per.append((st or {}).get("lat", []))
                m = min(len(x) for x in per)
                last = [max(x[i] for x in per) * MS for i in range(WARM, m)]
                got[kind] = percentiles(last)["p99"]
            fig.add(got["z"], got["b"])
            say(f"  fan-out {n} round {r + 1}: zaudio {_ms(got['z'])}, baseline {_ms(got['b'])}")
        fig.extra["receivers_with_loss"] = lost
        fig.extra["zaudio_lost_runs"] = lost["z"]
        if lost["z"] or lost["b"]:
            fig.notes.append(
                f"receiver-runs with lost blocks: zaudio {lost['z']}, baseline {lost['b']}"
            )
        figs.append(fig)
    for rcv in zs + bs:
        bench.stop(rcv.proc)
    return figs
