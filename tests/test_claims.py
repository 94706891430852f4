"""The claim checks on simulated record frames: per-encoder rows, the family and Holm, the paper's metric, chance,
robustness over every level, cost per setting, the one-seed bootstrap and the family read from config.yaml."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cass_bench.config.schema import ClaimsConfig
from cass_bench.errors import UserError
from cass_bench.report.claims.decide import COLUMNS, check_claims
from cass_bench.report.claims.specs import OUTSIDE, rule_lines
from cass_bench.report.cost_claims import TIME_BOUND
from cass_bench.report.claims.family import Family, claim_family, parse_row, record_rows
from cass_bench.report.load import normalise
from cass_bench.report.stats.multiple import holm
from cass_bench.report.stats.power import power_of
from cass_bench.report.versions import version_lines

from .claim_frames import MAIN_BATCH, MAIN_EPOCHS, TIMES, claims_of, sweep_frame


def test_one_row_per_dataset_encoder_fraction_and_comparator() -> None:
    out = check_claims(normalise(sweep_frame(seeds=4)), 16, 6, None)
    assert list(out.columns) == COLUMNS
    gains = out[out["kind"] == "a"]
    assert list(gains["key"]) == [f"d1/a@{f}:{a}:{c}" for f in ("1%", "10%", "100%") for a in ("cnn", "vit")
                                  for c in ("best", "dino", "byol")]
    best = gains["key"].str.endswith(":best")
    assert gains.loc[best, "in_family"].all() and not gains.loc[~best, "in_family"].any()  # the paper's family
    assert set(gains["eval"]) == {"finetune"}
    assert list(out.loc[out["kind"] != "a", "key"]) == ["d1/b:bs16:ep6:dino", "d1/b:bs16:ep6:byol",
                                                        "d1/c:bs16:ep6:dino"]
    assert any(f"{TIME_BOUND:g}" in rule and "0.273" in rule for rule in rule_lines())


def test_each_encoder_row_is_the_t_interval_of_its_own_paired_differences() -> None:
    frame = sweep_frame(gain={"cnn": 12.0, "vit": -12.0}, seeds=10, rng=3)
    out = claims_of(frame, each=True)
    for arch in ("cnn", "vit"):
        r = frame[(frame.label_fraction == 0.1) & (frame.arch == arch)]
        f1 = 100 * r.pivot_table(index="seed", columns="method", values="f1_macro")
        d = f1["cass"] - f1["dino"]
        half = sps.t.ppf(0.975, len(d) - 1) * d.std() / len(d) ** 0.5
        row = out.loc[f"d1/a@10%:{arch}:dino"]
        assert (row["estimate"], row["low"], row["high"], row["n"]) == pytest.approx((d.mean(), d.mean() - half,
                                                                                      d.mean() + half, 10))
        flips = np.array(list(itertools.product((1, -1), repeat=len(d))))
        exact = np.mean(np.abs(flips @ d.to_numpy()) >= abs(d.sum()) - 1e-9)
        assert row["sd"] == pytest.approx(d.std()) and row["p"] == pytest.approx(exact)
        assert row["test"] == "exact sign-flip" and "(exact sign-flip)" in row["measured"]
    assert out.loc["d1/a@10%:cnn:dino", "status"] == "supported"
    assert out.loc["d1/a@10%:vit:dino", "status"] == "contradicted"


def test_holm_runs_over_exactly_the_family_with_unmeasured_rows_at_p_1() -> None:
    frame = sweep_frame(seeds=5, fractions=(0.1,), rng=1)
    rows = tuple(r for text in ("a@10%:cnn:dino", "a@10%:vit:byol", "a@50%:cnn:dino") for r in parse_row(text, ["d1"]))
    out = claims_of(frame, family=Family(rows, "a test"))
    family = out[out["in_family"]]
    assert list(family.index) == ["d1/a@10%:cnn:dino", "d1/a@10%:vit:byol", "d1/a@50%:cnn:dino"]
    assert family.loc["d1/a@50%:cnn:dino", "status"] == "not measured"
    expected = holm([out.loc["d1/a@10%:cnn:dino", "p"], out.loc["d1/a@10%:vit:byol", "p"], 1.0])
    assert list(family["p_holm"]) == pytest.approx(expected)
    outside = out.loc["d1/a@10%:cnn:byol"]
    assert outside["status"] == OUTSIDE and math.isnan(outside["p_holm"]) and outside["low"] < outside["high"]
    assert "family of 3" in out.loc["d1/a@10%:cnn:dino", "measured"]


def test_too_few_seeds_give_no_verdict_but_an_interval_and_a_power_line() -> None:
    row = claims_of(sweep_frame(gain=20.0, seeds=2, rng=2), each=True).loc["d1/a@10%:cnn:dino"]
    assert row["status"] == "inconclusive — too few seeds (2)" and row["low"] < row["estimate"] < row["high"]
    assert row["power"].startswith("2 seeds detect >= ") or row["power"].startswith("underpowered: 2 seeds detect")


def test_the_power_line_of_an_inconclusive_row_says_why() -> None:
    row = claims_of(sweep_frame(gain=0.0, seeds=10, sd=12.0, rng=4), each=True).loc["d1/a@10%:cnn:dino"]
    assert row["status"] == "inconclusive"
    assert row["power"].startswith(f"underpowered: 10 seeds detect >= {row['mde']:.1f} [")
    assert f"a 5-point difference needs ≈ {int(row['seeds_needed'])} [" in row["power"]
    assert "the paper's +5.9 on f1_seed_code (spread " in row["power"]
    assert row["mde"] > 5.9 and row["seeds_needed"] > 10


def test_a_best_other_row_below_the_exact_tests_floor_detects_nothing() -> None:
    # CASS 6 points below both comparators at every seed: each comparison's sign-flip p at 8 seeds, 2/2^8, is under
    # alpha/6, but "contradicted" takes the smaller of the two p values times 2, which needs 9 seeds to get there
    def claims(seeds: int) -> pd.DataFrame:
        return check_claims(normalise(sweep_frame(gain=-6.0, seeds=seeds, sd=0.5, rng=8)), 16, 6, None).set_index("key")

    eight = claims(8)
    row = eight.loc["d1/a@10%:cnn:best"]
    assert row["high"] < 0 and row["status"] == "inconclusive" and row["p"] == pytest.approx(2 * 2 / 2 ** 8)
    assert row["power"].startswith("underpowered: 8 seeds cannot call the row contradicted: the smallest p of that "
                                   "side, 2 x 2/2^8, cannot reach alpha/6; a 5-point difference needs ≈ 9")
    assert math.isinf(row["mde"]) and row["seeds_needed"] == 9
    assert eight.loc["d1/a@10%:cnn:dino", "power"].startswith("8 seeds detect >= ")  # one comparator: 8 suffice
    assert claims(9).loc["d1/a@10%:cnn:best", "status"] == "contradicted"
    few = claims(7).loc["d1/a@10%:cnn:best", "power"]
    assert few.startswith("underpowered: 7 seeds detect no difference: the exact sign-flip test's smallest p, 2/2^7, "
                          "cannot reach alpha/6")


def test_the_papers_gain_is_read_on_the_reference_codes_f1() -> None:
    near = claims_of(sweep_frame(gain=0.0, code_gain=5.9, seeds=30, sd=2.0, rng=5), each=True).loc["d1/a@10%:cnn:dino"]
    assert "paper's metric (f1_seed_code)" in near["measured"]
    assert "the interval contains the paper's value and excludes 0" in near["measured"]
    far = claims_of(sweep_frame(gain=5.9, code_gain=0.0, seeds=30, sd=2.0, rng=5), each=True).loc["d1/a@10%:cnn:dino"]
    assert "the interval contains 0 and excludes the paper's value" in far["measured"]
    assert far["status"] == "supported"  # the verdict is macro-F1's; the paper's value is read on its own metric
    assert "compatible" not in near["measured"] + far["measured"]
    assert (near["paper_value"], far["paper_value"]) == ("inside", "outside")  # size, read apart from direction
    assert near["code_low"] <= 5.9 <= near["code_high"] and not far["code_low"] <= 5.9 <= far["code_high"]


def test_a_sign_disagreement_between_the_metrics_is_flagged() -> None:
    out = claims_of(sweep_frame(gain=3.0, code_gain=-3.0, seeds=12, sd=1.0, fractions=(0.1,), rng=6))
    for key in ("d1/a@10%:cnn:dino", "d1/a@10%:cnn:best"):
        row = out.loc[key]
        assert row["estimate"] > 0 > row["code_estimate"] and "sign" in row["flags"].split(", ")
        assert f"macro-F1 {row['estimate']:+.2f}, f1_seed_code {row['code_estimate']:+.2f}" in row["notes"]
    agree = claims_of(sweep_frame(gain=3.0, seeds=12, sd=1.0, fractions=(0.1,), rng=6))
    assert "sign" not in agree.loc["d1/a@10%:cnn:best", "flags"]


def test_power_is_stated_on_the_scale_of_the_number_compared_with_its_range() -> None:
    frame = sweep_frame(gain=2.0, seeds=12, sd=4.0, fractions=(0.1,), rng=7)
    out = claims_of(frame, each=True)
    row, m = out.loc["d1/a@10%:cnn:dino"], int((out["family"] == "paper").sum())
    r = frame[(frame.label_fraction == 0.1) & (frame.arch == "cnn")]
    per_seed = 100 * r.pivot_table(index="seed", columns="method", values=["f1_macro", "f1_seed_code"])
    f1 = per_seed[("f1_macro", "cass")] - per_seed[("f1_macro", "dino")]
    code = per_seed[("f1_seed_code", "cass")] - per_seed[("f1_seed_code", "dino")]
    on_f1 = power_of(12, f1.std(), 5.0, 0.05, m, 0.8)  # a declared 5-point macro-F1 difference
    on_code = power_of(12, code.std(), 5.9, 0.05, m, 0.8)  # the paper's gain, on the paper's metric
    assert row["mde"] == pytest.approx(on_f1.mde) and row["seeds_needed"] == on_f1.need
    assert (f"detect >= {on_f1.mde:.1f} [{on_f1.mde_range[0]:.1f}, {on_f1.mde_range[1]:.1f}] macro-F1 points"
            in row["power"])
    assert (f"the paper's +5.9 on f1_seed_code (spread {code.std():.2f}) needs ≈ {on_code.need} "
            f"[{on_code.need_range[0]}, {on_code.need_range[1]}] seeds") in row["power"]


def test_a_comparison_is_left_out_only_when_both_methods_are_at_chance() -> None:
    frame = sweep_frame(gain=8.0, seeds=10, sd=1.0, at_chance=("dino",), rng=6)
    out = claims_of(frame, each=True)
    lost = out.loc["d1/a@10%:cnn:dino"]
    assert lost["status"] == "supported" and "dino at chance" in lost["measured"] and lost["n"] == 10
    both = claims_of(sweep_frame(gain=8.0, seeds=10, sd=1.0, at_chance=("dino", "cass"), rng=6), each=True)
    assert both.loc["d1/a@10%:cnn:dino", "status"] == "not testable: both methods at chance"
    assert both.loc["d1/a@10%:cnn:byol", "status"] == "supported"  # CASS at chance, BYOL not: CASS's F1 counts
    assert both.loc["d1/a@10%:cnn:dino", "in_family"] and both.loc["d1/a@10%:cnn:dino", "p_holm"] == 1.0


def test_robustness_compares_every_level_with_the_main_one() -> None:
    frame = sweep_frame(gain=0.0, seeds=10, sd=1.0, fractions=(0.1,), batch_sizes=(8, 16, 32), loss={"dino": 6.0},
                        rng=7)
    out = claims_of(frame, each=True)
    for level in (8, 32):
        assert f"d1/d@10%:cnn:dino:{level}" in out.index
    small = out.loc["d1/d@10%:cnn:dino:8"]
    assert small["status"] == "supported" and small["estimate"] == pytest.approx(-6.0, abs=3.0)
    assert "each method's loss at batch 8: cass" in small["measured"] and small["in_family"]
    assert out.loc["d1/d@10%:cnn:dino:32", "status"] == "inconclusive"  # no method loses above the main batch
    gains = claims_of(sweep_frame(gain=0.0, seeds=10, sd=1.0, fractions=(0.1,), batch_sizes=(8, 16),
                                  loss={"byol": -6.0}, rng=7), each=True)
    assert gains.loc["d1/d@10%:cnn:byol:8", "status"] == "contradicted"  # BYOL gains at batch 8, CASS does not
    epochs = claims_of(sweep_frame(gain=0.0, seeds=10, sd=1.0, fractions=(0.1,), epochs=(3, 6), loss={"cass": 6.0},
                                   rng=8), each=True)
    assert epochs.loc["d1/e@10%:vit:dino:3", "status"] == "contradicted"
    assert "main level" not in epochs.loc["d1/e@10%:vit:dino:3", "measured"]


def test_a_method_falling_to_chance_at_a_level_counts_as_its_loss() -> None:
    frame = sweep_frame(gain=0.0, seeds=10, sd=1.0, fractions=(0.1,), batch_sizes=(8, 16), loss={"dino": 6.0}, rng=9)
    frame.loc[(frame.method == "dino") & (frame.batch_size == 8), "above_chance"] = False
    row = claims_of(frame, each=True).loc["d1/d@10%:cnn:dino:8"]
    assert row["status"] == "supported" and "dino at chance at batch 8" in row["measured"]
    frame.loc[(frame.method == "cass") & (frame.batch_size == 8), "above_chance"] = False
    assert claims_of(frame, each=True).loc["d1/d@10%:cnn:dino:8", "status"] == "not testable: both methods at chance (batch 8)"


def test_cost_claims_are_per_setting_on_the_log_scale() -> None:
    frame = sweep_frame(seeds=4, batch_sizes=(8, 16), fractions=(0.1,), time_sd=0.05, rng=10)
    out = claims_of(frame, each=True)
    for batch in (8, 16):
        row = out.loc[f"d1/b:bs{batch}:ep6:dino"]
        runs = frame[(frame.batch_size == batch)].drop_duplicates(["method", "encoders", "seed"])
        t = runs.pivot_table(index="seed", columns=["method", "encoders"], values="pretrain_epoch_time_s")
        logs = np.log(t[("cass", "cnn+vit")] / (t[("dino", "cnn")] + t[("dino", "vit")]))
        half = sps.t.ppf(0.975, 3) * logs.std() / 2
        assert (row["estimate"], row["low"], row["high"], row["n"]) == pytest.approx(
            (np.exp(logs.mean()), np.exp(logs.mean() - half), np.exp(logs.mean() + half), 4))
        assert row["status"] == "supported" and not row["in_family"] and row["power"] == "—"
    assert out.loc["d1/c:bs8:ep6:dino", "status"] == "supported"
    assert "restates (b) with bound 0.5" in out.loc["d1/c:bs8:ep6:dino", "measured"]
    assert "FLOPs ratio 0.200" in out.loc["d1/c:bs8:ep6:dino", "measured"]


def test_a_run_timed_under_contention_leaves_its_seed_out_of_the_time_rows_only() -> None:
    frame = sweep_frame(seeds=5, fractions=(0.1,), time_sd=0.05, rng=10).assign(pretrain_cpu_share=0.97)
    held_up = (frame.method == "dino") & (frame.arch == "cnn") & (frame.seed == 2)
    frame.loc[held_up, "pretrain_cpu_share"] = 0.55
    frame.loc[held_up, "pretrain_epoch_time_s"] *= 3
    out, clean = claims_of(frame, each=True), claims_of(frame[frame.seed != 2], each=True)
    for key in ("d1/b:bs16:ep6:dino", "d1/c:bs16:ep6:dino"):
        assert out.loc[key, "n"] == 4 and out.loc[key, "estimate"] == pytest.approx(clean.loc[key, "estimate"])
        assert "1 seed left out: a run timed under contention" in out.loc[key, "measured"]
    assert out.loc["d1/b:bs16:ep6:byol", "n"] == 5 and "left out" not in out.loc["d1/b:bs16:ep6:byol", "measured"]
    assert out.loc["d1/a@10%:cnn:dino", "n"] == 5, "F1 rows keep every seed: contention changes times, not F1"
    assert normalise(frame.assign(pretrain_cpu_share=np.nan)).loc[held_up, "pretrain_epoch_time_s"].notna().all(), \
        "a record without the share (older, or an accelerator run) keeps its time"


@pytest.mark.parametrize("cass_time, expected", [(0.25 * 50, "supported"), (0.31 * 50, "inconclusive"),
                                                 (0.40 * 50, "contradicted")])
def test_the_time_bound_is_the_claim_with_no_tolerance(cass_time: float, expected: str) -> None:
    frame = sweep_frame(seeds=5, fractions=(0.1,), times={**TIMES, ("cass", "cnn+vit"): cass_time}, rng=11)
    assert claims_of(frame, each=True).loc["d1/b:bs16:ep6:dino", "status"] == expected
    one = claims_of(sweep_frame(seeds=1, fractions=(0.1,), rng=11), each=True).loc["d1/b:bs16:ep6:dino"]
    assert one["status"] == "inconclusive — one run: no interval" and "1 run: no interval" in one["measured"]


def test_missing_comparators_are_not_measured() -> None:
    frame = sweep_frame(seeds=8, sd=1.0, fractions=(0.1,), rng=12)
    out = claims_of(frame[frame.method != "dino"], each=True)
    assert "d1/a@10%:cnn:dino" not in out.index and out.loc["d1/a@10%:cnn:byol", "status"] == "supported"
    assert out.loc["b:dino", "status"] == "not measured" and out.loc["c:dino", "status"] == "not measured"
    rows = parse_row("a@10%:cnn:dino", ["d1"])
    family = claims_of(frame[frame.method != "dino"], family=Family(tuple(rows), "test"))
    assert family.loc["d1/a@10%:cnn:dino", "status"] == "not measured"
    assert set(claims_of(frame.assign(status="oom"), each=True)["status"]) == {"not measured"}


def _write_predictions(frame: pd.DataFrame, folder: Path) -> Path:
    """Predictions where CASS is right on 90% of 400 test items and the others on 60%."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    y_true = rng.integers(0, 4, 400)
    for row in frame.itertuples():
        right = rng.random(400) < (0.9 if row.method == "cass" else 0.6)
        labels = np.where(right, y_true, (y_true + 1) % 4)
        np.savez(folder / f"{row.record_id}.npz", y_true=y_true, y_score=np.eye(4)[labels] * 0.8 + 0.1)
    return folder


