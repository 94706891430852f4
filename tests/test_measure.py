"""Measurement callbacks and failure statuses: clocks, data wait, FLOP counting, memory fallbacks, feature collapse,
divergence."""

from __future__ import annotations

import gc
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from cass_bench.errors import DivergedError
from cass_bench.engine.collapse import effective_rank, feature_spread
from cass_bench.engine.feature_collapse import FeatureCollapse
from cass_bench.engine.flops import (StepFlops, count_step_flops, device_peak_flops, model_flops_utilisation,
                                     sample_batch)
from cass_bench.engine.memory import PeakMemory, peak_rss_mb
from cass_bench.engine.timing import EpochClock
from cass_bench.methods.contract import CHECK_EVERY_N_STEPS, PretrainMethod
from cass_bench.run.cell import failure_status
from cass_bench.engine.trainer import Optimization


class _Tiny(pl.LightningModule):
    def __init__(self, step_sleep: float = 0.0) -> None:
        super().__init__()
        self.layer = nn.Linear(10, 20, bias=False)
        self.step_sleep = step_sleep

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        time.sleep(self.step_sleep)
        return self.batch_loss(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _SlowData(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(0.02)
        return torch.randn(10), torch.tensor(0)


def _fit(module: pl.LightningModule, loader: DataLoader, epochs: int, *callbacks: pl.Callback) -> None:
    pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks)).fit(module, loader)


def test_epoch_clock_times_epochs_and_counts_images() -> None:
    clock = EpochClock()
    loader = DataLoader(TensorDataset(torch.randn(12, 10), torch.zeros(12)), batch_size=4)
    _fit(_Tiny(step_sleep=0.05), loader, 3, clock)
    assert len(clock.epoch_times) == 3 and clock.epoch_images == [12, 12, 12]
    assert all(t >= 3 * 0.05 for t in clock.epoch_times)
    timing = clock.figures()
    assert timing.pretrain_epoch_time_s == statistics.median(clock.epoch_times[1:])
    assert timing.pretrain_first_epoch_time_s == clock.epoch_times[0]
    assert timing.images_per_s == pytest.approx(24 / sum(clock.epoch_times[1:]))
    assert timing.pretrain_time_s == pytest.approx(sum(clock.epoch_times))
    assert timing.data_wait_share is not None and 0 <= timing.data_wait_share < 0.5
    assert timing.pretrain_threads == torch.get_num_threads()


def test_data_wait_share_is_high_when_loading_dominates() -> None:
    clock = EpochClock()
    _fit(_Tiny(), DataLoader(_SlowData(), batch_size=4), 2, clock)
    assert clock.figures().data_wait_share > 0.5  # type: ignore[operator]


class _Busy(_Tiny):
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        end = time.perf_counter() + self.step_sleep
        while time.perf_counter() < end:
            pass
        return self.batch_loss(batch)


def test_cpu_share_tells_an_epoch_that_computed_from_one_that_was_kept_waiting() -> None:
    loader = DataLoader(TensorDataset(torch.randn(12, 10), torch.zeros(12)), batch_size=4)
    shares = {}
    for name, module in {"busy": _Busy(step_sleep=0.1), "waiting": _Tiny(step_sleep=0.1)}.items():
        clock = EpochClock()
        _fit(module, loader, 3, clock)
        assert len(clock.epoch_cpu_s) == 3
        shares[name] = clock.figures().pretrain_cpu_share
        assert shares[name] == pytest.approx(sum(clock.epoch_cpu_s[1:]) / sum(clock.epoch_times[1:]))
    # a busy epoch's share is the machine's to give (other workers may run beside it), a waiting one stays low
    assert shares["waiting"] < 0.5 and 2 * shares["waiting"] < shares["busy"] <= 1.05, shares


def test_cpu_share_is_not_taken_on_an_accelerator() -> None:
    clock = EpochClock()
    on_gpu = SimpleNamespace(device=torch.device("cuda"))
    clock.on_train_epoch_start(None, on_gpu)  # type: ignore[arg-type]
    clock.on_train_epoch_end(None, on_gpu)  # type: ignore[arg-type]
    assert clock.epoch_times and not clock.epoch_cpu_s
    assert clock.figures().pretrain_cpu_share is None


def test_flop_count_matches_analytic_and_leaves_the_module_untouched() -> None:
    module = _Tiny()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = torch.randn(4, 10)
    flops = count_step_flops(module, (x, None))
    assert flops == 2 * (2 * 4 * 10 * 20)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert all(p.grad is None for p in module.parameters())
    assert all(p.device.type == "cpu" for p in module.parameters())


class _Recorder(pl.Callback):
    """Records whether FLOPs were counted when each epoch started."""

    def __init__(self, flops: StepFlops) -> None:
        self.flops = flops
        self.counted_at_epoch_start: list[bool] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counted_at_epoch_start.append(self.flops.flops_per_step is not None)


