"""Costs timed alone, thread counts as cost settings, CPU MFU in the cost table, and where a seed's time goes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cass_bench.records.breakdown import CATEGORIES, TOTAL, items, seed_minutes, start_minutes, summary_lines
from cass_bench.report.costs import FINETUNE_MFU, MFU, contention_lines, cost_stats, pretrain_runs
from cass_bench.report.load import ALONE, normalise
from cass_bench.report.present.claim_tables import answer_table
from cass_bench.run.status import spending_text
from tests.claim_frames import claims_of, sweep_frame

B, C = "d1/b:bs16:ep6:dino", "d1/c:bs16:ep6:dino"


def _checked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(pretrain_cpu_share=0.97, pretrain_other_processes=0, torch_threads=1)


def test_a_run_beside_another_training_process_leaves_its_seed_out_of_b_and_c_and_is_named() -> None:
    frame = _checked(sweep_frame(seeds=5, fractions=(0.1,), time_sd=0.05, rng=10))
    beside = (frame.method == "dino") & (frame.arch == "vit") & (frame.seed == 3)
    frame.loc[beside, "pretrain_other_processes"] = 1  # its CPU share is fine: only the marker count sees it
    frame.loc[beside, "pretrain_epoch_time_s"] *= 1.4
    out, clean = claims_of(frame), claims_of(frame[frame.seed != 3])
    for key in (B, C):
        assert out.loc[key, "n"] == 4 and out.loc[key, "estimate"] == pytest.approx(clean.loc[key, "estimate"])
        assert "1 seed left out: a run timed under contention" in out.loc[key, "measured"]
    assert out.loc["d1/a@10%:vit:dino", "n"] == 5, "F1 rows keep every seed"
    lines = " ".join(contention_lines(normalise(frame)))
    assert "1 left out: dino/vit bs=16 ep=6 seed=3 (1 other training process)" in lines


def test_an_accelerator_run_keeps_its_time_beside_other_processes() -> None:
    frame = _checked(sweep_frame(seeds=3, fractions=(0.1,))).assign(device="NVIDIA H100", pretrain_cpu_share=None)
    frame["pretrain_other_processes"] = 2  # other jobs on other GPUs of the node
    assert normalise(frame)[ALONE].eq(True).all()
    assert claims_of(frame).loc[f"{B}", "n"] == 3


def test_older_runs_without_the_count_are_kept_and_named_unchecked() -> None:
    frame = _checked(sweep_frame(seeds=4, fractions=(0.1,), rng=3))
    frame.loc[frame.seed < 2, "pretrain_other_processes"] = np.nan
    out = claims_of(frame)
    assert out.loc[B, "n"] == 4 and "2 seeds unchecked for other processes" in out.loc[B, "measured"]
    df = normalise(frame)
    assert df.loc[df.seed < 2, ALONE].isna().all() and df.loc[df.seed >= 2, ALONE].eq(True).all()
    lines = contention_lines(df)
    assert "none left out" in lines[0] and lines[1].startswith("Unchecked: 10 runs")


def test_a_thread_count_splits_the_cost_rows_and_the_claim_rows() -> None:
    frame = _checked(sweep_frame(seeds=6, fractions=(0.1,), rng=4))
    frame["pretrain_threads"] = np.where(frame.seed < 3, 1, 2)
    frame.loc[frame.seed >= 3, "pretrain_epoch_time_s"] *= 0.6
    out = claims_of(frame)
    assert out.loc[f"{B}:t1", "n"] == 3 and out.loc[f"{B}:t2", "n"] == 3
    assert "1 thread," in out.loc[f"{B}:t1", "claim"] and "2 threads," in out.loc[f"{B}:t2", "claim"]
    costs = cost_stats(pretrain_runs(normalise(frame)))
    threads = costs.index.get_level_values("threads")
    assert sorted(set(threads)) == [1, 2] and len(costs.index) == 2 * 5


def test_cpu_mfu_of_pretraining_and_fine_tuning_shows_in_the_cost_table() -> None:
    frame = _checked(sweep_frame(seeds=2, fractions=(0.1, 1.0))).assign(mfu=0.6, peak_flops=78.4e9)
    frame["finetune_mfu"] = np.where(frame.label_fraction == 1.0, 0.3, 0.1)
    costs = cost_stats(pretrain_runs(normalise(frame)))
    assert MFU in costs.quantities and FINETUNE_MFU in costs.quantities
    cass = costs.mean(FINETUNE_MFU).xs("cass", level="method")
    assert cass.iloc[0] == pytest.approx(0.2), "the mean over the run's fine-tune records"
    contended = frame.assign(pretrain_other_processes=1)
    assert MFU not in cost_stats(pretrain_runs(normalise(contended))).quantities, "a contended run's MFU is left out"


def _spent_records() -> list[dict]:
    """Two seeds of one CASS cell each, written by one process per cell, and an older record without the figures."""
    records = []
    for seed, process in ((0, "p0"), (1, "p1")):
        common = dict(seed=seed, method="cass", encoders="cnn+vit", dataset="d", batch_size=16, pretrain_epochs=1,
                      device="CPU", torch_threads=2, pretrain_threads=2, cell_process=process, cell_startup_s=6.0,
                      cell_wait_s=1.0, data_time_s=3.0, pretrain_wait_s=2.0, pretrain_wall_s=60.0,
                      pretrain_time_s=50.0, start_key="s", start_train_s=120.0, status="ok")
        for arch in ("cnn", "vit"):
            records.append({**common, "arch": arch, "eval": "finetune", "eval_time_s": 30.0, "eval_wait_s": 0.5,
                            "finetune_time_s": 25.0})
            records.append({**common, "arch": arch, "eval": "linear", "eval_time_s": 6.0, "eval_wait_s": 0.0})
    records.append(dict(seed=2, method="dino", encoders="cnn", arch="cnn", dataset="d", batch_size=16,
                        pretrain_epochs=1, device="CPU", torch_threads=1, eval="finetune", pretrain_time_s=90.0,
                        finetune_time_s=40.0, status="ok"))
    return records


def test_the_breakdown_sums_to_the_records_figures() -> None:
    records = _spent_records()
    table = seed_minutes(records)
    per_seed = {0: {"start": 120 * 2 / 2, "pretraining": 60 * 2, "fine-tunes": 2 * 30 * 2, "probes": 2 * 6 * 2, "data": 3 * 2,
                    "start-up": 6 * 2, "waiting": (1 + 2 + 2 * 0.5) * 2}}
    for category, seconds in per_seed[0].items():
        assert table.loc[0, category] == pytest.approx(seconds / 60)
        assert table.loc[1, category] == pytest.approx(seconds / 60)
    assert table.loc[2, "pretraining"] == pytest.approx(90 / 60)
    assert table.loc[2, "fine-tunes"] == pytest.approx(40 / 60)
    assert table.loc[2, "probes"] == 0, "an older record shows only its epochs and fine-tuning loop"
    assert np.isnan(table.loc[2, "start"]), "seed 2 began from no recorded start: not measured, not zero"
    assert table[TOTAL].to_numpy() == pytest.approx(table[list(CATEGORIES)].fillna(0).sum(axis=1).to_numpy())
    assert table[TOTAL].sum() == pytest.approx(items(records)["thread_min"].sum())
    assert start_minutes(records) == pytest.approx(120 * 2 / 60), "the start counts once, not per seed"
    own = [{**r, "start_key": f"s{r['seed']}"} for r in records]
    assert seed_minutes(own).loc[[0, 1], "start"].tolist() == pytest.approx([4.0, 4.0]), "a start per seed: whole"
    assert start_minutes(own) == pytest.approx(8.0)


def test_status_shows_where_each_seed_s_time_went(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text("".join(json.dumps({**r, "record_id": f"r{i}"}) + "\n"
                                                    for i, r in enumerate(_spent_records())))
    lines = spending_text(tmp_path).splitlines()
    assert lines[0].startswith("Where each seed's time went") and "pretraining" in lines[1]
    seed_0 = next(line for line in lines if line.startswith("|") and line.split("|")[1].strip() == "0")
    assert seed_0.split("|")[-2].strip() == "6.83", "(120 / 2 + 60 + 2 x 30 + 2 x 6 + 3 + 6 + 4) s x 2 threads / 60"
    assert any(line.startswith("Per cell") for line in lines)


def test_pretrain_alone_and_the_cpu_peak_are_run_flags_that_change_no_record_identity() -> None:
    from cass_bench.cli import _overrides, _parser
    from cass_bench.config.load import load_config
    from cass_bench.records.identity import config_hash, pretrain_key
    from cass_bench.run.grid import expand

    on = _overrides(_parser().parse_args(["run", "--pretrain-alone", "--cpu-peak-gflops", "50"]))
    off = _overrides(_parser().parse_args(["run"]))
    assert on["pretrain_alone"] == "true" and on["cpu_peak_gflops"] == 50.0
    assert off["pretrain_alone"] is None, "absent, the switch leaves the config's value"
    smoke = Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml"
    alone, plain = load_config(smoke, on), load_config(smoke)
    assert alone.pretrain_alone == "true" and plain.pretrain_alone == "false" and alone.cpu_peak_gflops == 50.0
    assert alone.pretrains_alone(0) and not plain.pretrains_alone(0)
    cell = expand(plain)[0]
    assert config_hash(alone, cell.method) == config_hash(plain, cell.method)
    assert pretrain_key(cell, alone) == pretrain_key(cell, plain), "the lock changes no measured number"


def test_pretrain_alone_pilot_times_the_pilot_seeds_alone_and_runs_the_planned_seeds_side_by_side() -> None:
    from cass_bench.cli import _overrides, _parser
    from cass_bench.config.load import load_config

    args = _overrides(_parser().parse_args(["run", "--pretrain-alone", "pilot", "--seeds", "0,1,2,3,4"]))
    planned = load_config(None, {**args, "plan.pilot": 3})
    assert [planned.pretrains_alone(s) for s in range(5)] == [True, True, True, False, False]
    listed = load_config(None, args)
    assert all(listed.pretrains_alone(s) for s in range(5)), "without a plan every seed is a pilot seed"
    yaml_true = load_config(None, {"pretrain_alone": True, "seeds": "0,7"})
    assert yaml_true.pretrain_alone == "true" and yaml_true.pretrains_alone(7)


def test_an_impossible_cpu_peak_is_refused_in_one_line() -> None:
    from cass_bench.config.checks import validate
    from cass_bench.config.load import load_config
    from cass_bench.errors import UserError

    smoke = Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml"
    with pytest.raises(UserError, match="cpu_peak_gflops -5.0 is impossible; give one CPU thread's peak"):
        validate(load_config(smoke, {"cpu_peak_gflops": -5}))


def test_two_cpu_types_under_one_label_split_the_cost_rows_and_clock_jitter_does_not() -> None:
    frame = _checked(sweep_frame(seeds=6, fractions=(0.1,), rng=5))
    frame["peak_flops"] = np.where(frame.seed < 5, 166.2e9, 78.3e9)
    frame.loc[frame.method == "supervised", "peak_flops"] = np.nan
    out = claims_of(frame)
    fast, slow = f"{B}@CPU (test, 166 GFLOP/s a thread)", f"{B}@CPU (test, 78 GFLOP/s a thread)"
    assert out.loc[fast, "n"] == 5 and out.loc[slow, "n"] == 1 and B not in out.index
    answer = answer_table(out.reset_index()).cells.set_index("claim")
    assert answer.loc["(b) time vs DINO (bs16, ep6, CPU 78 GF/s)", "verdict"] == "one run"
    assert answer.loc["(b) time vs DINO (bs16, ep6, CPU 166 GF/s)", "verdict"] == "supported"
    jitter = frame.assign(peak_flops=np.where(frame.seed % 2, 78.3e9, 80.1e9))
    assert normalise(jitter)["device"].eq("CPU (test)").all() and claims_of(jitter).loc[B, "n"] == 6


def test_a_start_trained_again_on_a_new_machine_counts_both_trainings() -> None:
    records = [{**r, "start_key": f"s{r['seed']}"} for r in _spent_records()]
    again = [{**r, "start_train_s": 180.0, "dataset": "e"} for r in records if r["seed"] == 1]
    assert start_minutes(records + again) == pytest.approx(8.0 + 6.0)
    assert seed_minutes(records + again).loc[1, "start"] == pytest.approx(4.0 + 6.0)
    (line,) = [x for x in summary_lines(records + again) if x.startswith("The `fractal` starts")]
    assert line.startswith("The `fractal` starts: 2 trained (1 trained again: a cache that did not reach a new "
                           "machine), 14.00 thread-minutes")