def test_one_seed_uses_the_paired_bootstrap(tmp_path: Path) -> None:
    frame = sweep_frame(seeds=1, fractions=(0.1,))
    without = claims_of(frame, each=True).loc["d1/a@10%:cnn:dino"]
    assert without["status"] == "inconclusive — too few seeds (1)" and "no predictions folder" in without["measured"]
    predictions = _write_predictions(frame, tmp_path / "p")
    row = check_claims(normalise(frame), 16, 6, predictions).set_index("key").loc["d1/a@10%:cnn:dino"]
    assert row["status"] == OUTSIDE and row["test"] == "paired bootstrap"
    best = check_claims(normalise(frame), 16, 6, predictions).set_index("key").loc["d1/a@10%:cnn:best"]
    assert best["status"] == "inconclusive — too few seeds (1)" and best["p_holm"] == 1.0
    assert "paired bootstrap over test images" in row["measured"] and 0 < row["low"] < row["estimate"] < row["high"]


def test_the_family_comes_from_config_yaml_when_there_is_one(tmp_path: Path) -> None:
    frame = sweep_frame(seeds=4, rng=13)
    df = normalise(frame)
    default = claim_family(df, tmp_path, 16, 6)
    assert default.keys == tuple(f"d1/a@{f}:{a}:best" for f in ("1%", "10%", "100%") for a in ("cnn", "vit"))
    assert set(default.keys) < {r.key for r in record_rows(df, 16, 6)} and "no config.yaml" in default.source
    (tmp_path / "config.yaml").write_text("datasets: [d1]\nlabel_fractions: [0.1]\nmethods: [cass, dino]\n"
                                          "batch_sizes: [16]\npretrain_epochs: [6]\nout: somewhere/else\n")
    grid = claim_family(df, tmp_path, 16, 6)
    assert grid.keys == ("d1/a@10%:cnn:best", "d1/a@10%:vit:best") and "grid of the config.yaml" in grid.source
    (tmp_path / "config.yaml").write_text("datasets: [d1]\nclaims:\n  family: [a@100%:vit:byol, "
                                          "d@10%:cnn+vit:dino:8]\n  alpha: 0.01\n")
    named = claim_family(df, tmp_path, 16, 6)
    assert named.keys == ("d1/a@100%:vit:byol", "d1/d@10%:cnn+vit:dino:8") and named.alpha == 0.01
    out = check_claims(df, 16, 6, None, named).set_index("key")
    assert out.loc["d1/d@10%:cnn+vit:dino:8", "status"] == "not measured"
    assert out.loc["d1/a@10%:cnn:dino", "status"] == OUTSIDE
    (tmp_path / "config.yaml").write_text("claims:\n  family: [a@10%:cnn]\n")
    with pytest.raises(UserError, match="config.yaml: claims.family row 'a@10%:cnn' is malformed"):
        claim_family(df, tmp_path, 16, 6)


