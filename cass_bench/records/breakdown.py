"""Where a seed's time goes, from the figures the records carry: the start, pretraining, fine-tunes, probes, data
preparation, process start-up and waiting, in thread-minutes (wall time x the torch threads of the process that spent
it).

Per-cell figures (start-up, data, pretraining stage, lock waits: :class:`~cass_bench.records.schema.Spent`) repeat on
every record a cell process wrote and are taken once per process (``cell_process``); per-record figures (each
evaluation's wall time and wait) are summed. Records from before these figures existed fall back on what they carry:
a run's epochs (``pretrain_time_s``) and each fine-tune's training loop (``finetune_time_s``). A ``fractal`` start is
trained once and cached; its cost is shared equally by the seeds whose records began from it (one start per seed: the
whole start; one start behind twelve seeds: a twelfth each), and counted once in :func:`start_minutes` (each of its
trainings, where it was trained again on a machine its cache did not reach). Torch-free:
``status`` reads it while a sweep runs.
"""

from __future__ import annotations

import pandas as pd

from cass_bench.records.identity import RUN_KEYS

START, PRETRAINING, FINETUNES, PROBES, DATA, STARTUP, WAITING = (
    "start", "pretraining", "fine-tunes", "probes", "data", "start-up", "waiting")
CATEGORIES = (START, PRETRAINING, FINETUNES, PROBES, DATA, STARTUP, WAITING)
TOTAL = "total"
_NUMBERS = ("seed", "torch_threads", "pretrain_threads", "pretrain_time_s", "finetune_time_s", "cell_startup_s",
            "cell_wait_s", "data_time_s", "pretrain_wait_s", "pretrain_wall_s", "eval_wait_s", "eval_time_s",
            "start_train_s")


