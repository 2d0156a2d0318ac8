"""Seconds and peak resident memory per sub-stage, measured inside the stage that runs them.

Why inside: a stage is one process, and what a platform team needs to size a machine is which of its
parts holds the memory (sentiment, Eq. 1, the GX gate...), not only the process's final maximum.
Peak RSS of a section is read from the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``),
reset on entry by writing ``5`` to ``/proc/self/clear_refs``; where that reset is not allowed, a thread
samples ``VmRSS`` every 20 ms instead (a peak shorter than that can then be missed). Sections may nest
and repeat: a repeated section adds its seconds and keeps its largest peak, and a section's peak is at
least its children's.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_SAMPLE_S = 0.02


def _status_kb(key: str) -> int:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@dataclass
class SectionFigures:
    seconds: float = 0.0
    peak_kb: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"s": round(self.seconds, 3), "peak_mb": round(self.peak_kb / 1024, 1)}


@dataclass
class StageMeter:
    """``with meter.section("sentiment"): ...``; ``meter.figures()`` -> {name: {"s", "peak_mb"}}."""

    sections: dict[str, SectionFigures] = field(default_factory=dict)
    _open: list[str] = field(default_factory=list)
    _sampled_kb: int = 0
    _sampler: threading.Thread | None = None
    _stop: threading.Event | None = None
    _can_reset: bool | None = None

    def _peak_since_reset(self) -> int:
        if self._can_reset:
            return _status_kb("VmHWM")
        return max(self._sampled_kb, _status_kb("VmRSS"))

    def _restart_peak(self) -> None:
        if self._can_reset is None:
            self._can_reset = _reset_peak()
            if not self._can_reset:
                self._start_sampler()
        elif self._can_reset:
            _reset_peak()
        self._sampled_kb = _status_kb("VmRSS")

    def _start_sampler(self) -> None:
        self._stop = threading.Event()

        def sample() -> None:
            assert self._stop is not None
            while not self._stop.wait(_SAMPLE_S):
                self._sampled_kb = max(self._sampled_kb, _status_kb("VmRSS"))

        self._sampler = threading.Thread(target=sample, name="stage-meter", daemon=True)
        self._sampler.start()

    def _credit_open(self, peak_kb: int) -> None:
        for name in self._open:
            figures = self.sections[name]
            figures.peak_kb = max(figures.peak_kb, peak_kb)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        # The peak so far belongs to every section already open; then the high-water mark restarts.
        self._credit_open(self._peak_since_reset())
        self.sections.setdefault(name, SectionFigures())
        self._open.append(name)
        self._restart_peak()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.sections[name].seconds += time.perf_counter() - started
            self._credit_open(self._peak_since_reset())
            self._open.pop()

    def figures(self) -> dict[str, dict[str, float]]:
        return {name: figures.to_dict() for name, figures in self.sections.items()}

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
