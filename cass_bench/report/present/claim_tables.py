"""The claim rows as the report shows them: the answer first (the paper's claims, one compact row each), then every
row in detail with its long texts as notes under the table, so that no table row grows wider than a screen."""

from __future__ import annotations

import math

import pandas as pd

from cass_bench.report.claims.commit_check import changed
from cass_bench.report.claims.decide import headline
from cass_bench.report.format import fraction_text
from cass_bench.report.load import short_device
from cass_bench.report.present.render import Table

TABLE_WIDTH = 160
"""The widest a rendered table row should be; longer texts go to notes under the table."""
_KIND_WORDS = {"d": "batch", "e": "epochs"}


def verdict_text(statuses: pd.Series) -> pd.Series:
    """Statuses as a table shows them: "inconclusive — too few seeds (n)" as "too few seeds (n)", "zero variance"
    likewise, a row outside the families as "detail", "not testable: both methods at chance" as "both at chance",
    "one run: no interval" as "one run", and no pooled verdict without its reason (in the notes)."""
    return (statuses.astype(str).str.replace("inconclusive — ", "", regex=False)
            .str.replace("no verdict: outside the family", "detail", regex=False)
            .str.replace("not testable: both methods at chance", "both at chance", regex=False)
            .str.replace("one run: no interval", "one run", regex=False)
            .str.replace("no pooled verdict: .*", "no pooled verdict", regex=True))


def _signed(value: float, digits: int = 2) -> str:
    return "—" if not math.isfinite(value) else f"{value:+.{digits}f}"


def _interval(row: pd.Series, ratio: bool) -> str:
    low, high = float(row["low"]), float(row["high"])
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"[{low:.3f}, {high:.3f}]" if ratio else f"[{low:+.2f}, {high:+.2f}]"


def _claim(row: pd.Series, name_dataset: bool) -> str:
    kind, comparator = str(row["kind"]), str(row["comparator"])
    if kind in ("b", "c"):
        device = f", {short_device(row['key'].split('@', 1)[1].split(':t')[0])}" if "@" in str(row["key"]) else ""
        what = "time" if kind == "b" else "2x cost"
        setting = str(row["key"]).split(":")[1:3] if ":bs" in str(row["key"]) else []
        threads = [part[1:] for part in str(row["key"]).split(":") if part[:1] == "t" and part[1:].isdigit()]
        setting += [f"{threads[0]} thr."] if threads else []
        where = f"{row['dataset']}, " if name_dataset and isinstance(row["dataset"], str) else ""
        return f"({kind}) {where}{what} vs {comparator.upper()}" + (f" ({', '.join(setting)}{device})" if setting
                                                                    else "")
    where = "across datasets, " if row["dataset"] == "across" else f"{row['dataset']}, " if name_dataset else ""
    versus = "best other" + (f" ({comparator[6:-1].upper()})" if comparator.startswith("best (") else "") \
        if comparator.startswith("best") else comparator.upper()
    level = f", {_KIND_WORDS[kind]} {row['level']:g}" if kind in _KIND_WORDS else ""
    return f"({kind}) {where}{fraction_text(float(row['fraction']))} {row['arch']}{level} vs {versus}"


def _paper(row: pd.Series) -> str:
    if row["kind"] == "a":
        value = str(row["paper"]).split(" ")[0]
        return f"{value} ({row['paper_value']})" if row["paper_value"] != "—" else value
    if row["kind"] in ("b", "c"):
        return str(row["paper"]).split(":")[0]
    return "—"


def answer_table(claims: pd.DataFrame) -> Table:
    """The paper's claims at a glance: claim, measured, interval, verdict, the paper's value and one-word flags
    (the paper's family and the cost rows)."""
    rows = headline(claims)
    if rows.empty:
        return Table(pd.DataFrame({"": ["no claim row: no finished pretraining record"]}))
    ratio = rows["kind"].isin(["b", "c"])
    across = rows["dataset"] == "across"
    name_dataset = bool(across.any()) or rows.loc[~across, "dataset"].nunique() > 1
    cells = pd.DataFrame({
        "claim": [_claim(r, name_dataset) for _, r in rows.iterrows()],
        "measured": [f"{r['estimate']:.3f}" if is_ratio and math.isfinite(r["estimate"]) else _signed(r["estimate"])
                     for (_, r), is_ratio in zip(rows.iterrows(), ratio)],
        "95% interval": [_interval(r, is_ratio) for (_, r), is_ratio in zip(rows.iterrows(), ratio)],
        "verdict": verdict_text(rows["status"]),
        "paper": [_paper(r) for _, r in rows.iterrows()],
        "flags": rows["flags"].fillna("").astype(str).replace("", "—"),
    })
    return Table(cells.reset_index(drop=True), data=rows.reset_index(drop=True))


TEST_WORDS = {"exact sign-flip": "sign-flip", "t test": "t", "paired bootstrap": "bootstrap"}


def _p(row: pd.Series) -> str:
    if not math.isfinite(float(row["p"])) or not row["test"]:
        return "—"
    test = str(row["test"]).replace("intersection-union of ", "")
    return f"{row['p']:.2g} ({'IU ' if test != row['test'] else ''}{TEST_WORDS.get(test, test)})"


def short_keys(keys: pd.Series) -> pd.Series:
    """Row keys without their dataset when every row is of one dataset (the scale line names it), so the table fits a
    screen; the notes keep the whole key."""
    keys = keys.astype(str)
    prefixes = keys.str.extract(r"^([^/]+/)", expand=False)
    if prefixes.notna().all() and prefixes.nunique() == 1:
        return keys.str.slice(len(prefixes.iloc[0]))
    return keys