def test_step_flops_callback_counts_per_image_before_the_clock_starts() -> None:
    flops = StepFlops()
    recorder = _Recorder(flops)
    module = _Tiny()
    devices: list[str] = []
    module.layer.register_forward_pre_hook(lambda m, args: devices.append(args[0].device.type))
    loader = DataLoader(TensorDataset(torch.randn(8, 10), torch.zeros(8)), batch_size=4)
    _fit(module, loader, 1, recorder, EpochClock(), flops)
    assert flops.flops_per_step == 1600 * 2 and flops.flops_per_image == 800
    assert recorder.counted_at_epoch_start == [True]
    assert devices.count("cpu") == 2, "the count ran a step on the real device"
    peak = device_peak_flops(torch.device("cpu"), "32-true")
    assert flops.device_peak_flops == peak, "a CPU run's peak: one thread's times the torch threads"
    assert flops.figures(100.0).mfu == (800 * 100.0 / peak if peak else None)


def test_model_flops_utilisation_arithmetic_with_a_stubbed_peak() -> None:
    assert model_flops_utilisation(2e9, 50.0, 1e12) == pytest.approx(0.1)
    assert model_flops_utilisation(2e9, 50.0, 1e12, world_size=4) == pytest.approx(0.025)
    assert model_flops_utilisation(None, 50.0, 1e12) is None
    assert model_flops_utilisation(2e9, 50.0, None) is None
    flops = StepFlops()
    flops.flops_per_image, flops.device_peak_flops = 4e9, 312e12
    assert flops.utilisation(1000.0, world_size=2) == pytest.approx(4e9 * 1000 / (2 * 312e12))


WIDE = 4096
WIDE_MB = WIDE * WIDE * 4 / 2**20
"""One activation of :class:`_Wide`: 64 MiB."""


class _Wide(pl.LightningModule):
    """A cheap step whose saved activations (several ``WIDE x WIDE`` tensors) dwarf the rest of the process's growth."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(WIDE))
        self.head = nn.Linear(WIDE, 8)

    def batch_loss(self, batch: tuple[torch.Tensor, None]) -> torch.Tensor:
        hidden = torch.tanh(torch.exp(batch[0] * self.scale))
        return self.head(hidden).pow(2).mean()


def _reset_peak_rss() -> None:
    """Resets this process's peak resident set (Linux: ``VmHWM``) to its current size."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _peak_during(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory in MiB while ``fn`` runs: CUDA max allocated on a GPU, else the process's peak RSS."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        return torch.cuda.max_memory_allocated(device) / 2**20
    _reset_peak_rss()
    fn()
    return _peak_rss_mb()


@pytest.mark.skipif(not torch.cuda.is_available() and not Path("/proc/self/clear_refs").exists(),
                    reason="needs CUDA or a resettable Linux peak RSS")
