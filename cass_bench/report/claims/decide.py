"""Checks of the CASS paper's claims against the records: every row the families and the records name, measured
(:mod:`.measure`, by the kinds of :mod:`.specs`), then decided: Holm's correction over each pre-registered family,
the verdicts, the power of the design, and the flags beside each row (collapse, a comparator below its start, the
two metrics disagreeing in sign, seeds run on several code versions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cass_bench.config.claim_row import ACROSS, BEST, LEVELLED
from cass_bench.config.registry import PROPOSED, comparators, reference_methods
from cass_bench.report.claims.cells import CellTable, prepare
from cass_bench.report.claims.family import Family, claim_family, ordered, record_rows
from cass_bench.report.claims.gains import paper_reading, prediction_bootstrap
from cass_bench.report.claims.measure import Measurer
from cass_bench.report.claims.rows import MIN_SEEDS, NOT_MEASURED, REFERENCE_EFFECT, Context, Row
from cass_bench.report.claims.specs import OUTSIDE, PAPER, START
from cass_bench.report.claims.starts import start_flag
from cass_bench.report.cost_claims import cost_rows
from cass_bench.report.stats.intervals import SEED_TESTS, Interval
from cass_bench.report.stats.multiple import holm
from cass_bench.report.stats.power import MAX_SEEDS, exact_floor, power_of
from cass_bench.report.versions import mixed_within, record_commits
from cass_bench.report.stats.verdicts import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, TOO_FEW_SEEDS,
                                              zero_variance_status)

COLUMNS = ["key", "kind", "claim", "comparator", "dataset", "arch", "fraction", "level", "eval", "paper", "measured",
           "estimate", "low", "high", "n", "sd", "p", "test", "p_holm", "family", "in_family", "mde", "seeds_needed",
           "power", "code_estimate", "code_low", "code_high", "paper_value", "collapse", "flags", "notes", "mixed_seeds",
           "status"]


def _range(values: tuple[float, float], fmt: str) -> str:
    return f" [{values[0]:{fmt}}, {values[1]:{fmt}}]" if all(math.isfinite(v) for v in values) else ""


def _need(need: int | None, needs: tuple[int | None, int | None]) -> str:
    if need is None:
        return f"more than {MAX_SEEDS:,} seeds"
    high = f"{needs[1]}" if needs[1] is not None else f">{MAX_SEEDS:,}"
    return f"≈ {need} [{needs[0]}, {high}] seeds" if needs[0] is not None else f"≈ {need} seeds"


def _power(row: Row, status: str, family: Family, size: int) -> tuple[str, float, int | None]:
    """The power line of a tested row: on macro-F1 for the declared effect, on f1_seed_code for the paper's gain."""
    n, sd = row.interval.n, row.sd
    if not row.tested or n == 0:
        return "—", math.nan, None
    if n < 2 or not math.isfinite(sd):
        return f"{n} seed{'s' * (n != 1)}: no spread to judge power", math.nan, None
    k = row.comparisons
    f1 = power_of(n, sd, REFERENCE_EFFECT, family.alpha, size, family.power, comparisons=k)
    if math.isinf(f1.mde) and n < exact_floor(family.alpha, size):
        able = f"{n} seeds detect no difference: the exact sign-flip test's smallest p, 2/2^{n}, cannot reach alpha/{size}"
    elif math.isinf(f1.mde):
        able = (f"{n} seeds cannot call the row contradicted: the smallest p of that side, {k} x 2/2^{n}, cannot reach "
                f"alpha/{size}")
    else:
        able = f"{n} seeds detect >= {f1.mde:.1f}{_range(f1.mde_range, '.1f')} macro-F1 points"
    text = f"{able}; a {REFERENCE_EFFECT:g}-point difference needs {_need(f1.need, f1.need_range)}"
    if math.isfinite(row.effect) and row.code.n >= 2:
        code_sd = float(row.per_seed_code.std(ddof=1))
        paper = power_of(row.code.n, code_sd, row.effect, family.alpha, size, family.power, comparisons=k)
        text += (f"; the paper's +{row.effect:g} on f1_seed_code (spread {code_sd:.2f}) needs "
                 f"{_need(paper.need, paper.need_range)}")
    underpowered = status not in (SUPPORTED, CONTRADICTED) and f1.mde > REFERENCE_EFFECT
    return ("underpowered: " if underpowered else "") + text, f1.mde, f1.need


