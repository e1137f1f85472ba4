"""One measured figure of the bench (zaudio against the baseline), and the table."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Figure", "median", "table"]


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


@dataclass
class Figure:
    """A figure: per-round values of zaudio and the baseline, their ratios, a target.

    ``better`` says which way is good: ``"lower"`` (latency, CPU, time) or
    ``"higher"`` (capacity, streams). ``target`` is a bound on the median ratio,
    or with ``absolute=True`` on zaudio's median value itself.
    """

    key: str
    label: str
    unit: str
    better: Literal["lower", "higher"]
    target: float | None = None
    absolute: bool = False
    zaudio: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, z: float | None, b: float | None) -> None:
        if z is not None and b is not None:
            self.zaudio.append(z)
            self.baseline.append(b)

    @property
    def ratios(self) -> list[float]:
        if not self.baseline:  # a figure with no baseline (zaudio.bench.groups)
            return []
        return [z / b for z, b in zip(self.zaudio, self.baseline, strict=True) if b]

    @property
    def ratio(self) -> float | None:
        """The median over rounds of zaudio / baseline (noise cancels within a round)."""
        return median(self.ratios)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = median(self.zaudio) if self.absolute else self.ratio
        if value is None:
            return False
        return value <= self.target if self.better == "lower" else value >= self.target

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        op = "<=" if self.better == "lower" else ">="
        return f"{op} {self.target:g} {self.unit}" if self.absolute else f"{op} {self.target:g}x"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            zaudio_median=median(self.zaudio),
            baseline_median=median(self.baseline),
            ratios=self.ratios,
            ratio=self.ratio,
            met=self.met,
            target_text=self.target_text(),
        )
        return d


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0 or abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(figures: list[Figure]) -> str:
    """A Markdown table: figure | zaudio | baseline | ratio | target | met?"""
    rows = [["figure", "zaudio", "baseline", "ratio", "target", "met?"]]
    for f in figures:
        ratio = f.ratio
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        rows.append(
            [
                f"{f.label} ({f.unit})",
                _fmt(median(f.zaudio)),
                _fmt(median(f.baseline)),
                "-" if ratio is None else f"{ratio:.2f}x",
                f.target_text(),
                met,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