@pytest.mark.parametrize("family, message", [(("e@10%:cnn:dino",), "malformed"), (("a@0%:cnn:dino",), "malformed"),
                                             (("a@10%:cnn:simclr",), "choose from best, dino, byol")])
def test_a_bad_family_row_is_refused_when_the_config_loads(family: tuple[str, ...], message: str) -> None:
    with pytest.raises(UserError, match=message):
        ClaimsConfig(family=family)
    with pytest.raises(UserError, match="claims.alpha"):
        ClaimsConfig(alpha=1.5)


def test_docs_recipe_recomputes_a_per_encoder_row() -> None:
    records = sweep_frame(seeds=5, rng=14)
    # docs/claims.md recipe: claim (a) for the CNN at 10% labels, CASS vs DINO, batch 16, 6 epochs
    r = records[(records.status == "ok") & (records["eval"] == "finetune") & (records.label_fraction == 0.1)
                & (records.dataset == "d1") & (records.arch == "cnn")
                & (records.batch_size.isna() | ((records.batch_size == MAIN_BATCH)
                                                & (records.pretrain_epochs == MAIN_EPOCHS)))]
    f1 = r.pivot_table(index="seed", columns="method", values="f1_macro")
    diff = 100 * (f1["cass"] - f1["dino"])
    n, mean, se = len(diff), diff.mean(), diff.std() / len(diff) ** 0.5
    low, high = mean + np.array([-1, 1]) * sps.t.ppf(0.975, n - 1) * se
    row = claims_of(records, each=True).loc["d1/a@10%:cnn:dino"]
    assert (row["estimate"], row["low"], row["high"]) == pytest.approx((mean, low, high))


def test_a_seed_whose_methods_ran_on_different_commits_is_named_and_flagged() -> None:
    frame = sweep_frame(seeds=10, sd=1.0, fractions=(0.1,), rng=15).assign(git_commit="a" * 40)
    frame.loc[(frame.seed == 2) & (frame.method == "dino") & (frame.arch == "vit"), "git_commit"] = "b" * 40
    out = claims_of(frame, each=True)
    assert "commits" in out.loc["d1/a@10%:vit:dino", "flags"] and "commits" in out.loc["d1/a@10%:vit:best", "flags"]
    assert "seed 2: the row's methods ran on different commits" in out.loc["d1/a@10%:vit:dino", "notes"]
    assert "commits" not in out.loc["d1/a@10%:vit:byol", "flags"] + out.loc["d1/a@10%:cnn:dino", "flags"]
    lines = version_lines(normalise(frame))
    assert lines[0].startswith("Code versions: 2 commits behind the finished records (aaaaaaa ")
    assert "seed 2: aaaaaaa (byol, cass, dino-cnn), bbbbbbb (dino-vit)." in lines[1] and "seed 3" not in lines[1]
    assert len(version_lines(normalise(frame.assign(git_commit="a" * 40)))) == 1
