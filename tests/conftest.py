"""Shared test helpers: the CLI in a subprocess, and the ``slow`` marks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Gives each xdist worker its share of the cores (``OMP_NUM_THREADS``, unless set), read by torch when a test
    imports it and inherited by every run a test starts: two workers of two threads each on two cores take twice as
    long (the suite: 28 minutes in CI at two threads a worker; at one, 18 on this project's AVX2 2-core machine)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // int(workers))))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m cass_bench ARGS`` from the repository root and captures its output."""
    return subprocess.run([sys.executable, "-m", "cass_bench", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=timeout)


SLOW_FILES = ("test_smoke_run.py", "test_launch.py", "test_install.py")
"""Files whose every test is end to end (or shares a module fixture that is)."""
SLOW_TESTS = (
    "test_allocator.py::test_a_freed_block_stays_with_the_process_for_the_next_step",
    "test_bad_input.py::test_bad_input_through_a_real_process",
    "test_cass.py::test_accumulated_gradients_sum_over_steps_and_adam_uses_the_sum",
    "test_claims_simulated.py::test_every_row_against_one_comparator_can_form_the_family",
    "test_claims_simulated.py::test_opposite_encoder_effects_give_no_pooled_verdict",
    "test_claims_simulated.py::test_the_intersection_union_rows_type_i_error_is_at_most_alpha",
    "test_datasets.py::test_end_to_end_csv_dataset_through_the_cli",
    "test_encoders.py::test_run_with_imagenet_init_works_offline_and_records_it",
    "test_faults.py::test_enospc_while_saving_a_pretraining_is_a_failure_record",
    "test_faults.py::test_two_identical_runs_started_together_pretrain_once",
    "test_finetune.py::test_best_validation_selection_uses_a_validation_set_no_larger_than_the_labelled_subset",
    "test_finetune.py::test_step_budget_is_the_same_at_every_fraction_and_the_head_starts_at_zero",
    "test_hostile_config.py::test_the_internal_cell_command_with_a_missing_spec_is_one_line",
    "test_hostile_runs.py::test_a_deleted_checkpoint_is_rebuilt_with_run_rebuild",
    "test_hostile_runs.py::test_a_finished_record_missing_only_its_newline_is_not_run_again",
    "test_hostile_runs.py::test_ctrl_c_prints_one_line_and_exits_130",
    "test_hostile_runs.py::test_scores_that_are_not_finite_give_a_failure_record_not_an_ok_one",
    "test_hostile_runs.py::test_sigterm_to_a_cell_process_records_it_as_interrupted",
    "test_layers.py::test_the_report_is_rebuilt_from_records_with_torch_unimportable",
    "test_measure.py::test_flop_count_leaves_the_memory_peak_unchanged",
    "test_overhead_study.py::test_plain_vs_plain_times_two_loops_of_every_run",
    "test_plain_loop_parity.py::test_harness_flops_per_step_equal_the_plain_loop",
    "test_plain_loop_parity.py::test_plain_loop_takes_the_harness_steps",
    "test_plain_loop_parity.py::test_the_overhead_benchmark_times_every_batch_it_is_given",
    "test_plan.py::test_dry_run_lists_exactly_the_missing_records_and_writes_nothing",
    "test_plan.py::test_an_oom_cell_is_recorded_the_sweep_goes_on_and_retry_failed_reruns_it_in_place",
    "test_plugin_method.py::test_registered_method_runs_through_a_smoke_sweep_and_the_report",
    "test_report.py::test_a_thread_count_is_a_cost_setting_of_its_own",
    "test_report.py::test_cells_at_chance_and_collapsed_runs_are_marked_in_the_f1_table",
    "test_report.py::test_cli_writes_latex_and_csv",
    "test_report.py::test_committed_report_regenerates_identically",
    "test_report.py::test_cpu_records_report_rss_instead_of_gpu_memory",
    "test_report.py::test_epoch_robustness_is_measured_with_several_epoch_counts",
    "test_report.py::test_f1_table_matches_an_independent_recomputation",
    "test_report.py::test_main_setting_is_the_papers_batch_size_or_the_one_asked_for",
    "test_report.py::test_mfu_is_a_column_only_where_a_run_measured_it",
    "test_report.py::test_runs_timed_under_contention_are_named_and_left_out_of_the_time_figures",
    "test_report_golden.py::test_the_rendered_sections_match_their_golden_files",
    "test_seedplan.py::test_the_planned_design_keeps_the_family_wise_error_at_alpha",
    "test_start.py::test_run_with_the_fractal_start_works_and_a_second_run_reuses_it",
    "test_start.py::test_the_start_is_identical_in_two_processes_and_exports_as_an_init",
    "test_sweep.py::test_ddp_on_two_cpu_processes_records_the_effective_batch",
    "test_sweep.py::test_sigkill_inside_a_cell_then_resume_gives_each_record_once",
    "test_sweep.py::test_sigterm_to_the_sweep_ends_its_running_cell_too",
    "test_terminal.py::test_smoke_run_prints_one_line_per_cell_no_library_lines_and_a_short_ending",
    "test_terminal.py::test_verbose_brings_lightning_lines_back",
)
"""Tests that take seconds to minutes (real runs through the CLI, simulated sweeps of hundreds of replicates),
measured with ``--durations``; ``python -m pytest -m "not slow"`` leaves them out of the development loop. CI runs
everything."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks :data:`SLOW_FILES` and :data:`SLOW_TESTS` (by node id, parameters aside) ``slow``."""
    for item in items:
        path, _, name = item.nodeid.partition("::")
        file = path.rsplit("/", 1)[-1]
        if file in SLOW_FILES or f"{file}::{name.split('[')[0]}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
