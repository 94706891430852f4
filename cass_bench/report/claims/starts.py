"""Every pretrained encoder held against its start: a method's fine-tuned macro-F1 minus the no-pretraining
reference's (the start fine-tuned directly; the same seed is the same split, labelled subset and start), per dataset,
encoder and label fraction. The rows form a family of their own; a comparator significantly below its start flags
the (a) rows it enters (:func:`start_flag`)."""

from __future__ import annotations

from cass_bench.config.claim_row import ClaimRow
from cass_bench.config.registry import reference_methods
from cass_bench.report.claims.cells import Pair
from cass_bench.report.claims.rows import (Context, Row, chance_note, collapse_text, interval_text, row_base,
                                           seed_interval, unmeasurable)
from cass_bench.report.format import fraction_text
from cass_bench.report.stats.intervals import Interval


def start_row(spec: ClaimRow, ctx: Context) -> Row:
    """``spec.comparator`` minus its start (macro-F1 points) for one dataset, encoder and label fraction."""
    method, start = spec.comparator, reference_methods()[0]
    base = row_base(spec, f"{method.upper()} − start at {fraction_text(spec.fraction)} labels ({spec.arch})",
                    "not a paper claim: pretraining should not lose its start")
    pair = Pair(ctx.table.get(spec.dataset, spec.fraction, spec.arch, ctx.batch_size, ctx.epochs, method),
                ctx.table.start(spec.dataset, spec.fraction, spec.arch))
    flag = collapse_text([(f"{method}-{spec.arch}", pair.ours)])
    if (blocked := unmeasurable(pair, spec, ctx, (method, start), base, flag)) is not None:
        return blocked
    diff = pair.difference()
    iv, sd = seed_interval(diff)
    text = (f"{iv.mean:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}] F1 points ({iv.n} seeds)" if iv.bounded else
            interval_text(iv))
    return Row(base, f"{method} − {start}: {text}{chance_note(pair, method, start)}", iv, sd=sd, collapse=flag,
               per_seed=diff)


def start_flag(method: str, arch: str, interval: Interval, where: str = "") -> str:
    """The flag beside an (a) row whose comparator fell significantly below its start."""
    bounds = f" [{-interval.high:.1f}, {-interval.low:.1f}]" if interval.bounded else ""
    return (f"{method.upper()}-{arch} fell {-interval.mean:.1f}{bounds} below its start{where}: this row may measure "
            "the baseline's recipe")