def _frame(records: pd.DataFrame | list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(records).reindex(columns=list(dict.fromkeys(
        [*RUN_KEYS, "eval", "cell_process", "start_key", *_NUMBERS, *pd.DataFrame(records).columns])))
    for column in _NUMBERS:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    return df


def items(records: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Every spending the records show, one row each: ``seed``, ``method``, ``encoders``, ``category`` (one of
    :data:`CATEGORIES`) and ``thread_min``.

    Args:
        records: records as written (a list of dicts) or as a frame.
    """
    df = _frame(records)
    threads = df["torch_threads"].fillna(1)
    pre_threads = df["pretrain_threads"].fillna(threads)
    keys = ["seed", "method", "encoders"]
    parts = []

    def add(rows: pd.DataFrame, category: str, seconds: pd.Series, per: pd.Series) -> None:
        minutes = seconds * per.loc[rows.index] / 60
        parts.append(rows[keys].assign(category=category, thread_min=minutes.to_numpy()))

    finetune = df["eval"] == "finetune"
    spent = df["eval_time_s"].fillna(df["finetune_time_s"].where(finetune))
    add(df[finetune], FINETUNES, spent[finetune], threads)
    add(df[~finetune], PROBES, df.loc[~finetune, "eval_time_s"], threads)
    add(df, WAITING, df["eval_wait_s"], threads)
    processes = df[df["cell_process"].notna()].drop_duplicates("cell_process")
    add(processes, PRETRAINING, processes["pretrain_wall_s"], pre_threads)
    add(processes, DATA, processes["data_time_s"], threads)
    add(processes, STARTUP, processes["cell_startup_s"], threads)
    add(processes, WAITING, processes["cell_wait_s"].fillna(0) + processes["pretrain_wait_s"].fillna(0), threads)
    traced = df.groupby([df[k].fillna(-1) for k in RUN_KEYS])["cell_process"].transform(lambda s: s.notna().any())
    older = df[~traced.astype(bool)].drop_duplicates(list(RUN_KEYS))
    add(older, PRETRAINING, older["pretrain_time_s"], pre_threads)
    parts.append(_start_shares(df))
    out = pd.concat(parts, ignore_index=True)
    return out[out["thread_min"].notna()]


def _starts(df: pd.DataFrame) -> pd.DataFrame:
    """One row per start the records began from: ``start_key``, the ``thread_min`` of its trainings and their count
    (``trainings``: more than one where the cache did not carry over to another machine and it was trained again)."""
    trained = df[df["start_train_s"].notna()].drop_duplicates(["start_key", "start_train_s"])
    minutes = trained["start_train_s"] * trained["torch_threads"].fillna(1) / 60
    per_training = trained[["start_key"]].assign(thread_min=minutes.to_numpy(), trainings=1)
    return per_training.groupby("start_key", sort=False, as_index=False).sum()


def _start_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Each start's training cost split equally among the seeds whose records began from it."""
    starts = _starts(df).set_index("start_key")["thread_min"]
    users = df[df["start_key"].isin(starts.index)].drop_duplicates(["start_key", "seed"])[["start_key", "seed"]]
    share = users["start_key"].map(starts / users.groupby("start_key").size())
    return users[["seed"]].assign(method=START, encoders="", category=START, thread_min=share.to_numpy())


def seed_minutes(records: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Thread-minutes per seed (rows) and :data:`CATEGORIES` (columns), with their :data:`TOTAL`; empty when the
    records show no spending. A seed whose records carry no start's figure (no ``fractal`` start, or records from
    before starts were timed) has NaN as its start."""
    spent = items(records)
    if spent.empty:
        return pd.DataFrame(columns=[*CATEGORIES, TOTAL])
    table = spent.pivot_table(index="seed", columns="category", values="thread_min", aggfunc="sum", fill_value=0.0)
    table = table.reindex(columns=list(CATEGORIES), fill_value=0.0)
    table.loc[~table.index.isin(spent.loc[spent["category"] == START, "seed"]), START] = float("nan")
    return table.assign(**{TOTAL: table.sum(axis=1)})


def cell_minutes(records: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Thread-minutes per (method, encoders) and category, the mean over the seeds that spent them (what one cell of
    each kind costs); the start is not a cell's and is left out."""
    spent = items(records)
    spent = spent[spent["category"] != START]
    if spent.empty:
        return pd.DataFrame(columns=[*CATEGORIES, TOTAL])
    per_seed = spent.groupby(["method", "encoders", "seed", "category"])["thread_min"].sum()
    table = per_seed.groupby(["method", "encoders", "category"]).mean().unstack("category", fill_value=0.0)
    table = table.reindex(columns=list(CATEGORIES), fill_value=0.0)
    return table.assign(**{TOTAL: table.sum(axis=1)})


def start_minutes(records: pd.DataFrame | list[dict]) -> float | None:
    """Thread-minutes of training the ``fractal`` starts the records began from, each start once (None: none)."""
    starts = _starts(_frame(records))
    return None if starts.empty else float(starts["thread_min"].sum())


def summary_lines(records: pd.DataFrame | list[dict]) -> list[str]:
    """What one cell of each kind costs (mean over its seeds), and what the starts cost, in words."""
    kinds = cell_minutes(records)
    lines = []
    if not kinds.empty:
        lines.append("Per cell (mean over seeds, thread-minutes): " + "; ".join(
            f"{method}/{encoders} {row[TOTAL]:.2f} (" + ", ".join(f"{c} {row[c]:.2f}" for c in CATEGORIES if row[c])
            + ")" for (method, encoders), row in kinds.iterrows()) + ".")
    starts = _starts(_frame(records))
    if not starts.empty:
        total = float(starts["thread_min"].sum())
        again = int(starts["trainings"].sum()) - len(starts)
        trained = f"{len(starts)} trained" + (f" ({again} trained again: a cache that did not reach a new machine)"
                                              if again else "")
        lines.append(f"The `fractal` starts: {trained}, {total:.2f} thread-minutes "
                     f"({total / len(starts):.2f} each), shared by every method of the seeds that began from them "
                     "(the start column splits each among its seeds).")
    return lines
