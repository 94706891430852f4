"""Who else trains on the machine: process markers, the count each epoch samples, the pretraining lock, and the
CPU's own peak."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cass_bench.engine import neighbours
from cass_bench.engine.cpu_peak import parse_cpu_peak, thread_peak_flops

AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
cpu MHz\t\t: 2450.000
flags\t\t: fpu sse sse2 fma avx avx2 bmi2
"""
AVX512_XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
cpu MHz\t\t: 3500.000
flags\t\t: sse sse2 avx avx2 fma avx512f avx512bw
"""


def test_cpu_peak_from_the_instruction_set_and_clock() -> None:
    epyc = parse_cpu_peak(AVX2_EPYC)
    assert epyc is not None and epyc.lanes == 8 and epyc.fma
    assert epyc.flops == pytest.approx(8 * 2 * 2 * 2.45e9)  # 78.4 GFLOP/s per thread
    xeon = parse_cpu_peak(AVX512_XEON)
    assert xeon is not None and xeon.flops == pytest.approx(16 * 2 * 2 * 2.9e9), "the nominal clock, not cpu MHz"
    no_fma = parse_cpu_peak(AVX2_EPYC.replace(" fma", ""))
    assert no_fma is not None and no_fma.flops == pytest.approx(epyc.flops / 2)
    assert parse_cpu_peak("processor\t: 0\nFeatures\t: asimd\n") is None, "no x86 vector flags: unknown, not a guess"
    assert "78.4 GFLOP/s" in epyc.describe()


def test_the_configured_peak_overrides_the_detected_one(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(AVX2_EPYC)
    assert thread_peak_flops(None, cpuinfo) == pytest.approx(78.4e9)
    assert thread_peak_flops(50.0, cpuinfo) == 50e9
    assert thread_peak_flops(None, tmp_path / "missing") is None


def _marked_child(folder: Path) -> subprocess.Popen[str]:
    code = ("import sys, time; from pathlib import Path; from cass_bench.engine.neighbours import training_marker\n"
            f"with training_marker('pretrain', Path({str(folder)!r})):\n"
            "    print('marked', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "marked"
    return child


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_another_marked_process_counts_until_it_ends_and_a_dead_or_reused_marker_does_not(tmp_path: Path) -> None:
    with neighbours.training_marker("pretrain", tmp_path):
        assert neighbours.other_training(tmp_path) == 0, "this process's own marker is not another"
        child = _marked_child(tmp_path)
        try:
            assert neighbours.other_training(tmp_path) == 1
        finally:
            child.kill()
            child.wait()
        (tmp_path / f"{child.pid}-1.pretrain").touch()  # a killed process's marker is left behind
        assert neighbours.other_training(tmp_path) == 0, "a marker whose process is gone counts as nothing"
        assert not (tmp_path / f"{child.pid}-1.pretrain").exists(), "and is tidied away"
        (tmp_path / f"{os.getppid()}-1.pretrain").touch()  # a live pid, but not the process that made the marker
        assert neighbours.other_training(tmp_path) == 0
    assert neighbours.other_training(tmp_path) == 0


def test_the_exclusive_lock_waits_for_a_shared_holder_and_says_how_long(tmp_path: Path) -> None:
    held = threading.Event()

    def evaluate() -> None:
        with neighbours.stage_lock(tmp_path, exclusive=False):
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=evaluate)
    thread.start()
    held.wait()
    with neighbours.stage_lock(tmp_path, exclusive=True) as waited:
        assert waited >= 0.2
    thread.join()
    with neighbours.stage_lock(None, exclusive=True) as waited:
        assert waited == 0.0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_a_run_beside_another_marked_process_is_not_timed_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from cass_bench.engine.timing import EpochClock
    from tests.test_measure import _fit, _Tiny

    monkeypatch.setenv(neighbours.MARKERS_ENV, str(tmp_path))
    loader = DataLoader(TensorDataset(torch.randn(8, 10), torch.zeros(8)), batch_size=4)
    alone = EpochClock()
    _fit(_Tiny(), loader, 2, alone)
    assert alone.figures().pretrain_other_processes == 0
    child = _marked_child(tmp_path)
    try:
        beside = EpochClock()
        _fit(_Tiny(), loader, 2, beside)
    finally:
        child.kill()
        child.wait()
    assert beside.epoch_others == [1, 1] and beside.figures().pretrain_other_processes == 1


def test_a_step_of_the_same_shape_is_counted_once_per_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from cass_bench.engine import flops
    from tests.test_measure import _fit, _Tiny

    counts: list[int] = []
    real = flops.count_step_flops
    monkeypatch.setattr(flops, "count_step_flops", lambda *a: counts.append(1) or real(*a))
    loader = DataLoader(TensorDataset(torch.randn(8, 10), torch.zeros(8)), batch_size=4)
    memo: dict[tuple, int] = {}
    first, second = flops.StepFlops(memo=memo), flops.StepFlops(memo=memo)
    _fit(_Tiny(), loader, 1, first)
    _fit(_Tiny(), loader, 1, second)
    assert len(counts) == 1 and first.flops_per_image == second.flops_per_image == 800
    wider = _Tiny()
    wider.layer = nn.Linear(10, 40, bias=False)
    third = flops.StepFlops(memo=memo)
    _fit(wider, loader, 1, third)
    assert len(counts) == 2 and third.flops_per_image == 1600, "another shape is counted afresh"