def _status(row: Row, member: bool, p_holm: float, alpha: float) -> str:
    if row.status is not None:
        return row.status
    if not member:
        return OUTSIDE
    if row.interval.n < MIN_SEEDS:
        return f"{TOO_FEW_SEEDS} ({row.interval.n})"
    if (flat := zero_variance_status(row.interval)) is not None:
        return flat
    if p_holm < alpha:
        return SUPPORTED if row.direction * row.interval.mean > 0 else CONTRADICTED
    return INCONCLUSIVE


def _adjusted(rows: list[Row], keys: tuple[str, ...]) -> dict[int, float]:
    """Holm over the rows named by ``keys`` (a row without a test over seeds counts with p = 1)."""
    wanted = set(keys)
    members = [i for i, row in enumerate(rows) if row.tested and row.base["key"] in wanted]
    p_values = [rows[i].interval.p if rows[i].status is None and rows[i].interval.tested
                and rows[i].interval.test.endswith(SEED_TESTS) else 1.0 for i in members]
    return dict(zip(members, holm(p_values)))


def _start_flags(frame: pd.DataFrame) -> dict[tuple, list[str]]:
    """Per (dataset, fraction, arch, method): the flag of a method significantly below its start."""
    below = frame[(frame["kind"] == "s") & (frame["status"] == CONTRADICTED)]
    return {(r.dataset, round(r.fraction, 10), r.arch, r.comparator): [r.dataset, r.estimate, r.low, r.high]
            for r in below.itertuples(index=False)}


