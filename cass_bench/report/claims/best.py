"""Claim (a) as the paper states it: CASS against the best other method, an intersection-union test over the
comparators.

CASS beats the best other method only if it beats every comparator, so the row's p for "supported" is the largest of
the comparisons' p (each comparison at the family's level; the intersection-union test needs no correction across
comparators). "Contradicted" needs some comparator significantly above CASS: its p is the smallest p among the
comparisons where CASS lies below, times the number of comparisons (Bonferroni over the union). The row shows the
binding comparison: the comparator nearest CASS (the best other method here).
"""

from __future__ import annotations

import math

from cass_bench.config.claim_row import ClaimRow
from cass_bench.report.claims.gains import against_paper
from cass_bench.report.claims.rows import NOT_MEASURED, Row, interval_text
from cass_bench.report.stats.intervals import SEED_TESTS, Interval


def _p_text(iv: Interval) -> str:
    return f", p {iv.p:.3g}" if iv.tested else ""


def best_row(spec: ClaimRow, base: dict, parts: dict[str, Row]) -> Row:
    """The row against the best other method from the rows against each comparator.

    Args:
        spec: the row (comparator ``best``).
        base: its identifying fields.
        parts: the row against each comparator, by comparator; comparators the records lack are left out.
    """
    flag = "; ".join(dict.fromkeys(r.collapse for r in parts.values() if r.collapse))
    measured = {c: r for c, r in parts.items() if r.status != NOT_MEASURED}
    if not measured:
        partial = [f"vs {c.upper()}: {r.measured}" for c, r in parts.items() if r.partial]
        return Row(base, "; ".join(["no comparator measured beside CASS", *partial]), status=NOT_MEASURED,
                   collapse=flag)
    tested = {c: r for c, r in measured.items() if r.status is None and math.isfinite(r.interval.mean)}
    notes = list(dict.fromkeys(note for r in measured.values() for note in r.notes))
    words = "; ".join(f"vs {c.upper()} {interval_text(r.interval)}{_p_text(r.interval)}" if c in tested else
                      f"vs {c.upper()} {r.status}" for c, r in measured.items())
    if not tested:
        status = next(r.status for r in measured.values())
        return Row(base, words, status=status, collapse=flag, notes=notes)
    binding = min(tested, key=lambda c: tested[c].interval.mean)
    row = tested[binding]
    below = [r.interval.p for r in tested.values() if r.interval.mean < 0 and r.interval.test in SEED_TESTS]
    if below:
        p, direction = min(1.0, len(measured) * min(below)), -1
    elif len(tested) == len(measured) and all(r.interval.test in SEED_TESTS for r in tested.values()):
        p, direction = max(r.interval.p for r in tested.values()), 1
    else:
        p, direction = math.nan, 1
    iv = Interval(row.interval.mean, row.interval.low, row.interval.high, row.interval.n, row.interval.method, p,
                  row.interval.level, f"intersection-union of {row.interval.test}" if math.isfinite(p) else
                  row.interval.test)
    code_binding = min(tested, key=lambda c: tested[c].code.mean if math.isfinite(tested[c].code.mean) else math.inf)
    code = tested[code_binding]
    why = ("largest p: CASS above every comparator" if direction > 0 else
           f"smallest p where a comparator lies above CASS x {len(measured)}")
    text = (f"best other here: {binding.upper()}; {words}; "
            + (f"row p {p:.3g} ({why})" if math.isfinite(p) else "no row test: a comparison without a test over seeds")
            + against_paper(code.code, row.effect).replace("paper's metric", f"paper's metric vs {code_binding.upper()}"))
    base = {**base, "comparator": f"best ({binding})"}
    return Row(base, text, iv, None, 1, row.sd, row.effect, flag, per_seed=row.per_seed, code=code.code,
               per_seed_code=code.per_seed_code, notes=notes, comparisons=len(measured))
