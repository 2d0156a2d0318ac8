"""Wall time and peak memory of one model's fit + scoring, for the table's "seconds" and "peak MB".

Peak memory is the process's resident set size (RSS) high-water mark during the measured block minus
the RSS when it started, in MiB. It counts everything the model touches — numpy, torch, DGL's C++
allocations — which Python's ``tracemalloc`` would miss (it sees only Python-level allocations and
slows pure-Python code). On Linux the kernel's high-water mark (VmHWM) is reset by writing "5" to
``/proc/self/clear_refs`` and read back at the end: exact, no sampling. Memory a previous model freed but
the allocator kept would be reused unseen, so ``release_free_memory`` trims the heap before each model;
the number is still a lower bound of what the model would need alone in a fresh process. Elsewhere (or when that file is
not writable) a background thread samples RSS with psutil every 10 ms, which can miss a peak shorter
than that. ``method`` says which one produced a number. With CUDA in use, the torch allocator's peak
GPU memory is reported too.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
_MB = 1024.0 * 1024.0

METHOD_HWM = "RSS high-water mark (VmHWM, reset via /proc/self/clear_refs) minus RSS at start"
METHOD_SAMPLED = "RSS sampled every 10 ms with psutil, peak minus RSS at start"


def _vm_hwm_bytes() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _vm_hwm_bytes() is not None


def _cuda_torch():  # torch only if the model already imported it and CUDA is there
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch
    return None


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so the next
    measurement starts from a low RSS instead of silently reusing a previous model's freed memory,
    which would hide that model's peak from an RSS-based measure."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measure is then a lower bound, as documented
        pass


def memory_method() -> str:
    """The method a ``ResourceMeter`` uses on this machine (written into every report)."""
    return METHOD_HWM if _reset_hwm() else METHOD_SAMPLED


@dataclass
class ResourceUsage:
    seconds: float
    peak_rss_mb: float
    method: str
    peak_gpu_mb: float | None = None


class ResourceMeter:
    """``with ResourceMeter() as meter: ...`` then ``meter.usage``: wall seconds and peak memory of the block."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.usage: ResourceUsage | None = None
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __enter__(self) -> ResourceMeter:
        self._start_rss = self._process.memory_info().rss
        self._peak = self._start_rss
        self._hwm = _reset_hwm()
        if not self._hwm:
            self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
            self._thread.start()
        torch = _cuda_torch()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        seconds = time.perf_counter() - self._start
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        peak = max(self._peak, self._process.memory_info().rss)
        if self._hwm:
            peak = max(peak, _vm_hwm_bytes() or 0)
        torch = _cuda_torch()
        self.usage = ResourceUsage(
            seconds=seconds,
            peak_rss_mb=max(peak - self._start_rss, 0) / _MB,
            method=METHOD_HWM if self._hwm else METHOD_SAMPLED,
            peak_gpu_mb=torch.cuda.max_memory_allocated() / _MB if torch is not None else None,
        )