def _flag_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds the start and sign flags to the (a) rows and the one-word flags column."""
    fell = _start_flags(frame)
    flags, notes = [], []
    for r in frame.itertuples(index=False):
        words = [w for w in str(r.flags).split(", ") if w]
        texts = [t for t in str(r.notes).split("; ") if t]
        if r.kind == "a" and isinstance(r.fraction, float) and math.isfinite(r.fraction):
            methods = comparators() if str(r.comparator).startswith(BEST) else [r.comparator]
            arches = [r.arch] if r.arch in ("cnn", "vit") else ["cnn", "vit"]
            for (dataset, fraction, arch, method), (where, mean, low, high) in fell.items():
                if (method in methods and arch in arches and math.isclose(fraction, r.fraction)
                        and (r.dataset in (dataset, ACROSS))):
                    texts.append(start_flag(method, arch, Interval(mean, low, high, 0, "t"),
                                            f" on {where}" if r.dataset == ACROSS else ""))
                    words.append("start")
        if "COLLAPSED" in str(r.collapse):
            words.append("collapse")
        if str(r.power).startswith("underpowered"):
            words.append("underpowered")
        flags.append(", ".join(dict.fromkeys(words)))
        notes.append("; ".join(dict.fromkeys(texts)))
    return frame.assign(flags=flags, notes=notes)


def _sign_note(row: Row) -> str:
    f1, code = row.interval.mean, row.code.mean
    if row.base["kind"] != "a" or not (math.isfinite(f1) and math.isfinite(code)) or f1 * code >= 0:
        return ""
    return f"the metrics disagree in sign: macro-F1 {f1:+.2f}, f1_seed_code {code:+.2f}"


def _methods(row: Row) -> set[str]:
    comparator = str(row.base["comparator"])
    if row.base["kind"] == "s":
        return {comparator, *reference_methods()}
    return {PROPOSED, *(comparators() if comparator.startswith(BEST) else [comparator])}


@dataclass(frozen=True)
class Commits:
    """The records' commits (:func:`cass_bench.report.versions.record_commits`) and the main setting, to find the
    seeds in which the records behind a row ran on different commits."""

    frame: pd.DataFrame
    batch_size: float | None
    epochs: float | None

    def mixed(self, row: Row) -> list[int]:
        """The seeds behind the row's measurement in which its own records (its dataset, methods, encoders, label
        fraction and settings) name more than one commit; [] for a cost row or an unmeasured one."""
        base, frame = row.base, self.frame
        if not row.tested or frame.empty or "arch" not in base:
            return []
        archs = str(base["arch"]).split("+")
        settings = [(self.batch_size, self.epochs)]
        if base["kind"] in LEVELLED and base["level"] is not None:
            settings.append((base["level"], self.epochs) if base["kind"] == "d" else (self.batch_size, base["level"]))
        at = frame["pretrain_epochs"].fillna(0).eq(0)
        for batch, epochs in settings:
            at |= frame["batch_size"].eq(batch) & frame["pretrain_epochs"].eq(epochs)
        selected = frame["method"].isin(_methods(row)) & frame["arch"].isin(archs) & at
        if base["fraction"] is not None:
            selected &= frame["label_fraction"].eq(base["fraction"])
        if base["dataset"] not in (None, ACROSS):
            selected &= frame["dataset"].eq(base["dataset"])
        return [s for s in mixed_within(frame, selected) if s in {int(i) for i in row.per_seed.index}]


def _commit_note(seeds: list[int]) -> str:
    if not seeds:
        return ""
    return f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}: the row's methods ran on different commits"


def decide(rows: list[Row], family: Family, commits: Commits | None = None) -> pd.DataFrame:
    """The verdict, power line and flags of every row, Holm's correction over each family apart.

    Args:
        rows: the measured rows.
        family: the families.
        commits: the records' commits, which flag a row whose records in a seed ran on different commits.
    """
    families = {PAPER: (_adjusted(rows, family.keys), family.size),
                START: (_adjusted(rows, family.start_keys), len(family.start_rows))}
    out = []
    for i, row in enumerate(rows):
        name = next((n for n, (adjusted, _) in families.items() if i in adjusted), "")
        p_holm = families[name][0][i] if name else math.nan
        size = families[name][1] if name else family.size
        status = _status(row, bool(name), p_holm, family.alpha)
        power, mde, need = _power(row, status, family, size)
        measured, iv = row.measured, row.interval
        if row.tested and row.status is None and iv.tested and not row.base["comparator"].startswith(BEST):
            measured += f"; p {iv.p:.3g} ({iv.test})"
        if name:
            measured += f", Holm {p_holm:.3g} (the {name} family of {size})"
        mixed = commits.mixed(row) if commits is not None else []
        sign, mixed_note = _sign_note(row), _commit_note(mixed)
        out.append({**row.base, "measured": measured, "estimate": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n,
                    "sd": row.sd, "p": iv.p, "test": iv.test if row.tested else "", "p_holm": p_holm,
                    "family": name, "in_family": name == PAPER, "mde": mde, "seeds_needed": need, "power": power,
                    "code_estimate": row.code.mean, "code_low": row.code.low, "code_high": row.code.high,
                    "paper_value": paper_reading(row.code, row.effect), "collapse": row.collapse or "—",
                    "flags": ", ".join(w for w, on in (("sign", sign), ("commits", mixed_note)) if on),
                    "notes": "; ".join([*row.notes, *(n for n in (sign, mixed_note) if n)]),
                    "mixed_seeds": ", ".join(map(str, mixed)),
                    "status": status})
    return _flag_rows(pd.DataFrame(out).reindex(columns=COLUMNS))


def check_claims(records: pd.DataFrame, batch_size: float | None, epochs: float | None, predictions: Path | None,
                 family: Family | None = None) -> pd.DataFrame:
    """Every claim row the families and the records name, measured and decided (rules: :func:`.specs.rule_lines`).

    Args:
        records: the records frame (:func:`cass_bench.report.load.normalise`); only ``status == "ok"`` rows count,
            and an ``above_chance`` of None counts as not above chance.
        batch_size: the main batch size (F1 claims; the main level of (d); held in (e)).
        epochs: the main pretraining epoch count (F1 claims; the main level of (e); held in (d)).
        predictions: folder with ``<record_id>.npz`` (``y_true``, ``y_score``) for the one-seed bootstrap, or None.
        family: the pre-registered families (:func:`cass_bench.report.claims.family.claim_family`); None: the
            defaults over the settings the records hold.

    Returns:
        One row per claim row with columns :data:`COLUMNS`.
    """
    shown = record_rows(records, batch_size, epochs)
    family = family if family is not None else claim_family(records, None, batch_size, epochs)
    specs = ordered([*family.rows, *family.start_rows, *shown])
    df = prepare(records)
    datasets = tuple(dict.fromkeys([*df.loc[df["pretrained"], "dataset"], *family.datasets]))
    ctx = Context(CellTable(df), batch_size, epochs, datasets, prediction_bootstrap(df, batch_size, epochs,
                                                                                      predictions))
    measure = Measurer(ctx)
    rows = [measure(spec) for spec in specs]
    return decide([*rows, *cost_rows(records)], family, Commits(record_commits(records), batch_size, epochs))


def headline(claims: pd.DataFrame) -> pd.DataFrame:
    """The rows that answer the paper: its family's rows and the cost rows, in report order."""
    return claims[(claims["family"] == PAPER) | claims["kind"].isin(["b", "c"])]


