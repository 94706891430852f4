"""Measuring any row from its spec: the best other method from the rows against each comparator, an across row from
each dataset's, a cnn+vit row from each encoder's, and otherwise the kind's own function (:mod:`.specs`)."""

from __future__ import annotations

import re
from dataclasses import replace

from cass_bench.config.claim_row import ACROSS, BEST, ClaimRow
from cass_bench.config.registry import comparators
from cass_bench.config.schema import ARCHS
from cass_bench.report.claims.best import best_row
from cass_bench.report.claims.family import POOLED
from cass_bench.report.claims.gains import paper_text
from cass_bench.report.claims.rows import NOT_MEASURED, PARTIAL, Context, Row, pooled, row_base
from cass_bench.report.claims.specs import kind_of

_ARCH_SUFFIX = re.compile(r"\((cnn\+vit|cnn|vit)\)$")


class Measurer:
    """Measures rows, each once (a best-other row and its per-comparator rows share their parts)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._rows: dict[str, Row] = {}

    def __call__(self, spec: ClaimRow) -> Row:
        """The row of ``spec`` before its family's verdict."""
        if spec.key not in self._rows:
            self._rows[spec.key] = self._measure(spec)
        return self._rows[spec.key]

    def _base(self, spec: ClaimRow, part: Row, label: str) -> dict:
        claim = part.base["claim"]
        if label:
            claim = _ARCH_SUFFIX.sub(f"({label})", claim) if _ARCH_SUFFIX.search(claim) else f"{claim} ({label})"
        return {**row_base(spec, claim, part.base["paper"]), "eval": part.base["eval"]}

    def _measure(self, spec: ClaimRow) -> Row:
        if spec.comparator == BEST:
            parts = {c: self(replace(spec, comparator=c)) for c in comparators()}
            first = next(iter(parts.values()))
            return best_row(spec, {**self._base(spec, first, ""), "claim": _best_claim(first)}, parts)
        if spec.dataset == ACROSS:
            parts = {d: self(replace(spec, dataset=d)) for d in self.ctx.datasets}
            label = f"{spec.arch}, equal-weight mean of {len(parts)} dataset{'s' * (len(parts) != 1)}"
            row = _pool(spec, parts, "dataset", self._base(spec, next(iter(parts.values())), label))
            missing = [d for d, part in parts.items() if part.status == NOT_MEASURED]
            if not missing or row.status == NOT_MEASURED:
                return row
            return Row(row.base, f"{PARTIAL}, and {', '.join(missing)} "
                       f"{'is' if len(missing) == 1 else 'are'} not measured (so far: {row.measured})",
                       status=NOT_MEASURED, collapse=row.collapse, partial=True)
        if spec.arch == POOLED:
            parts = {a: self(replace(spec, arch=a)) for a in ARCHS}
            return _pool(spec, parts, "encoder", self._base(spec, next(iter(parts.values())),
                                                            f"average of {' and '.join(ARCHS)}"))
        measure = kind_of(spec).measure
        if measure is None:
            raise ValueError(f"claim kind '{spec.claim}' is measured with the cost rows, not row by row")
        return measure(spec, self.ctx)


def _best_claim(part: Row) -> str:
    return part.base["claim"].replace(f"over {part.base['comparator'].upper()}", "over the best other method")


def _pool(spec: ClaimRow, parts: dict[str, Row], what: str, base: dict) -> Row:
    return pooled(base, parts, what, paper_text(spec.fraction) if spec.claim == "a" else None)
