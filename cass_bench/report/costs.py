"""Pretraining efficiency per run setting, device and thread count: each figure's mean, spread and count over seeds,
and its ratio to the reference comparator on the same device and threads (the paper's cost claims compare with DINO,
the first registered comparator); a ratio is never taken across devices or thread counts. Runs timed beside other
work are left out of the times and named (:func:`contention_lines`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from cass_bench.config.registry import comparators
from cass_bench.report.cells import Indexed
from cass_bench.report.format import key_text, sort_rows
from cass_bench.report.load import (CONTENTION_BAR, CPU_SHARE, OTHERS, RUN_KEYS, THREADS, contended_runs,
                                    finished_pretraining, unchecked_runs)

COST_KEYS = ["dataset", "device", THREADS, "batch_size", "pretrain_epochs", "method", "encoders"]
COST_SETTING_KEYS = [key for key in COST_KEYS if key not in ("method", "encoders")]
"""What a ratio holds fixed: the runs compared share the dataset, device, torch threads, batch size and epochs."""
COST_REFERENCE = comparators()[0]
"""The method every efficiency ratio compares with."""
JOINT = "cnn+vit"
GPU_MEMORY, RSS = "peak_gpu_mem_mb", "peak_rss_mb"


@dataclass(frozen=True)
class Quantity:
    """An efficiency figure: its record field, how it is shown, and how the reference's cnn and vit runs combine
    to compare with a joint run (``sum``, ``max``, or ``rate``: 1 / (1/a + 1/b)); ``compared``: whether the table
    shows its ratio to the reference."""

    field: str
    header: str
    short: str
    fmt: str
    scale: float
    combine: str
    compared: bool = True


TIME = Quantity("pretrain_epoch_time_s", "time/epoch (s)", "time", ".2f", 1.0, "sum")
RATE = Quantity("images_per_s", "images/s", "img/s", ".1f", 1.0, "rate")
FLOPS = Quantity("flops_per_image", "GFLOPs/image", "FLOPs", ".3g", 1e-9, "sum")
PARAMS = Quantity("pretrain_params", "params (M)", "params", ".2f", 1e-6, "sum")
DATA_WAIT = Quantity("data_wait_share", "data wait (%)", "wait", ".1f", 100.0, "max", compared=False)
MFU = Quantity("mfu", "MFU (%)", "MFU", ".1f", 100.0, "max", compared=False)
"""Model-FLOPs utilisation of pretraining; shown when a run measured it (a GPU's peak from Lightning's table, a
CPU's from its instruction set and clock)."""
FINETUNE_MFU = Quantity("finetune_mfu", "fine-tune MFU (%)", "ft MFU", ".1f", 100.0, "max", compared=False)
"""Model-FLOPs utilisation of the fine-tunes of the run's encoders (mean over its fine-tune records)."""
DATA_WAIT_LIMIT = 0.05
"""A run that waits for data longer than this share of its epoch time measures its loader, not its method."""


def memory_quantity(field: str) -> Quantity:
    """Peak GPU memory, or the process's peak RSS on CPU runs."""
    header = "peak GPU mem (MB)" if field == GPU_MEMORY else "peak RSS (MB, CPU: no GPU memory)"
    return Quantity(field, header, "mem", ".0f", 1.0, "max")


_COMBINE: dict[str, Callable[[pd.Series], float]] = {
    "sum": lambda s: s.sum(skipna=False),
    "max": lambda s: s.max(skipna=False),
    "rate": lambda s: 1 / (1 / s).sum(skipna=False),
}
_PARTS = ("mean", "std", "n", "ratio")


@dataclass(frozen=True)
class CostStats(Indexed):
    """Efficiency per (dataset, device, batch size, epochs, method, encoders); every accessor is a Series on that
    index.

    Attributes:
        frame: columns (part, field) for parts mean, std, n and ratio.
        quantities: the figures computed, in table order.
    """

    quantities: tuple[Quantity, ...]

    @property
    def memory(self) -> Quantity:
        """The memory figure measured (GPU memory, or RSS on CPU)."""
        return self.quantities[2]

    def _part(self, part: str, quantity: Quantity) -> pd.Series:
        if quantity not in self.quantities:
            raise KeyError(f"efficiency figure '{quantity.field}' was not computed "
                           f"(computed: {', '.join(q.field for q in self.quantities)})")
        return self.frame[(part, quantity.field)]

    def mean(self, quantity: Quantity) -> pd.Series:
        """Mean over seeds."""
        return self._part("mean", quantity)

    def std(self, quantity: Quantity) -> pd.Series:
        """Sample standard deviation over seeds."""
        return self._part("std", quantity)

    def n(self, quantity: Quantity) -> pd.Series:
        """Runs measured."""
        return self._part("n", quantity)

    def ratio(self, quantity: Quantity) -> pd.Series:
        """Mean over the reference comparator's mean on the same encoders and device (a joint run: both of its runs)."""
        return self._part("ratio", quantity)

    def data(self) -> pd.DataFrame:
        """Flat numbers (``<field>_<part>`` columns) with the run keys as columns."""
        flat = self.frame.copy()
        flat.columns = [f"{field}_{part}" for part, field in flat.columns]
        return flat.reset_index()


def pretrain_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished pretraining run, with ``encoders`` (``cnn+vit`` for a joint run); ``finetune_mfu`` is
    the mean over the run's fine-tune records."""
    records = finished_pretraining(df)
    keys = [records[k].fillna(-1) for k in RUN_KEYS]
    tuned = records[FINETUNE_MFU.field].groupby(keys).transform("mean")
    return records.assign(**{FINETUNE_MFU.field: tuned}).drop_duplicates(list(RUN_KEYS))


def memory_field(runs: pd.DataFrame) -> str:
    """``peak_gpu_mem_mb`` when any run measured GPU memory, else ``peak_rss_mb`` (CPU runs)."""
    return GPU_MEMORY if runs[GPU_MEMORY].notna().any() else RSS


def _reference(means: pd.DataFrame, quantities: tuple[Quantity, ...]) -> pd.DataFrame:
    lookup = means.index.droplevel("method")
    if COST_REFERENCE not in means.index.get_level_values("method"):
        return pd.DataFrame(np.nan, index=lookup, columns=means.columns)
    ref = means.xs(COST_REFERENCE, level="method")
    pair = ref[ref.index.get_level_values("encoders").isin(JOINT.split("+"))]
    groups = pair.groupby(level=COST_SETTING_KEYS)
    combined = groups.agg({q.field: _COMBINE[q.combine] for q in quantities})[groups.size() == 2]
    combined = combined.assign(encoders=JOINT).set_index("encoders", append=True)
    return pd.concat([ref, combined]).reindex(lookup)


def cost_stats(runs: pd.DataFrame) -> CostStats:
    """Efficiency figures of every run setting over seeds, with ratios to the reference comparator.

    The ratio compares with the reference on the same encoders, dataset, device, threads, batch size and epochs
    (NaN when the reference did not run there); a joint (cnn+vit) run compares with the
    reference's cnn and vit runs together: time, FLOPs and parameters summed, images/s combined as
    1 / (1/a + 1/b), memory the larger of the two peaks. Model-FLOPs utilisation (pretraining, fine-tuning) is a
    column only when some run measured it.

    Args:
        runs: :func:`pretrain_runs`.
    """
    measured_mfu = tuple(q for q in (MFU, FINETUNE_MFU) if runs[q.field].notna().any())
    quantities = (TIME, RATE, memory_quantity(memory_field(runs)), FLOPS, PARAMS, DATA_WAIT, *measured_mfu)
    grouped = runs.groupby(COST_KEYS)[[q.field for q in quantities]]
    means = grouped.mean()
    parts = dict(zip(_PARTS, (means, grouped.std(), grouped.count(),
                              means / _reference(means, quantities).to_numpy())))
    return CostStats(sort_rows(pd.concat(parts, axis=1)), quantities)


def data_wait_warnings(costs: CostStats, limit: float = DATA_WAIT_LIMIT) -> list[str]:
    """One line per run setting whose mean data-wait share is above ``limit``, naming the setting and the share."""
    share = costs.mean(DATA_WAIT)
    over = share[share > limit]
    lines = []
    for key, value in over.items():
        run = {name: key_text(value) for name, value in zip(COST_KEYS, key)}
        lines.append(f"{run['method']} {run['encoders']} on {run['dataset']} ({run['device']}, batch "
                     f"{run['batch_size']}, {run['pretrain_epochs']} epochs): {100 * value:.1f}%")
    return lines


def _run_text(run: object) -> str:
    return (f"{getattr(run, 'method')}/{getattr(run, 'encoders')} bs={key_text(getattr(run, 'batch_size'))} "
            f"ep={key_text(getattr(run, 'pretrain_epochs'))} seed={getattr(run, 'seed')}")


def _company_text(run: object) -> str:
    share, others = getattr(run, CPU_SHARE), getattr(run, OTHERS)
    parts = ([f"CPU share {share:.2f}"] if pd.notna(share) and share < CONTENTION_BAR else []) + \
        ([f"{int(others)} other training process{'es' * (others != 1)}"] if pd.notna(others) and others > 0 else [])
    return ", ".join(parts)


def _unchecked_text(records: pd.DataFrame) -> str:
    """The unchecked runs; the seeds none of whose runs was checked are named as seeds."""
    unchecked, runs = unchecked_runs(records), pretrain_runs(records)
    whole, partial = [], []
    for seed, group in unchecked.groupby("seed", sort=True):
        if len(group) == int((runs["seed"] == seed).sum()):
            whole.append(key_text(seed))
        else:
            partial.extend(_run_text(r) for r in group.itertuples(index=False))
    return "; ".join([*([f"every run of seed{'s' * (len(whole) > 1)} {', '.join(whole)}"] if whole else []),
                      *partial])


def contention_lines(records: pd.DataFrame) -> list[str]:
    """Section 2's words on runs timed beside other work: the rule, the runs left out and the runs unchecked."""
    unchecked = unchecked_runs(records)
    if finished_pretraining(records).empty:
        return []
    line = (f"Timed alone: a CPU run's time per epoch, images/s and MFU count only when no other training process of "
            f"the harness ran on the machine during its measured epochs (`{OTHERS}`, sampled every few steps) and "
            f"its training thread ran at least {CONTENTION_BAR:.0%} of their wall time (`{CPU_SHARE}`); the others "
            "timed the machine's other load and are left out of this table and of claims (b) and (c)")
    left_out = contended_runs(records)
    named = [f"{_run_text(r)} ({_company_text(r)})" for r in left_out.itertuples(index=False)]
    lines = [line + (f": {len(named)} left out: " + "; ".join(named) + "." if named else "; none left out here.")]
    if not unchecked.empty:
        lines.append(f"Unchecked: {len(unchecked)} run{'s' * (len(unchecked) != 1)} recorded no count of other "
                     "processes (written before it existed) and are kept, their CPU share, where recorded, above the "
                     f"bar: {_unchecked_text(records)}.")
    return lines


def mfu_lines(costs: CostStats) -> list[str]:
    """Section 2's words on model-FLOPs utilisation, when a run measured it."""
    if not {MFU, FINETUNE_MFU} & set(costs.quantities):
        return []
    return ["MFU: model-FLOPs utilisation, FLOPs per image x images/s over the peak FLOP rate of the run's devices "
            "(`peak_flops` in each record): a GPU's at the run's precision (Lightning's `get_available_flops`), a "
            "CPU's as one thread's peak from its instruction set and clock times the torch threads "
            "(`cass_bench/engine/cpu_peak.py`; `cpu_peak_gflops` in the config overrides it); fine-tune MFU: the "
            "same for the fine-tunes of the run's encoders (mean over their records)."]


def thread_lines(runs: pd.DataFrame) -> list[str]:
    """Section 2's note when the pretraining runs used different torch thread counts (each a cost setting)."""
    threads = sorted(int(t) for t in runs[THREADS].unique())
    if len(threads) < 2:
        return []
    return [f"These pretraining runs used different torch thread counts ({', '.join(map(str, threads))}; "
            "`pretrain_threads` in each record): the thread count is part of each row's setting, so runs of "
            "different counts are never pooled, and a ratio compares runs of one count."]
