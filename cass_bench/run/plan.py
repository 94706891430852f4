"""The plan of a sweep before it runs: every cell and record, which are done, failed or pending, and the time left.

``run --dry-run`` prints it and writes nothing. The time left is estimated from the records of finished cells of the
same kind (method, encoders, dataset, batch size, pretraining epochs) in the same folder: their pretraining time plus
their fine-tuning times, per missing record; without such a cell the estimate is "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from tabulate import tabulate

from cass_bench.config.schema import BenchConfig
from cass_bench.records.identity import Cell, expected_ids
from cass_bench.config.vocabulary import Status
from cass_bench.records.schema import OK
from cass_bench.run.grid import shard_cells

INTERRUPTED = Status.INTERRUPTED
KIND = ["dataset", "method", "encoders", "batch_size", "pretrain_epochs"]


@dataclass(frozen=True)
class CellPlan:
    """One cell's records and their state.

    Attributes:
        cell: the cell.
        done: ids of its finished (ok) records.
        failed: ids of its failed records (retried by ``run --retry-failed``).
        pending: ids of its records not written yet, or written as ``interrupted`` (a plain rerun runs them).
        interrupted: the pending ids written as ``interrupted``, which the rerun removes first.
    """

    cell: Cell
    done: tuple[str, ...]
    failed: tuple[str, ...]
    pending: tuple[str, ...]
    interrupted: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        """``done``, ``failed``, ``pending`` or ``partial``."""
        if not self.pending and not self.failed:
            return "done"
        if not self.pending:
            return "failed"
        return "pending" if not self.done and not self.failed else "partial"


def plan_sweep(cfg: BenchConfig, records: list[dict[str, Any]], shard: tuple[int, int] = (0, 1)) -> list[CellPlan]:
    """The state of every cell of this shard given the records already written."""
    status = {r["record_id"]: r.get("status") for r in records}
    plans = []
    for cell in shard_cells(cfg, shard):
        ids = expected_ids(cell, cfg)
        plans.append(CellPlan(cell, tuple(i for i in ids if status.get(i) == OK),
                              tuple(i for i in ids if i in status and status[i] not in (OK, INTERRUPTED)),
                              tuple(i for i in ids if status.get(i, INTERRUPTED) == INTERRUPTED),
                              tuple(i for i in ids if status.get(i) == INTERRUPTED)))
    return plans


def _seconds_per_record(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], float]:
    """Wall time per record of each kind of finished cell: (pretraining + fine-tuning) / records."""
    ok = pd.DataFrame([r for r in records if r.get("status") == OK])
    if ok.empty:
        return {}
    ok = ok.assign(encoders=ok["encoders"].fillna(ok["arch"]) if "encoders" in ok else ok["arch"],
                   batch_size=ok["batch_size"].fillna(-1))
    for column in ("pretrain_time_s", "finetune_time_s"):
        ok[column] = pd.to_numeric(ok[column], errors="coerce") if column in ok else 0.0
    per_run = ok.groupby([*KIND, "seed"]).agg(pretrain=("pretrain_time_s", "first"),
                                              finetune=("finetune_time_s", "sum"), n=("record_id", "size"))
    per_run["per_record"] = (per_run["pretrain"].fillna(0) + per_run["finetune"]) / per_run["n"]
    return per_run.groupby(KIND)["per_record"].mean().to_dict()


def _kind(cell: Cell) -> tuple[Any, ...]:
    return (cell.dataset, cell.method, "+".join(cell.archs), -1 if cell.batch_size is None else cell.batch_size,
            cell.pretrain_epochs)


def seed_plan_text(cfg: BenchConfig, plans: list[CellPlan], records: list[dict[str, Any]]) -> str | None:
    """The seed plan in a dry run (None without one): the pilot shown above, or the seeds the plan registered; before
    the plan, how many more seeds it may ask for (up to the cap) and what one seed costs, from finished cells of
    the same kinds (a seed's records at their rates, one process at a time)."""
    plan = cfg.plan
    if not plan.pilot:
        return None
    if plan.planned is not None:
        return (f"Seeds: {plan.planned} planned from a pilot of {plan.pilot} and registered in the folder's config.yaml: "
                f"{', '.join(map(str, cfg.seeds))}.")
    pilot = plan.pilot_seeds(cfg.seeds)
    rates = _seconds_per_record(records)
    first = [p for p in plans if p.cell.seed == pilot[0]]
    known = [rates[_kind(p.cell)] * (len(p.done) + len(p.failed) + len(p.pending)) for p in first
             if _kind(p.cell) in rates]
    per_seed = (f"about {sum(known) / 60:.0f} minutes of one process a seed, so up to about "
                f"{(plan.cap - plan.pilot) * sum(known) / 60:.0f} more" if first and len(known) == len(first)
                else "a seed's time unknown until one has run here")
    return (f"Seeds: planned from a pilot of {plan.pilot} ({', '.join(map(str, pilot))}, the cells above); from the "
            f"pilot's spreads alone the plan then asks for between {plan.pilot} and {plan.cap} seeds in all (at least "
            f"the exact test's floor for the family), up to {plan.cap - plan.pilot} more: {per_seed}.")


def render_plan(plans: list[CellPlan], records: list[dict[str, Any]]) -> str:
    """The plan as a table with a summary line (cells, records, estimated time left)."""
    rates = _seconds_per_record(records)
    rows, left, unknown = [], 0.0, 0
    for plan in plans:
        cell = plan.cell
        key = _kind(cell)
        todo = len(plan.pending) + len(plan.failed)
        estimate = "—"
        if todo:
            if key in rates:
                left += rates[key] * todo
                estimate = f"{rates[key] * todo / 60:.0f} min"
            else:
                unknown += 1
                estimate = "unknown"
        rows.append([cell.describe(), plan.state, len(plan.done), len(plan.failed), len(plan.pending), estimate])
    table = tabulate(rows, headers=["cell", "state", "done", "failed", "pending", "time left"], tablefmt="github")
    counts = {state: sum(p.state == state for p in plans) for state in ("done", "partial", "failed", "pending")}
    n_records = sum(len(p.done) + len(p.failed) + len(p.pending) for p in plans)
    missing = sum(len(p.pending) for p in plans)
    time_left = f"about {left / 60:.0f} min" + (f" plus {unknown} cell(s) of unknown duration" if unknown else "")
    if not unknown and not left:
        time_left = "nothing"
    if unknown and not left:
        time_left = "unknown (no finished cell of the same kind in this folder)"
    summary = (f"{len(plans)} cells ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}), {n_records} records "
               f"({missing} pending, {sum(len(p.failed) for p in plans)} failed); time left: {time_left}. "
               "Nothing was written (dry run).")
    return table + "\n\n" + summary
