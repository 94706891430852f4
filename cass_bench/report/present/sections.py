"""The report's sections in order: what each holds and the words around its table."""

from __future__ import annotations

import pandas as pd

from cass_bench.config.vocabulary import EVAL_TITLES, MAIN_EVAL, Eval
from cass_bench.records.schema import OK
from cass_bench.config.registry import PROPOSED, reference_methods
from cass_bench.report.analysis import Analysis, Sweep, finetuned
from cass_bench.report.cells import metric_stats
from cass_bench.report.claims.decide import family_lines, summary_lines
from cass_bench.report.claims.specs import rule_lines
from cass_bench.report.present.claim_tables import (answer_table, claim_notes, claims_table, commit_check_lines,
                                                    commit_check_table)
from cass_bench.report.costs import (
    COST_REFERENCE, DATA_WAIT_LIMIT, GPU_MEMORY, contention_lines, data_wait_warnings, mfu_lines, pretrain_runs,
    thread_lines,
)
from cass_bench.report.format import key_text
from cass_bench.report.load import RANK_HISTORY
from cass_bench.report.present.plots import Plot
from cass_bench.report.present.render import Section
from cass_bench.report.present.tables import (PAPER_SCALE, cost_table, failure_table, metric_table, robustness_table,
                                               scale_lines)
from cass_bench.report.present.start import start_change_lines, start_change_table, start_changes
from cass_bench.report.present.validity import COLLAPSE_RULE, chance_table, collapse_runs, collapse_table
from cass_bench.report.present.spending import spending_section

COMPANIONS = {"f1_micro": "micro-F1", "balanced_accuracy": "balanced accuracy",
              "f1_seed_code": "F1 as the reference code scores it (f1_seed_code, comparable with the paper)",
              "auroc": "AUROC"}
TERMINAL_SECTIONS = ("answer", "f1_macro", "efficiency", "efficiency_ratios")
FLAG_WORDS = ("start: a comparator fell significantly below its own start (its recipe may be what the row measures); "
              "sign: macro-F1 and the paper's f1_seed_code disagree in sign; commits: in a seed, the row's "
              "records ran on different code versions (the row without those seeds: under Scale); collapse: a run "
              "behind the row collapsed; underpowered: the row's seeds cannot detect a 5-point difference. Each "
              "row's flags in words: Claim checks.")
_NAME, _REF = PROPOSED.upper(), COST_REFERENCE.upper()
MARKS_NOTE = ("† at chance: fewer than half of the cell's seeds are significantly above chance (permutation test, "
              f"see the chance table); ‡ a pretraining run behind it collapsed (either encoder of a {_NAME} run; "
              "section 6). A claim leaves a comparison out only when both methods' cells are at chance; collapse "
              "is flagged beside each claim and vetoes none.")


def _answer_section(analysis: Analysis) -> Section:
    scale = scale_lines(analysis.records)
    lines = ["The paper's claims at the scale of this run (the paper's family, Holm-corrected, and the cost claims); "
             "every row in detail, with its rules and power, follows under Claim checks."]
    notes = [f"Flags (never a veto): {FLAG_WORDS}", *commit_check_lines(analysis.commits), scale[0],
             PAPER_SCALE]
    return Section("answer", "Answer", lines, answer_table(analysis.claims), notes=notes)


def _scale_section(analysis: Analysis) -> Section:
    table = commit_check_table(analysis.commits)
    lead = ["Each answer row flagged \"commits\", measured over all seeds and again without the seeds in which its "
            "records ran on different commits (the same families and rules):"] if table is not None else []
    return Section("scale", "Scale", [*scale_lines(analysis.records)[1:], *lead], table)


def _claims_section(analysis: Analysis) -> Section:
    rules = ["What the status means (each claim's rule):", *(f"- {rule}" for rule in rule_lines())]
    lines = [*family_lines(analysis.family), *summary_lines(analysis.claims, analysis.family)]
    notes = ["Each row in words (the measurement, its power, its flags):", *claim_notes(analysis.claims), *rules]
    return Section("claims", "Claim checks", lines, claims_table(analysis.claims), notes=notes)


def _f1_sections(analysis: Analysis) -> list[Section]:
    setting = analysis.setting
    f1_lines = [
        f"Setting: {setting.describe()} (the paper's batch size 16 when present, and the most pretraining epochs "
        f"finished at it; `report --batch-size N --epochs E` chooses another); {', '.join(reference_methods())} "
        "rows have no pretraining. Other settings: sections 3 and 4.",
        "Cells: mean ± sample std over seeds, with n when n > 1. Bold: the best mean per dataset, encoder and "
        "label fraction. " + MARKS_NOTE,
    ]
    sections = [Section("f1_macro", "1. Downstream macro-F1, fine-tuned end to end", f1_lines,
                        metric_table(analysis.f1))]
    letters = iter("abcdefghij")
    for name, stats in analysis.eval_stats.items():
        if name == MAIN_EVAL:
            continue
        sections.append(Section(f"f1_macro_{name}", f"1{next(letters)}. Macro-F1, {EVAL_TITLES[Eval(name)]}",
                                table=metric_table(stats), level=3))
    sections.append(Section("chance", f"1{next(letters)}. Chance levels and labelled examples", [
        "Macro-F1 of always predicting the labelled subset's majority class, and of guessing with its class "
        "frequencies. A record is above chance when a one-sided permutation test of its test macro-F1 (the "
        "predictions shuffled against the labels, 1,000 times by default) gives p < 0.05 and its macro-F1 beats "
        "both chance levels."], chance_table(analysis.records), level=3))
    rows = finetuned(analysis.main_rows)
    for metric, words in COMPANIONS.items():
        sections.append(Section(metric, f"1{next(letters)}. {words[0].upper()}{words[1:]} (fine-tuned)",
                                table=metric_table(metric_stats(rows, metric)), level=3))
    changes = start_changes(analysis.main_rows)
    sections.append(Section("start_change", f"1{next(letters)}. What each method made of its start",
                            start_change_lines(changes), start_change_table(changes), level=3))
    return sections


