"""Where a seed's time goes (:mod:`cass_bench.records.breakdown`), as the report's section."""

from __future__ import annotations

import pandas as pd

from cass_bench.records.breakdown import seed_minutes, summary_lines
from cass_bench.report.format import key_text
from cass_bench.report.present.render import Section, Table

WORDS = ("Thread-minutes (wall time x the torch threads of the process that spent it) per seed, from the figures the "
         "records carry: the start (training the `fractal` start the seed began from, shared equally by the seeds "
         "that began from the same one), pretraining (the whole stage: module, FLOP count, collapse probes, epochs, checkpoint), "
         "fine-tunes and probes (each evaluation with its test, metrics and chance test), data (loading and "
         "decoding the dataset in each cell's process), start-up (each cell process's interpreter and imports) and "
         "waiting (for a cell's lock or the pretraining lock of `--pretrain-alone`). Records from before these "
         "figures were recorded show only their pretraining epochs and fine-tuning loops.")


def _number(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.2f}"


def spending_table(records: pd.DataFrame | list[dict]) -> Table | None:
    """One row per seed, one column per category and the total, in thread-minutes (None when nothing was spent)."""
    minutes = seed_minutes(records)
    if minutes.empty:
        return None
    cells = minutes.map(_number)
    cells.insert(0, "seed", [key_text(s) for s in minutes.index])
    return Table(cells.reset_index(drop=True), data=minutes.reset_index())


def spending_section(records: pd.DataFrame) -> Section:
    """The report's section "Where a seed's time goes"."""
    table = spending_table(records)
    if table is None:
        return Section("spending", "2b. Where a seed's time goes", ["No record carries a time figure."], level=3)
    return Section("spending", "2b. Where a seed's time goes", [WORDS], table, notes=summary_lines(records),
                   level=3)
