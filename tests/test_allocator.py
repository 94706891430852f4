"""Cells keep freed host memory for reuse, so a step's time does not depend on glibc returning memory to the kernel."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from cass_bench.run import sweep

GLIBC = platform.libc_ver()[0] == "glibc"
ROOT = Path(__file__).resolve().parent.parent

RETURNED_ON_FREE = """
import sys
import torch
if sys.argv[1] == "keep":
    from cass_bench.engine.allocator import keep_freed_memory
    assert keep_freed_memory()
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
block = torch.ones(5_000_000)  # 20 MB, every page touched
before = rss_kb()
del block
print(before - rss_kb())
"""


def _kb_returned_on_free(mode: str) -> int:
    """KiB of resident memory a fresh process gives back when it frees a 20 MB tensor."""
    out = subprocess.run([sys.executable, "-c", RETURNED_ON_FREE, mode], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_it_is_applied_exactly_where_the_c_library_is_glibc() -> None:
    code = "from cass_bench.engine.allocator import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(GLIBC)


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")
def test_a_freed_block_stays_with_the_process_for_the_next_step() -> None:
    assert _kb_returned_on_free("default") > 15_000  # glibc's default: unmapped at once, faulted in again next time
    assert _kb_returned_on_free("keep") < 1_000


def test_every_cell_process_keeps_freed_memory_before_its_cell_runs(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    calls: list[str] = []
    monkeypatch.setattr(sweep, "keep_freed_memory", lambda: calls.append("keep") or True)
    monkeypatch.setattr(sweep, "run_cell", lambda cell, cfg, store, *_: calls.append(f"run {cell.method}"))
    from cass_bench.config.load import load_config
    from cass_bench.records.identity import Cell

    cfg = load_config(None, {"out": str(tmp_path / "out"), "methods": "cass,dino"})
    spec = sweep._spec_file(tmp_path, Cell("embedded", "dino", ("cnn",), 16, 1, 0), cfg)
    sweep.run_cell_file(spec)
    assert calls == ["keep", "run dino"]
