"""The claim kinds as one declarative table: each kind's contrast, direction, comparators, family, metric, rule text
and the function that measures one of its rows. Rows, families, verdicts and the rule text of the report and of
``docs/claims.md`` are generated from :data:`KINDS`; the method registry is read when a spec is used, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cass_bench.config.claim_row import ACROSS, BEST, ClaimRow
from cass_bench.config.registry import COST_BASELINE, comparators, pretraining_methods, reference_methods
from cass_bench.report.cells import CHANCE_SHARE
from cass_bench.report.claims.gains import PAPER_GAINS, gain_row
from cass_bench.report.claims.robustness import robustness_row
from cass_bench.report.claims.rows import (BOTH_AT_CHANCE, LEVEL, MIN_SEEDS, N_BOOT, NAME, REFERENCE_EFFECT, Context,
                                           Row)
from cass_bench.report.claims.starts import start_row
from cass_bench.report.cost_claims import EFFICIENCY_BAR, PAPER_MINUTES, QUOTED_RATIO, TIME_BOUND
from cass_bench.report.load import CONTENTION_BAR
from cass_bench.report.stats.intervals import MAX_EXACT_SEEDS
from cass_bench.report.stats.power import exact_floor

PAPER, START, DETAIL, COST = "paper", "start", "detail", "cost"
"""Where a kind's rows belong: the paper's family, the start's family (each with its own Holm correction), detail
beside them (measured, no verdict), or a cost claim (its own verdict, no Holm)."""
OUTSIDE = "no verdict: outside the family"


@dataclass(frozen=True)
class ClaimKind:
    """One kind of claim row.

    Attributes:
        letter: the row key's letter.
        name: the kind in words.
        contrast: what a row measures, in words.
        direction: +1 when the claim holds above 0, -1 below 0.
        comparators: the methods a row of this kind is compared with (read from the registry when called).
        family: :data:`PAPER`, :data:`START`, :data:`DETAIL` or :data:`COST` (by default; ``claims.family`` may
            name detail rows into the paper's family).
        metric: the number compared.
        rule: the rule in words (built when called).
        measure: measures one row of one dataset and encoder (None: the cost rows, measured all at once).
        best: True for the kind against the best other method (comparator :data:`BEST`).
    """

    letter: str
    name: str
    contrast: str
    direction: int
    comparators: Callable[[], list[str]]
    family: str
    metric: str
    rule: Callable[[], str]
    measure: Callable[[ClaimRow, Context], Row] | None = None
    best: bool = False


def _upper(names: list[str]) -> str:
    return " and ".join(n.upper() for n in names)


_GAINS = " / ".join(f"+{g:g}" for g in PAPER_GAINS.values())
KINDS: tuple[ClaimKind, ...] = (
    ClaimKind("a", "F1 gain over the best other method", f"{NAME} - each comparator, the least of them binding", 1,
              lambda: [BEST], PAPER, "fine-tuned macro-F1 points", lambda: (
                  f"(a) F1 gain over the best other method at 1 / 10 / 100% labels (the paper's claim, the paper's "
                  f"family): one row per dataset (or across datasets), encoder and label fraction, an "
                  f"intersection-union test over {_upper(comparators())}. Supported when {NAME} lies significantly "
                  "above every comparator (each comparison at the family's level; the row's p is the largest of "
                  "theirs), contradicted when some comparator lies significantly above it (the smallest such p times "
                  "the number of comparators), else inconclusive. The row shows the binding comparison (the best "
                  "other method here). Direction and size are read apart: the verdict is the direction on macro-F1; "
                  f"the paper's gain ({_GAINS} points, scored by its reference code) is read against the interval "
                  "on f1_seed_code against the best other method on that metric (\"paper's value inside\" or "
                  "\"outside\"); a sign disagreement between the two metrics is flagged (\"sign\")."),
              gain_row, best=True),
    ClaimKind("a", "F1 gain over one comparator", f"{NAME} - comparator", 1, comparators, DETAIL,
              "fine-tuned macro-F1 points", lambda: (
                  f"(a) against each comparator ({_upper(comparators())}) separately: the detail behind the "
                  "best-other row, outside the family. A cnn+vit row is a labelled average of the two encoders "
                  "within each seed; an across row is the equal-weight mean of the datasets' differences within "
                  "each seed; when one part's interval lies entirely above 0 and another's entirely below, it says "
                  "\"no pooled verdict\"."), gain_row),
    ClaimKind("d", "more robust to batch size", f"{NAME}'s F1 loss - the comparator's", -1, comparators, PAPER,
              "fine-tuned macro-F1 points", lambda: (
                  "(d) batch size, (e) pretraining epochs. Direction: a method's loss at a level = its F1 at the "
                  "main level (batch size 16 when run; the most epochs run at the main batch size) - its F1 at that "
                  f"level, in points (positive: F1 lost); the contrast is {NAME}'s loss - the comparator's at each "
                  f"other level, the other factor held at the main setting; supported ({NAME} more robust) below 0. "
                  "Each method's own loss is shown with its interval."), robustness_row),
    ClaimKind("e", "more robust to pretraining epochs", f"{NAME}'s F1 loss - the comparator's", -1, comparators,
              PAPER, "fine-tuned macro-F1 points", lambda: "", robustness_row),
    ClaimKind("s", "a method against its start", "method - start", 1, pretraining_methods, START,
              "fine-tuned macro-F1 points", lambda: (
                  f"Method - start (the start's family): every pretrained method's fine-tuned macro-F1 minus the "
                  f"no-pretraining reference's ({', '.join(reference_methods())}: the start fine-tuned directly; "
                  "the same seed is the same split, labelled subset and start), per dataset, encoder and label "
                  "fraction, with its own Holm correction. A comparator significantly below its start flags every "
                  "(a) row it enters (\"start\", with its drop in the notes): a flag, not a veto; that row may "
                  "measure the baseline's recipe rather than the method."), start_row),
    ClaimKind("b", "less pretraining time", f"t({NAME}) / (t(X-cnn) + t(X-vit))", -1, comparators, COST,
              "time per pretraining epoch", lambda: (
                  f"(b) less pretraining time: one row per setting (dataset, device, threads, batch size, epochs; "
                  f"never pooled; CPUs under one label are told apart by their per-thread peak), r = t({NAME}) / "
                  f"(t(X-cnn) + t(X-vit)) per seed, t = time per pretraining epoch; "
                  f"{LEVEL:.0%} t interval of log r over seeds, shown as a ratio; supported iff the interval lies at "
                  f"or below {TIME_BOUND:g} (69% less, the claim as stated, with no tolerance either way; the "
                  f"paper's quoted {PAPER_MINUTES['cass']} / {PAPER_MINUTES['dino']} min give {QUOTED_RATIO:.3f}), "
                  f"contradicted iff it lies above, inconclusive otherwise and with one run. X = "
                  f"{COST_BASELINE.upper()} is the paper's claim; "
                  + "; ".join(f"X = {c.upper()} asks the same question" for c in comparators()
                              if c != COST_BASELINE) + ". Cost rows are outside the families. A seed whose CPU "
                  f"run's training thread ran less than {CONTENTION_BAR:.0%} of its measured epochs' wall time "
                  "(another job or a pause held it up; `pretrain_cpu_share`) is left out and counted in the row.")),
    ClaimKind("c", "twice as efficient", f"(b) with bound {EFFICIENCY_BAR:g}, and FLOPs", -1,
              lambda: [COST_BASELINE], COST, "time per epoch and FLOPs per image", lambda: (
                  f"(c) twice as efficient restates (b) with bound {EFFICIENCY_BAR:g}, plus the FLOPs-per-image "
                  f"ratio (deterministic) against {COST_BASELINE.upper()}-cnn + {COST_BASELINE.upper()}-vit: "
                  f"supported iff both are at most {EFFICIENCY_BAR:g}, contradicted iff either lies above.")),
)
"""Every claim kind, in report order."""


def kind_of(row: ClaimRow) -> ClaimKind:
    """The kind of a row (its letter; for (a), against the best other method or against one comparator)."""
    return next(k for k in KINDS if k.letter == row.claim and (k.letter != "a" or k.best == (row.comparator == BEST)))


def general_rules() -> list[str]:
    """The rules every F1 and robustness row follows: pairing, intervals and tests, families, power, gates."""
    return [
        "F1 and robustness rows: finished records only; F1 is macro-F1 in points (100 x F1) after fine-tuning at "
        "the main pretraining setting, paired by seed (same label subset, head initialisation and test set). "
        f"Interval: {LEVEL:.0%} t interval (n - 1 df) over seeds of the per-seed difference; its p is the exact "
        f"sign-flip permutation test's (all 2^n sign flips of the per-seed differences) up to {MAX_EXACT_SEEDS} "
        "seeds and the t test's above (each row names its test); seeds that all give the same difference get no "
        "p and no interval (\"zero variance\"). With one seed: a paired bootstrap over test images "
        f"({N_BOOT} resamples, percentile), which ignores seed noise. An across row ({ACROSS}/) averages the "
        "datasets with equal weight within each seed.",
        "The families: the rows named above the table, fixed before any result is read (claims.family in the "
        "results folder's config.yaml; by default (a) against the best other method per encoder and label "
        "fraction, per dataset for one dataset and across datasets for several, plus every (d) and (e) row; and "
        "the start's family of every method minus its start, over that config's grid, or over the settings the "
        "records hold when the folder has no config.yaml). Holm's correction runs over each family apart; a family "
        "row that could not be measured, or has no test over seeds, counts with p = 1. Supported / contradicted: "
        f"p_holm below the family's alpha (0.05 unless configured) and >= {MIN_SEEDS} seeds, the contrast on the "
        f"claimed / the other side of 0; else inconclusive (\"inconclusive — too few seeds (n)\" below {MIN_SEEDS} "
        f"seeds). A row outside the families is measured but gets no verdict (\"{OUTSIDE}\").",
        "Power, for every F1 and robustness row, on the scale of the number compared: the smallest true macro-F1 "
        "difference its n seeds detect with 80% power (unless configured) in a two-sided paired t test at alpha / m "
        "(Holm's first step, m = the family's size; for a row against the best other method alpha / (m x its "
        "comparators), since its \"contradicted\" takes the smallest of their p values times their count), from the "
        "noncentral t at the row's observed paired spread, and the seeds a declared "
        f"{REFERENCE_EFFECT:g}-point macro-F1 difference needs; for (a), the seeds the paper's gain needs at the "
        "paired spread of f1_seed_code (the paper's metric). Each figure carries a range from the spread's 95% "
        "chi-square interval. Below the seeds whose exact sign-flip test can reach that level at all (its smallest "
        "p is 2 / 2^n, times the comparators for a best-other row: at alpha 0.05 and a family of 6, "
        f"{exact_floor(0.05, 6)} seeds, and {exact_floor(0.05, 6, 2)} for a best-other row against two methods), a "
        "row detects no difference, and no need is stated below that floor. "
        "\"underpowered\" marks a row without a verdict whose detectable "
        f"difference exceeds {REFERENCE_EFFECT:g} points. The exact sign-flip test is slightly less powerful than "
        "the t test these figures assume.",
        "Gates and flags. Collapse never vetoes a verdict: the collapse column shows, for every method and encoder "
        "behind the row, its runs collapsed / runs measured (\"COLLAPSED\" when any; \"not measured\" for records "
        "without the rank measure). A cell (dataset, method, encoder, label fraction, setting) is at chance when "
        f"fewer than {CHANCE_SHARE:.0%} of its seeds' records are significantly above chance; a comparison is left "
        f"out only when both methods' cells are at chance (\"{BOTH_AT_CHANCE}\"; for (d), (e) at the main or the "
        "compared level); a method at chance where its comparator is not enters with its F1 as measured (its "
        "loss). \"not measured\": the records lack a cell the row needs. A seed in which the row's records (its "
        "methods, encoders, label fraction and settings) ran on different git commits is named under the table "
        "(\"commits\"), and the row is measured again without it (under Scale).",
    ]


def rule_lines() -> tuple[str, ...]:
    """Every rule, as the report and ``docs/claims.md`` quote them: the general ones, then each kind's."""
    return (*general_rules(), *(rule for kind in KINDS if (rule := kind.rule())))