def test_flop_count_leaves_the_memory_peak_unchanged() -> None:
    """Run in a fresh process: after other tests the allocator reuses resident pages, so a step no longer moves RSS."""
    code = "from tests.test_measure import check_flop_count_leaves_the_memory_peak_unchanged as c; c()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def check_flop_count_leaves_the_memory_peak_unchanged() -> None:
    """A training step peaks as high with the FLOP count before it as without; a real step would raise the peak."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = _Wide().to(device)
    batch = (torch.randn(WIDE, WIDE, device=device), None)

    def step() -> None:
        module.batch_loss(batch).backward()
        module.zero_grad(set_to_none=True)

    plain = _peak_during(step, device)
    counted = _peak_during(lambda: (count_step_flops(module, batch), step()), device)
    counting_alone = _peak_during(lambda: count_step_flops(module, batch), device)
    baseline = _peak_during(lambda: None, device)
    assert plain - baseline > 2 * WIDE_MB
    assert counted == pytest.approx(plain, abs=0.25 * WIDE_MB)
    assert counting_alone - baseline < 0.25 * WIDE_MB


def _current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux ``/proc/self/statm``: pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def test_peak_memory_on_cpu_reports_no_gpu_figures() -> None:
    memory = PeakMemory()
    _fit(_Tiny(), DataLoader(TensorDataset(torch.randn(8, 10), torch.zeros(8)), batch_size=4), 1, memory)
    assert memory.allocated_mb == [] and memory.reserved_mb == []


def test_peak_rss_covers_a_large_allocation_in_mib() -> None:
    """Peak RSS is at least the resident size before plus a touched 256 MiB array, and not vastly more."""
    size_mb = 256
    before = _current_rss_mb()
    block = np.ones(size_mb * 2**20, dtype=np.uint8)
    peak = peak_rss_mb()
    assert int(block[-1]) == 1
    assert peak >= before + 0.95 * size_mb
    assert peak < max(before, 1.0) * 100 + size_mb


def test_effective_rank_of_rank_one_and_isotropic_features() -> None:
    generator = torch.Generator().manual_seed(0)
    rank_one = torch.randn(256, 1, generator=generator) @ torch.randn(1, 8, generator=generator)
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    isotropic = effective_rank(torch.randn(256, 8, generator=generator))
    assert 7.5 < isotropic <= 8 + 1e-6


class _TwoEncoders(pl.LightningModule):
    """A varying encoder and a constant-output one; records whether the encoders train in every step."""

    def __init__(self) -> None:
        super().__init__()
        self.varying = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8))
        self.constant = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8))
        with torch.no_grad():
            self.constant[1].weight.zero_()
            self.constant[1].bias.fill_(1.0)
        self.constant.requires_grad_(False)
        self.step_modes: list[bool] = []

    def encoders(self) -> dict[str, nn.Module]:
        return {"cnn": self.varying, "vit": self.constant}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.step_modes.append(self.varying.training and self.constant.training)
        return self.varying(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.varying.parameters(), lr=0.01)


def test_feature_collapse_tracks_every_epoch_in_eval_and_sees_a_constant_encoder() -> None:
    epochs = 3
    probe = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    collapse = FeatureCollapse(probe)
    module = _TwoEncoders()
    probe_calls: list[tuple[bool, bool]] = []
    module.varying.register_forward_pre_hook(
        lambda m, args: probe_calls.append((m.training, torch.is_grad_enabled())) if len(args[0]) == 64 else None)
    loader = DataLoader(TensorDataset(torch.randn(8, 3, 4, 4), torch.zeros(8)), batch_size=4)
    _fit(module, loader, epochs, collapse)
    assert probe_calls == [(False, False)] * (epochs + 1)
    for history in (collapse.std_history, collapse.rank_history):
        assert set(history) == {"cnn", "vit"}
        assert all(len(values) == epochs + 1 for values in history.values())
    assert module.step_modes == [True] * (2 * epochs)
    assert module.varying.training and module.constant.training
    assert collapse.std_history["vit"] == [0.0] * (epochs + 1)
    assert collapse.rank_history["vit"] == [0.0] * (epochs + 1)  # centred: a constant encoder spans nothing
    assert all(std > 0 for std in collapse.std_history["cnn"])
    assert all(rank > 1 for rank in collapse.rank_history["cnn"])
    assert feature_spread(torch.ones(5, 8)) == 0.0


@pytest.mark.parametrize(("exc", "status"), [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes. out of memory"), "oom"),
    (DivergedError("pretraining loss became nan"), "diverged"),
    (ValueError("something else\nsecond line"), "error"),
])
def test_failure_status(exc: BaseException, status: str) -> None:
    got, message = failure_status(exc)
    assert got == status and "\n" not in message and type(exc).__name__ in message


def test_non_finite_pretraining_loss_raises_diverged() -> None:
    from cass_bench.methods.cass import CASS, CassConfig
    from cass_bench.config.schema import BackboneConfig

    model = CASS(CassConfig(output_dim=8), BackboneConfig(vit_patch_size=8), image_size=16, seed=0)
    with torch.no_grad():
        model.cnn_head.weight.fill_(float("nan"))
    with pytest.raises(DivergedError, match="nan"):
        model.training_step(([torch.randn(2, 3, 16, 16)], torch.zeros(2)), 0)


class _NanAt(PretrainMethod):
    """A linear 'encoder' whose loss turns NaN at one step of the run (None: never)."""

    def __init__(self, nan_at: int | None) -> None:
        super().__init__()
        self.layer = nn.Linear(10, 8)
        self.nan_at = nan_at

    def encoders(self) -> dict[str, nn.Module]:
        return {"cnn": self.layer}

    def pretrain_loss(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.layer(views[0])
        loss = out.pow(2).mean()
        if self.global_step == self.nan_at:
            loss = loss * float("nan")
        return loss, out

    def build_optimizer(self, total_steps: int) -> Optimization:
        return Optimization.cosine(torch.optim.SGD(self.parameters(), lr=0.01), total_steps)


def _fit_views(module: pl.LightningModule, batches: int) -> None:
    data = [([torch.randn(4, 10)], torch.zeros(4)) for _ in range(batches)]
    _fit(module, DataLoader(data, batch_size=None), 1)


def test_a_non_finite_loss_between_checks_still_stops_the_run_as_diverged() -> None:
    steps = CHECK_EVERY_N_STEPS + 2
    healthy = _NanAt(None)
    _fit_views(healthy, steps)
    assert len(healthy.embedding_std_history) == 1 and healthy.embedding_std_history[0] > 0
    with pytest.raises(DivergedError, match="nan"):
        _fit_views(_NanAt(3), steps)
    with pytest.raises(DivergedError, match="nan"):
        _fit_views(_NanAt(CHECK_EVERY_N_STEPS + 1), steps)


class _RandomItems(Dataset):
    """Each item draws from torch's generator, as augmentations do."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(10), torch.tensor(0)


def test_sample_batch_takes_the_first_items_and_leaves_the_random_stream_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    x, y = sample_batch(DataLoader(_RandomItems(), batch_size=4, shuffle=True))
    assert x.shape == (4, 10) and y.shape == (4,)
    assert torch.equal(torch.rand(3), expected)