def _efficiency_sections(analysis: Analysis) -> list[Section]:
    if analysis.costs.empty:
        return [Section("efficiency", "2. Pretraining efficiency", ["No pretraining run finished."])]
    gpu = analysis.costs.memory.field == GPU_MEMORY
    lines = [
        "One row per pretraining run setting (figures repeat across the label fractions of a run and are taken once). "
        "Time/epoch is the median epoch after the first; "
        + ("memory is peak GPU memory allocated." if gpu else
           "no GPU memory was measured (CPU run), so memory is the process's peak RSS."),
        f"×{_REF}: ratio to {_REF} on the same encoders and device (never across devices: a row without {_REF} "
        f"beside it on its device has none). {_NAME} trains cnn and vit in one run, so its row compares "
        f"with {_REF}-cnn + {_REF}-vit together: time, FLOPs and parameters summed, images/s combined as "
        "1 / (1/a + 1/b), memory the larger of the two peaks (the runs are separate; one device must hold the larger).",
        f"The printed summary keeps the rows of the main setting ({analysis.setting.describe()}).",
        f"Data wait: the share of the measured epochs' time the training loop waited for its next batch; above "
        f"{100 * DATA_WAIT_LIMIT:.0f}% the loader, not the method, sets the pace (raise `num_workers`).",
    ]
    lines.extend(mfu_lines(analysis.costs))
    lines.extend(thread_lines(pretrain_runs(analysis.records)))
    warnings = data_wait_warnings(analysis.costs)
    if warnings:
        lines.append(f"WARNING: data wait above {100 * DATA_WAIT_LIMIT:.0f}%, so these times compare loaders: "
                     + "; ".join(warnings) + ".")
    lines.extend(contention_lines(analysis.records))
    figures, shared = cost_table(analysis.costs, analysis.setting)
    ratios, _ = cost_table(analysis.costs, analysis.setting, ratios=True)
    lines.extend(line for line in (shared, "Cells: mean ±std over the runs (runs: the time's count; n where a figure "
                                   "has fewer runs).") if line)
    return [Section("efficiency", "2. Pretraining efficiency", lines, figures),
            Section("efficiency_ratios", f"2a. Ratios to {_REF}", [f"Each figure's ratio to {_REF} (see above)."
                                                                   + (f" {shared}" if shared else "")], ratios,
                    level=3)]


def _robustness_section(sweep: Sweep, number: int) -> Section:
    what, fixed = (("batch size", "pretraining epochs") if sweep.factor == "batch_size" else
                   ("pretraining epochs", "batch size"))
    key, title = f"{sweep.factor}_robustness", f"{number}. Robustness to {what}"
    levels = sweep.stats.index.get_level_values(sweep.factor).unique() if not sweep.stats.empty else []
    if len(levels) < 2:
        found = ", ".join(key_text(v) for v in levels) or "none"
        return Section(key, title, [f"Skipped: the records hold one {what} value ({found}) at {fixed} "
                                    f"{key_text(sweep.anchor)}."])
    lines = [f"Macro-F1 per {what} at {fixed} {key_text(sweep.anchor)} (mean ± std over seeds); spread = max - min "
             "of the means across the values finished."]
    return Section(key, title, lines, robustness_table(sweep))


def _failure_sections(df: pd.DataFrame) -> list[Section]:
    n_failed = int((df["status"] != OK).sum())
    failures = Section("failures", "5. Failures", ["Every record whose status is not ok."] if n_failed else
                       ["None: every record finished."], failure_table(df) if n_failed else None)
    runs = collapse_runs(df)
    n_collapsed = int(runs["collapsed"].eq(True).sum())
    counted = (f"{n_collapsed} of {len(runs)} pretrained encoders collapsed. Per method and encoder over its runs: "
               "the effective rank before and after pretraining (medians; the lowest after), the rank kept as a share of "
               "the start's (median), the runs below the bar, the final feature spread (median), and the runs whose "
               "own outputs collapsed; every run's figures: `collapse_per_seed.csv` beside this report; rank and spread per epoch: "
               f"`collapse_curves.png`; the per-epoch values are in each record (`{RANK_HISTORY}`, "
               "`feature_std_history`, `embedding_std_history`). Output collapsed: the method's own head outputs "
               "ended near constant (`embedding_collapsed`; — where the method does not record it)."
               if len(runs) else
               f"Collapse not measured: no record holds `{RANK_HISTORY}` (records written before the measure).")
    collapse = Section("collapsed", "6. Collapse", [COLLAPSE_RULE, counted], collapse_table(df))
    return [failures, collapse]


def _plot_section(plots: list[Plot]) -> Section:
    lines = [p.note for p in plots if p.note]
    images = [(p.name, p.caption) for p in plots if not p.note]
    return Section("plots", "7. Plots", lines, images=images)


def build_sections(analysis: Analysis, plots: list[Plot]) -> list[Section]:
    """The report's sections in order."""
    return [
        _answer_section(analysis),
        _scale_section(analysis),
        _claims_section(analysis),
        *_f1_sections(analysis),
        *_efficiency_sections(analysis),
        spending_section(analysis.records),
        _robustness_section(analysis.batch_sweep, 3),
        _robustness_section(analysis.epoch_sweep, 4),
        *_failure_sections(analysis.records),
        _plot_section(plots),
    ]
