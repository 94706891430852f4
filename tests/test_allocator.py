"""Cells keep freed host memory for reuse, so a step's time does not depend on glibc returning memory to the kernel."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from cass_bench import sweep
from cass_bench.allocator import keep_freed_memory

GLIBC = platform.libc_ver()[0] == "glibc"

FAULTS_PER_STEP = """
import json, resource, sys
import torch
if sys.argv[1] == "keep":
    from cass_bench.allocator import keep_freed_memory
    assert keep_freed_memory()
def step():  # like a training step: activations pile up (10 x 16 MB), then are all freed
    kept = [torch.ones(4_000_000) for _ in range(10)]
    del kept
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20))
"""


def _faults_per_step(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def test_it_is_applied_exactly_where_the_c_library_is_glibc() -> None:
    assert keep_freed_memory() is GLIBC


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")
def test_after_warm_up_steps_reuse_memory_instead_of_faulting_it_in() -> None:
    kept = _faults_per_step("keep")
    assert kept < 100  # 160 MB of fresh pages per step would be about 40,000 faults


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")
def test_without_it_glibc_returns_the_memory_and_faults_it_in_again() -> None:
    assert _faults_per_step("default") > 10_000


def test_every_cell_process_keeps_freed_memory_before_its_cell_runs(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    calls: list[str] = []
    monkeypatch.setattr(sweep, "keep_freed_memory", lambda: calls.append("keep") or True)
    monkeypatch.setattr(sweep, "run_cell", lambda cell, cfg, store: calls.append(f"run {cell.method}"))
    from cass_bench.config import load_config
    from cass_bench.protocol import Cell

    cfg = load_config(None, {"out": str(tmp_path / "out")})
    spec = sweep._spec_file(tmp_path, Cell("embedded", "dino", ("cnn",), 16, 1, 0), cfg)
    sweep.run_cell_file(spec)
    assert calls == ["keep", "run dino"]