def family_lines(family: Family) -> list[str]:
    """The families in words: their sizes, levels, source and rows."""
    return [f"Families: Holm's correction over each apart at alpha {family.alpha:g}, power stated at "
            f"{family.power:.0%}; from {family.source}.",
            f"The paper's family ({family.size} rows): " + (", ".join(family.keys) or "none") + ".",
            f"The start's family ({len(family.start_rows)} rows): " + (", ".join(family.start_keys) or "none") + "."]


def summary_lines(claims: pd.DataFrame, family: Family) -> list[str]:
    """The paper's family's verdicts counted, and what its (a) rows of each encoder can detect at their seeds."""
    member = claims[claims["family"] == PAPER]
    kinds = member["status"].map(lambda s: s if s in (SUPPORTED, CONTRADICTED) else "not testable"
                                 if s.startswith("not testable") else NOT_MEASURED if s == NOT_MEASURED else
                                 INCONCLUSIVE)
    counts = ", ".join(f"{int((kinds == k).sum())} {k}" for k in (SUPPORTED, CONTRADICTED, INCONCLUSIVE,
                                                                 "not testable", NOT_MEASURED))
    weak = int(member["power"].str.startswith("underpowered").sum())
    lines = [f"Verdicts in the paper's family of {family.size}: {counts}; {weak} of them underpowered."]
    gains = member[(member["kind"] == "a") & member["mde"].notna()]
    parts = []
    for arch, rows in gains.groupby("arch", sort=False):
        seeds = "/".join(str(n) for n in sorted(rows["n"].unique()))
        able = int((rows["mde"] <= REFERENCE_EFFECT).sum())
        finite = rows["mde"][np.isfinite(rows["mde"])]
        detect = (f"detect >= {finite.min():.1f}–{finite.max():.1f} macro-F1 points" if len(finite) == len(rows) else
                  f"{len(rows) - len(finite)} of {len(rows)} below the exact test's floor (see each row)")
        parts.append(f"{arch} rows {detect} at {seeds} seeds ({able} of {len(rows)} detect a "
                     f"{REFERENCE_EFFECT:g}-point difference)")
    if parts:
        lines.append(f"Power of the family's (a) rows ({family.power:.0%} after Holm, observed paired spread): "
                     + "; ".join(parts) + ".")
    return lines
