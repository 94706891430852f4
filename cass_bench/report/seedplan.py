"""Seeds planned from a pilot, blind to the effect: what each row of the paper's family needs, from spreads alone.

An internal pilot in the sense of Wittes & Brittain (1990): after the pilot's seeds, each comparison a family row
rests on (for a row against the best other method, every comparator: the intersection-union test needs each
comparison to reach the family's level) gives the standard deviation of its per-seed paired differences; the seeds
a two-sided paired test at Holm's first level needs to detect the configured target with the configured power follow
from that spread (:func:`cass_bench.report.stats.power.exact_need`). The level is alpha / family size, divided again by
a best-other row's comparators (its "contradicted" takes the smallest of their p values, Bonferroni over them), and no
row is planned below the seeds whose exact sign-flip test can reach that level at all
(:func:`cass_bench.report.stats.power.exact_floor`). No mean difference enters: flipping the sign of a row's
differences, or shifting them all, leaves the plan as it is. The plan is the largest row's need, no fewer than the
pilot's seeds and no more than the cap. The sweep runs the stages
(:mod:`cass_bench.run.sweep`); the report states the plan again from the pilot's records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cass_bench.config.claim_row import BEST
from cass_bench.config.schema import BenchConfig
from cass_bench.report.stats.power import exact_floor, exact_need


@dataclass(frozen=True)
class RowNeed:
    """One family row's need.

    Attributes:
        key: the family row.
        sd: the largest spread (points) of the per-seed paired differences of the comparisons it rests on.
        n: pilot seeds behind that spread.
        needed: the seeds that spread needs (None: more than the cap, or no spread measured).
        comparisons: the comparisons whose smallest p a verdict against the row may take (a best-other row's
            comparators; 1 otherwise).
    """

    key: str
    sd: float
    n: int
    needed: int | None
    comparisons: int = 1


@dataclass(frozen=True)
class SeedPlan:
    """A plan and its inputs."""

    pilot: tuple[int, ...]
    target: float
    power: float
    alpha: float
    family_size: int
    cap: int
    rows: tuple[RowNeed, ...]

    @property
    def floor(self) -> int:
        """The fewest seeds whose exact sign-flip test can call every row at Holm's first level, either way (its
        smallest p is 2 / 2^n, times a best-other row's comparators), so that no row is planned into a design that
        cannot call it."""
        return max([exact_floor(self.alpha, self.family_size, r.comparisons) for r in self.rows]
                   or [exact_floor(self.alpha, self.family_size)])

    @property
    def planned(self) -> int:
        """The seeds the plan asks for: the largest row's need, no fewer than the pilot's seeds and the exact test's
        floor, no more than the cap (the cap when a row's need exceeds it or cannot be measured)."""
        needs = [self.cap if r.needed is None else r.needed for r in self.rows] or [self.cap]
        return min(self.cap, max(len(self.pilot), self.floor, *needs))


def planned_seeds(sds: list[float], pilot: int, target: float, alpha: float, family_size: int, power: float,
                  cap: int, comparisons: int = 1) -> int:
    """The plan from the rows' spreads alone (see :class:`SeedPlan`), every row with ``comparisons``."""
    rows = tuple(RowNeed(str(k), sd, pilot, exact_need(sd, target, alpha, family_size, power, cap, comparisons),
                         comparisons) for k, sd in enumerate(sds))
    return SeedPlan(tuple(range(pilot)), target, power, alpha, family_size, cap, rows).planned


def _comparison_spreads(claims: pd.DataFrame, key: str) -> pd.DataFrame:
    """The comparisons a family row rests on: for a best-other row, its per-comparator rows; else the row."""
    if key.endswith(f":{BEST}"):
        prefix = key[: -len(BEST)]
        parts = claims[claims["key"].str.startswith(prefix) & (claims["key"] != key)]
        parts = parts[~parts["key"].str[len(prefix):].str.contains(":")]
        if not parts.empty:
            return parts
    return claims[claims["key"] == key]


def seed_plan(claims: pd.DataFrame, cfg: BenchConfig) -> SeedPlan:
    """The plan from the claim rows of the pilot's records (their ``sd`` and ``n`` columns only).

    Args:
        claims: :func:`cass_bench.report.claims.decide.check_claims` of the pilot's records.
        cfg: the results folder's config (``plan``, ``claims.alpha``, the seeds).
    """
    family = claims[claims["in_family"].astype(bool) & (claims["family"] == "paper")]
    rows = []
    for key in family["key"]:
        parts = _comparison_spreads(claims, key)
        spreads = pd.to_numeric(parts["sd"], errors="coerce")
        n = int(pd.to_numeric(parts["n"], errors="coerce").min()) if len(parts) else 0
        k = len(parts) if key.endswith(f":{BEST}") else 1
        if spreads.isna().any() or spreads.empty:
            rows.append(RowNeed(key, float("nan"), n, None, k))
            continue
        sd = float(spreads.max())
        rows.append(RowNeed(key, sd, n, exact_need(sd, cfg.plan.target, cfg.claims.alpha, len(family), cfg.plan.power,
                                              cfg.plan.cap, k), k))
    return SeedPlan(cfg.plan.pilot_seeds(cfg.seeds), cfg.plan.target, cfg.plan.power, cfg.claims.alpha, len(family),
                    cfg.plan.cap, tuple(rows))


def plan_from_folder(out: Path, cfg: BenchConfig) -> SeedPlan:
    """The plan from a results folder's records of the pilot's seeds (every other record left out)."""
    from cass_bench.report.analysis import analyse
    from cass_bench.report.load import load_records

    records = load_records(out)
    pilot = records[records["seed"].isin(cfg.plan.pilot_seeds(cfg.seeds))]
    return seed_plan(analyse(pilot, out).claims, cfg)


def plan_lines(plan: SeedPlan, planned: int | None) -> list[str]:
    """The plan in the report: its inputs, each row's need and its result."""
    lines = [f"Seeds were planned from a pilot of {len(plan.pilot)} seeds ({', '.join(map(str, plan.pilot))}), blind "
             f"to the effect: each row of the paper's family ({plan.family_size} rows) needs the seeds that detect "
             f"{plan.target:g} macro-F1 points with power {plan.power:g} in a two-sided paired test at alpha "
             f"{plan.alpha:g}/{plan.family_size} (a best-other row's level divided again by its comparators: its "
             f"\"contradicted\" takes the smallest of their p values), given the largest spread of the comparisons it "
             f"rests on; the plan takes the largest need, at least the {plan.floor} seeds the exact sign-flip test needs "
             f"to call every row at that level at all, within [{len(plan.pilot)}, {plan.cap}], and asks for "
             f"{plan.planned} seeds"
             + (f" (registered: {planned})." if planned is not None and planned != plan.planned else ".")]
    if planned is None:
        lines.insert(0, "The pilot is under way: the sweep computes this plan from the pilot's records, and registers "
                        "it in config.yaml, once every pilot cell has them; below, what the records so far give.")
    for row in plan.rows:
        if math.isnan(row.sd):
            lines.append(f"- {row.key}: no spread yet (not measured), counted as needing the cap, {plan.cap}")
            continue
        need = f"{row.needed}" if row.needed is not None else f"more than {plan.cap}"
        lines.append(f"- {row.key}: spread {row.sd:.2f} points over {row.n} seeds, needs {need}")
    return lines
