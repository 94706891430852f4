"""Records of a results folder as one frame, every record field a column, with the few derived columns the
analysis needs: the above-chance verdict recomputed from the stored figures, ``run_collapsed`` and ``pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cass_bench.chance import is_above_chance
from cass_bench.errors import UserError
from cass_bench.record import NUMERIC_FIELDS, OK, RECORD_FIELDS
from cass_bench.registry import reference_methods
from cass_bench.results import RecordStore

RUN_KEYS = ["dataset", "method", "encoders", "batch_size", "pretrain_epochs", "seed", "device"]
"""The fields that identify one pretraining run (a CASS run gives the records of two encoders); the same settings
on another device are another run."""
RUN_COLLAPSED = "run_collapsed"
PRETRAINED = "pretrained"
_CHANCE_INPUTS = ["f1_macro", "above_chance_p", "chance_f1_majority", "chance_f1_random"]


def load_records(out: Path) -> pd.DataFrame:
    """Every record of a results folder, one row each (:func:`normalise`).

    Raises:
        UserError: the records file is missing, empty or not JSON lines.
    """
    store = RecordStore(out)
    try:
        records = store.load()
    except json.JSONDecodeError as exc:
        raise UserError(f"{store.path} has a line that is not JSON ({exc.msg}); fix or remove that line") from None
    if not records:
        state = "is empty" if store.path.exists() else "does not exist"
        raise UserError(f"{store.path} {state}: run `python -m cass_bench run --out {out}` first, "
                        f"or pass the folder that holds records.jsonl")
    return normalise(pd.DataFrame(records))


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """A records frame with every record field as a column, numbers as numbers and the derived columns.

    Records written before a field existed read it as missing; ``eval`` defaults to ``finetune``, ``init`` to
    ``random`` and ``encoders`` to the record's arch. ``above_chance`` is recomputed where its inputs are stored.
    ``run_collapsed`` is True on every record of a pretraining run any of whose encoders collapsed; ``pretrained``
    is False for the no-pretraining reference methods (:func:`cass_bench.registry.reference_methods`).
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
    flagged = df["collapsed"].eq(True)
    df[RUN_COLLAPSED] = flagged.groupby([df[k].fillna(-1) for k in RUN_KEYS]).transform("any")
    df[PRETRAINED] = ~df["method"].isin(reference_methods())
    return df


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """The records whose status is ok."""
    return df[df["status"] == OK]


def finished_pretraining(df: pd.DataFrame) -> pd.DataFrame:
    """Finished records of pretrained encoders."""
    ok = finished(df)
    return ok[ok[PRETRAINED]]
