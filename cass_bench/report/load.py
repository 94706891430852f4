"""Records of a results folder as one frame, every record field a column, with the few derived columns the
analysis needs: the above-chance verdict recomputed from the stored figures, ``run_collapsed`` and ``pretrained``, and a
CPU's device label refined by its per-thread peak where one label covers several machine types.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from cass_bench.evaluation.chance import is_above_chance
from cass_bench.errors import UserError
from cass_bench.records.identity import RUN_KEYS, SETTING_KEYS
from cass_bench.records.schema import NUMERIC_FIELDS, OK, RECORD_FIELDS
from cass_bench.config.registry import reference_methods
from cass_bench.records.store import RecordStore
from cass_bench.report.validate import check_records

"""The fields that identify one pretraining run (a CASS run gives the records of two encoders); the same settings
on another device are another run."""
RUN_COLLAPSED = "run_collapsed"
RANK_HISTORY = "centred_rank_history"
"""The record field of an encoder's centred effective rank per epoch: its ``collapsed`` flag counts as measured only
where this field is filled (a record from before the centred measure, with ``feature_rank_history``, has none)."""
PRETRAINED = "pretrained"
CPU_SHARE = "pretrain_cpu_share"
CONTENTION_BAR = 0.8
"""Below this share of its measured epochs' wall time on the CPU, a run's training thread was kept waiting (another
job took its cores, or the process was paused): its times measured the machine, not the method."""
OTHERS = "pretrain_other_processes"
"""The record field of the most other training processes of the harness seen on the machine during a run's measured
epochs (:mod:`cass_bench.engine.neighbours`)."""
THREADS = "threads"
"""Derived: the torch threads a pretraining run trained with (``pretrain_threads``; records from before it was
recorded: the writing process's ``torch_threads``; 0 where neither is known). Part of a cost setting: runs of
different thread counts are never pooled or compared."""
CONTENDED = "time_contended"
ALONE = "timed_alone"
"""Derived, per record: True when its pretraining run was timed alone (no other training process on a CPU, and the
training thread's CPU share at or above :data:`CONTENTION_BAR`), False when it was not (:data:`CONTENDED`), None when
unchecked (a record from before the process count was recorded, not found contended by its CPU share)."""
STEADY_TIMES = ("pretrain_epoch_time_s", "images_per_s", "mfu")
"""The figures taken over the measured epochs; a contended run's are read as missing."""
PEAK_WORDS = "GFLOP/s a thread"
"""What follows a CPU's per-thread peak in its refined device label."""
PEAK_SPREAD = 1.25
"""Per-thread peaks within this factor of each other are one machine type (the clock read off ``/proc/cpuinfo`` varies
a little between machines of one type; another vector width doubles the peak)."""
_CHANCE_INPUTS = ["f1_macro", "above_chance_p", "chance_f1_majority", "chance_f1_random"]


def load_records(out: Path) -> pd.DataFrame:
    """Every record of a results folder, one row each (:func:`normalise`), oldest first (by ``created_at``, then
    ``record_id``): the report does not depend on how the records are stored (shards interleave their appends, and
    ``records.d/`` holds one file per record).

    Raises:
        UserError: the records file is missing, empty or holds a line that is not a JSON record, a record the
            report cannot trust (:func:`cass_bench.report.validate.check_records`: a number out of range, an
            unknown word, a copy under another id), or finished records of different configurations would be pooled
            as seeds (:func:`refuse_pooled_configs`).
    """
    store = RecordStore(out)
    records = store.load()
    if not records:
        state = "is empty" if store.path.exists() else "does not exist"
        raise UserError(f"{store.path} {state}: run `python -m cass_bench run --out {out}` first, "
                        f"or pass the folder that holds records.jsonl")
    check_records(records, store.path)
    records.sort(key=lambda r: (str(r.get("created_at") or ""), r["record_id"]))
    frame = normalise(pd.DataFrame(records))
    refuse_pooled_configs(frame, store.path)
    return frame


def refuse_pooled_configs(df: pd.DataFrame, path: Path) -> None:
    """Refuses finished records of different configurations (``config_hash``) in one table cell.

    Records that differ in a setting outside the cell's keys (a learning rate, the image size, ...) are not seeds of
    one setting, so the report does not average them; failed records are listed whatever their configuration.

    Raises:
        UserError: naming the cell, the hashes and the fix (one results folder per configuration).
    """
    ok = df[df["status"] == OK]
    hashes = ok.groupby(list(SETTING_KEYS), dropna=False)["config_hash"].unique()
    mixed = hashes[hashes.map(len) > 1]
    if mixed.empty:
        return
    cell = ", ".join(f"{k} {v}" for k, v in zip(SETTING_KEYS, mixed.index[0]) if not pd.isna(v))
    raise UserError(
        f"{path} holds finished records of {len(mixed.iloc[0])} configurations (config_hash "
        f"{', '.join(sorted(map(str, mixed.iloc[0])))}) for one setting ({cell}), which are not seeds of one "
        "configuration; move the records of all but one configuration to another folder (one --out per configuration)"
    )


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """A records frame with every record field as a column, numbers as numbers and the derived columns.

    Records written before a field existed read it as missing; ``eval`` defaults to ``finetune``, ``init`` to
    ``random`` and ``encoders`` to the record's arch. ``above_chance`` is recomputed where its inputs are stored.
    ``collapsed`` is None (not measured) where :data:`RANK_HISTORY` is empty. ``run_collapsed`` is True on every
    record of a pretraining run any of whose encoders collapsed; ``pretrained``
    is False for the no-pretraining reference methods (:func:`cass_bench.config.registry.reference_methods`).
    ``time_contended`` is True where the run's CPU share is below :data:`CONTENTION_BAR` or, on a CPU, another
    training process ran beside it (:data:`OTHERS` above 0); its :data:`STEADY_TIMES` are then missing. An
    accelerator's time is not left out for processes beside it (they may use other devices of the machine).
    ``timed_alone`` (:data:`ALONE`) and ``threads`` (:data:`THREADS`) are derived, and ``device`` tells CPU machine
    types apart (:func:`cpu_devices`).
    """
    df = frame.reindex(columns=list(dict.fromkeys([*RECORD_FIELDS, *frame.columns])))
    for column in NUMERIC_FIELDS:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    known = df[_CHANCE_INPUTS].notna().all(axis=1)
    if known.any():
        df["above_chance"] = df["above_chance"].astype(object)
        df.loc[known, "above_chance"] = [is_above_chance(*row)
                                         for row in df.loc[known, _CHANCE_INPUTS].itertuples(index=False)]
    df["eval"] = df["eval"].fillna("finetune")
    df["init"] = df["init"].fillna("random")
    df["encoders"] = df["encoders"].fillna(df["arch"])
    if RANK_HISTORY not in df:
        df[RANK_HISTORY] = None
    measured = df[RANK_HISTORY].map(lambda h: isinstance(h, list) and len(h) > 0)
    df["collapsed"] = df["collapsed"].astype(object).where(measured, None)
    flagged = df["collapsed"].eq(True)
    df[RUN_COLLAPSED] = flagged.groupby([df[k].fillna(-1) for k in RUN_KEYS]).transform("any")
    df[PRETRAINED] = ~df["method"].isin(reference_methods())
    on_cpu = df["device"].fillna("").astype(str).str.startswith("CPU")
    beside = df[OTHERS].gt(0) & on_cpu
    df[CONTENDED] = df[CPU_SHARE].lt(CONTENTION_BAR) | beside
    df.loc[df[CONTENDED], list(STEADY_TIMES)] = float("nan")
    checked = df[OTHERS].notna() | ~on_cpu
    df[ALONE] = pd.Series(None, index=df.index, dtype=object).mask(checked, True).mask(df[CONTENDED], False)
    df[THREADS] = df["pretrain_threads"].fillna(df["torch_threads"]).fillna(0)
    df["device"] = cpu_devices(df)
    return df


def _peak_classes(peaks: pd.Series) -> pd.Series:
    """Each peak mapped to the lowest of its class: sorted peaks within :data:`PEAK_SPREAD` of a class's lowest."""
    lowest: dict[float, float] = {}
    low = math.nan
    for peak in sorted(set(peaks.dropna())):
        if not peak <= low * PEAK_SPREAD:
            low = peak
        lowest[peak] = low
    return peaks.map(lowest)


def cpu_devices(df: pd.DataFrame) -> pd.Series:
    """Each record's device, a CPU's told apart by its per-thread peak where one CPU label covers several machines.

    A CPU's label names its architecture and cores only (``CPU (x86_64, 2 cores)``), so two machine types under one
    label would read as one device and their times be pooled as seeds of one setting. The peak each pretraining
    record carries (``peak_flops`` per thread, from the vector width and clock of ``/proc/cpuinfo``) tells them apart:
    where the peaks under one label fall into more than one class (:func:`_peak_classes`), each such record's label
    gains its class's peak, ``CPU (x86_64, 2 cores, 78 GFLOP/s a thread)``. Records without a peak (the reference
    methods) keep the plain label.
    """
    device = df["device"]
    on_cpu = device.fillna("").astype(str).str.startswith("CPU")
    peak = (df["peak_flops"] / df[THREADS].where(df[THREADS] > 0)).where(on_cpu)
    classes = pd.concat([_peak_classes(group) for _, group in peak.groupby(device)]) if peak.notna().any() else peak
    classes = classes.reindex(df.index)
    counts = classes.groupby(device).nunique()
    several = device.isin(counts[counts > 1].index) & classes.notna()
    if not several.any():
        return device
    label = (device[several].astype(str).str.removesuffix(")") + ", "
             + (classes[several] / 1e9).map("{:.0f}".format) + f" {PEAK_WORDS})")
    return device.where(~several, label)


def short_device(device: str) -> str:
    """A CPU label with its peak (:func:`cpu_devices`) as ``CPU 78 GF/s``; any other device as it is."""
    peak = re.fullmatch(rf"CPU \(.*, (\d+) {PEAK_WORDS}\)", device)
    return f"CPU {peak.group(1)} GF/s" if peak else device


def contended_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished pretraining run whose times were left out (:data:`CONTENDED`), with its CPU share and
    the other training processes it saw."""
    runs = finished_pretraining(df)
    return runs.loc[runs[CONTENDED], [*RUN_KEYS, CPU_SHARE, OTHERS]].drop_duplicates(list(RUN_KEYS))


def unchecked_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished pretraining run whose company was not checked (:data:`ALONE` None): kept, and named."""
    runs = finished_pretraining(df)
    return runs.loc[runs[ALONE].isna(), list(RUN_KEYS)].drop_duplicates(list(RUN_KEYS))


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """The records whose status is ok."""
    return df[df["status"] == OK]


def finished_pretraining(df: pd.DataFrame) -> pd.DataFrame:
    """Finished records of pretrained encoders."""
    ok = finished(df)
    return ok[ok[PRETRAINED]]
