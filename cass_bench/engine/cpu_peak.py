"""The CPU's own limit: the peak fp32 FLOP rate of one thread, from the instruction set and clock ``/proc/cpuinfo``
names, so a CPU run's model-FLOPs utilisation (MFU) is taken as a GPU's is.

One core retires, per cycle, ``lanes x pipes x FLOPs per op`` fp32 FLOPs: ``lanes`` fp32 numbers per vector
(AVX-512F: 16, AVX/AVX2: 8, SSE: 4), two vector floating-point pipes (every x86 core of the last decade), and two
FLOPs per operation with FMA (a fused multiply-add), one without. An AVX2 + FMA core at 2.45 GHz thus peaks at
8 x 2 x 2 x 2.45e9 = 78.4 GFLOP/s per thread. The clock is the nominal one in the model name (``@ 2.45GHz``) when
there is one, else the ``cpu MHz`` of the first core.

The estimate is wrong where a core differs from that model: AMD Zen 4 runs AVX-512 through 256-bit pipes (half
the 16-lane figure), turbo and throttling move the clock, and an SMT sibling shares its core's pipes. The config's
``cpu_peak_gflops`` (``--cpu-peak-gflops``) replaces the detected figure; every record carries the peak its MFU
divides by (``peak_flops``). Torch-free: the report and the dry run may name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
PIPES = 2
"""Vector floating-point pipes per core."""
LANES = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse", 4))
"""fp32 lanes of the widest vector instruction set a flag names, widest first."""
_GHZ = re.compile(r"@\s*([\d.]+)\s*GHz", re.IGNORECASE)


@dataclass(frozen=True)
class CpuPeak:
    """The detected peak of one thread and what it was derived from.

    Attributes:
        flops: peak fp32 FLOP/s of one thread.
        lanes: fp32 lanes per vector.
        fma: whether the core has fused multiply-add.
        ghz: the clock used.
        model: the CPU's model name.
    """

    flops: float
    lanes: int
    fma: bool
    ghz: float
    model: str

    def describe(self) -> str:
        """The derivation in one line, e.g. ``8 lanes x 2 pipes x 2 (FMA) x 2.45 GHz = 78.4 GFLOP/s``."""
        return (f"{self.model}: {self.lanes} fp32 lanes x {PIPES} pipes x {2 if self.fma else 1}"
                f"{' (FMA)' if self.fma else ''} x {self.ghz:.3g} GHz = {self.flops / 1e9:.1f} GFLOP/s per thread")


def _first(text: str, key: str) -> str | None:
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == key:
            return value.strip()
    return None


def parse_cpu_peak(cpuinfo: str) -> CpuPeak | None:
    """The per-thread peak from the text of ``/proc/cpuinfo`` (None: no x86 vector flags or no clock in it)."""
    flags = set((_first(cpuinfo, "flags") or "").split())
    lanes = next((n for flag, n in LANES if flag in flags), None)
    model = _first(cpuinfo, "model name") or "unknown CPU"
    nominal = _GHZ.search(model)
    mhz = _first(cpuinfo, "cpu mhz")
    try:
        ghz = float(nominal.group(1)) if nominal else float(mhz) / 1000 if mhz else None
    except ValueError:
        ghz = None
    if lanes is None or not ghz:
        return None
    fma = "fma" in flags
    return CpuPeak(lanes * PIPES * (2 if fma else 1) * ghz * 1e9, lanes, fma, ghz, model)


def detect_cpu_peak(path: Path = CPUINFO) -> CpuPeak | None:
    """This machine's per-thread peak (None where ``/proc/cpuinfo`` is missing or names no x86 vector unit)."""
    try:
        return parse_cpu_peak(path.read_text(errors="replace"))
    except OSError:
        return None


def thread_peak_flops(override_gflops: float | None = None, path: Path = CPUINFO) -> float | None:
    """Peak fp32 FLOP/s of one CPU thread: ``override_gflops`` (the config's ``cpu_peak_gflops``) when given, else
    detected (None when neither is known)."""
    if override_gflops is not None:
        return override_gflops * 1e9
    peak = detect_cpu_peak(path)
    return peak.flops if peak else None