def claims_table(claims: pd.DataFrame) -> Table:
    """Every claim row, compact (all columns go to CSV; status "detail": no verdict, outside the families); the
    long texts are :func:`claim_notes`."""
    ratio = claims["kind"].isin(["b", "c"])
    cells = pd.DataFrame({
        "#": short_keys(claims["key"]),
        "measured": [f"{r['estimate']:.3f}" if is_ratio and math.isfinite(r["estimate"]) else _signed(r["estimate"])
                     for (_, r), is_ratio in zip(claims.iterrows(), ratio)],
        "95% interval": [_interval(r, is_ratio) for (_, r), is_ratio in zip(claims.iterrows(), ratio)],
        "n": claims["n"].map(lambda v: "—" if pd.isna(v) else f"{int(v)}"),
        "p (test)": [_p(r) for _, r in claims.iterrows()],
        "Holm p": claims["p_holm"].map(lambda v: "—" if pd.isna(v) else f"{v:.3g}"),
        "status": verdict_text(claims["status"]),
        "flags": claims["flags"].fillna("").astype(str).replace("", "—"),
    })
    return Table(cells.reset_index(drop=True), data=claims.reset_index(drop=True))


def claim_notes(claims: pd.DataFrame) -> list[str]:
    """One note per row: what it measures, the measurement in words, its power and its flags in words."""
    notes = []
    for _, r in claims.iterrows():
        parts = [f"`{r['key']}` {r['claim']} (paper: {r['paper']}): {r['measured']}"]
        if r["power"] not in ("—", "") and isinstance(r["power"], str):
            parts.append(f"power: {r['power']}")
        if r["collapse"] not in ("—", ""):
            parts.append(f"collapsed / measured runs: {r['collapse']}")
        if isinstance(r["notes"], str) and r["notes"]:
            parts.append(f"flags: {r['notes']}")
        if str(r["status"]).startswith("no pooled verdict"):
            parts.append(str(r["status"]))
        notes.append("- " + ". ".join(parts) + ".")
    return notes


def _verdict(status: object) -> str:
    return str(verdict_text(pd.Series([status])).iloc[0])


def _kept_interval(row: pd.Series) -> str:
    return _interval(pd.Series({"low": row["kept_low"], "high": row["kept_high"]}), False)


def _seeds(seeds: str) -> str:
    return f"seed{'s' * (',' in seeds)} {seeds}"


def commit_check_lines(rows: pd.DataFrame) -> list[str]:
    """One line: whether each verdict flagged "commits" stands without the seeds in which its records ran on
    different commits (rows: :func:`cass_bench.report.claims.commit_check.commit_check`; empty when none)."""
    if rows.empty:
        return []
    dropped = rows["mixed_seeds"].unique()
    where = (f"Commits: without {_seeds(dropped[0])}, in which the records behind the flagged "
             f"row{'s' * (len(rows) > 1)} ran on different commits" if len(dropped) == 1 else
             "Commits: each flagged row without the seeds in which its records ran on different commits")
    measurable = rows["kept_n"].fillna(0).astype(float) >= 2
    parts = []
    if (~measurable).any():
        parts.append(f"{int((~measurable).sum())} of {len(rows)} flagged rows keep fewer than two seeds and cannot be "
                     "measured; rerunning their seeds on one commit settles them")
    moved = changed(rows[measurable])
    if measurable.any():
        name_dataset = rows["dataset"].nunique() > 1
        parts.append("every other flagged verdict stands" if moved.empty and parts else
                     f"every flagged verdict stands ({_rows(int(measurable.sum()))})" if moved.empty else
                     f"{len(moved)} of {int(measurable.sum())} measured flagged verdicts change: " + "; ".join(
                         f"{_claim(r, name_dataset)}: {_verdict(r['status'])} at {_signed(r['estimate'])} → "
                         f"{_verdict(r['kept_status'])} at {_signed(r['kept_estimate'])} {_kept_interval(r)}"
                         for _, r in moved.iterrows()))
    return [f"{where}: " + "; ".join(parts) + " (measurements under Scale)."]


def _rows(n: int) -> str:
    return f"{n} row{'s' * (n != 1)}"


def _n(value: object) -> str:
    return "—" if pd.isna(value) else f"{int(value)}"


def commit_check_table(rows: pd.DataFrame) -> Table | None:
    """Each answer row flagged "commits": its measurement over all seeds and without its mixed seeds."""
    if rows.empty:
        return None
    name_dataset = rows["dataset"].nunique() > 1
    cells = pd.DataFrame({
        "claim": [_claim(r, name_dataset) for _, r in rows.iterrows()],
        "all seeds": [f"{_signed(r['estimate'])} {_interval(r, False)} (n {_n(r['n'])})" for _, r in rows.iterrows()],
        "verdict": verdict_text(rows["status"]).to_numpy(),
        "seeds left out": rows["mixed_seeds"].to_numpy(),
        "without them": [f"{_signed(r['kept_estimate'])} {_kept_interval(r)} (n {_n(r['kept_n'])})"
                         for _, r in rows.iterrows()],
        "verdict there": verdict_text(rows["kept_status"]).to_numpy(),
    })
    return Table(cells.reset_index(drop=True), data=rows.reset_index(drop=True))
