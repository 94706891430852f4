"""Seeds planned from a pilot, blind to the effect: the plan reads spreads only, stays within its bounds, lands in the
folder's config.yaml before any post-pilot cell, and keeps the family's type-I error at its level."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cass_bench.config.files import resolve_config
from cass_bench.config.load import load_config
from cass_bench.config.registered import registered_config
from cass_bench.config.schema import BenchConfig
from cass_bench.errors import UserError
from cass_bench.report.seedplan import plan_lines, planned_seeds, seed_plan
from cass_bench.report.stats.intervals import sign_flip_pvalue
from cass_bench.report.stats.power import exact_floor
from cass_bench.run import sweep

from .claim_frames import claims_of, sweep_frame


def plan_cfg(tmp_path: Path, **overrides: Any) -> BenchConfig:
    base = {"methods": ("cass", "dino", "byol", "supervised"), "out": str(tmp_path / "out"), "plan.pilot": 3,
            "seeds": (0, 1, 2)}
    return load_config(resolve_config("smoke"), {**base, **overrides})


def _claims(**kwargs: Any) -> Any:
    return claims_of(sweep_frame(seeds=3, fractions=(0.1,), **kwargs)).reset_index()


def test_the_plan_reads_spreads_only(tmp_path: Path) -> None:
    cfg = plan_cfg(tmp_path)
    up, down = _claims(gain=6.0, sd=4.0, rng=1), _claims(gain=-4.0, sd=4.0, rng=1)  # the same noise, shifted
    plan = seed_plan(up, cfg)
    assert [r.needed for r in plan.rows] == [r.needed for r in seed_plan(down, cfg).rows]
    blind = up.drop(columns=["estimate", "low", "high", "p", "p_holm", "status"])
    assert seed_plan(blind, cfg) == plan  # no mean difference, interval or verdict is read
    assert len(plan.rows) == 2 and all(r.key.endswith(":best") for r in plan.rows)
    wider = _claims(gain=6.0, sd=8.0, rng=1)
    assert seed_plan(wider, cfg).planned >= plan.planned


def test_a_best_other_row_needs_what_its_noisiest_comparison_needs(tmp_path: Path) -> None:
    cfg = plan_cfg(tmp_path)
    claims = _claims(sd=4.0, rng=2)
    plan = seed_plan(claims, cfg)
    for row in plan.rows:
        parts = claims[claims["key"].isin([row.key.replace(":best", ":dino"), row.key.replace(":best", ":byol")])]
        assert row.sd == pytest.approx(parts["sd"].max()) and row.n == 3


def test_the_plan_stays_between_the_pilot_and_the_cap() -> None:
    assert exact_floor(0.05, 6) == 8 and exact_floor(0.05, 1) == 6  # 2/2^8 < 0.05/6 <= 2/2^7
    assert exact_floor(0.05, 6, comparisons=2) == 9  # a best-other row's "contradicted": 2 x 2/2^9 < 0.05/6
    assert planned_seeds([0.1, 0.2], 3, 5.0, 0.05, 6, 0.8, 12, comparisons=2) == 9
    assert planned_seeds([0.1, 0.2], 3, 5.0, 0.05, 6, 0.8, 12) == 8  # tiny spreads: the exact test's floor
    assert planned_seeds([0.1, 0.2], 3, 5.0, 0.05, 6, 0.8, 6) == 6  # never above the cap
    assert planned_seeds([40.0], 3, 5.0, 0.05, 6, 0.8, 12) == 12
    assert planned_seeds([float("nan")], 3, 5.0, 0.05, 6, 0.8, 12) == 12  # an unmeasured row asks for the cap
    middle = planned_seeds([4.0], 3, 5.0, 0.05, 6, 0.8, 30)
    assert 8 < middle < 30
    assert planned_seeds([4.0], 3, 5.0, 0.05, 6, 0.8, middle - 1) == middle - 1


def test_plan_settings_are_checked(tmp_path: Path) -> None:
    for key, value, words in (("plan.pilot", 1, "at least 2"), ("plan.cap", 2, "below plan.pilot"),
                              ("plan.target", 0, "positive"), ("plan.power", 1.5, "plan.power")):
        with pytest.raises(UserError, match=words):
            plan_cfg(tmp_path, **{key: value})


def test_planned_seeds_are_registered_before_the_first_post_pilot_cell(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = registered_config(plan_cfg(tmp_path, methods=("cass", "supervised"), archs=("cnn",),
                                     **{"plan.pilot": 2, "seeds": (0, 1)}))
    seen: list[tuple[int, list[int], int | None]] = []

    def fake_cell(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        registered = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
        spec = json.loads(Path(args[-1]).read_text())
        seen.append((spec["cell"]["seed"], registered["seeds"], registered["plan"]["planned"]))
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(sweep.subprocess, "run", fake_cell)
    calls: list[tuple[int, ...]] = []

    def planner(out: Path, registered: BenchConfig) -> int:
        calls.append(registered.seeds)
        return 4

    sweep.run_sweep(cfg, planner=planner)
    pilot = [s for s in seen if s[0] in (0, 1)]
    after = [s for s in seen if s[0] in (2, 3)]
    assert calls == [(0, 1)] and pilot and after
    assert all(planned is None for _, _, planned in pilot[: len(pilot) // 2])
    assert all(seeds == [0, 1, 2, 3] and planned == 4 for _, seeds, planned in after)
    assert seen.index(after[0]) > max(seen.index(p) for p in pilot)
    resumed = registered_config(plan_cfg(tmp_path, methods=("cass", "supervised"), archs=("cnn",),
                                         **{"plan.pilot": 2, "seeds": (0, 1)}), write=False)
    assert resumed.seeds == (0, 1, 2, 3) and resumed.plan.planned == 4  # a rerun keeps the plan
    assert sweep.pilot_stage(resumed, (0, 1), None) is resumed


def test_the_plan_states_its_inputs(tmp_path: Path) -> None:
    plan = seed_plan(_claims(sd=4.0, rng=3), plan_cfg(tmp_path))
    lines = plan_lines(plan, plan.planned)
    assert "pilot of 3 seeds (0, 1, 2)" in lines[0] and f"asks for {plan.planned} seeds" in lines[0]
    assert len(lines) == 1 + len(plan.rows)
    pending = dataclasses.replace(plan, rows=(dataclasses.replace(plan.rows[0], sd=float("nan"), n=0, needed=None),
                                              *plan.rows[1:]))
    lines = plan_lines(pending, None)
    assert lines[0].startswith("The pilot is under way") and "pilot of 3 seeds" in lines[1]
    assert lines[2].endswith("no spread yet (not measured), counted as needing the cap, 12") and "nan" not in lines[2]


def test_the_planned_design_keeps_the_family_wise_error_at_alpha() -> None:
    """Under the null (CASS equal to both comparators in every row), an internal pilot of 3 seeds that sets n from
    the spreads, then the best-other rows' exact tests at Holm's level over the family, reject no more often than
    alpha (within three Monte-Carlo standard errors); and the plan spends fewer seeds than a fixed 12."""
    rng = np.random.default_rng(0)
    alpha, rows, pilot, cap, target, reps = 0.05, 6, 3, 12, 5.0, 300
    rejections, spent = 0, []
    for _ in range(reps):
        sd = rng.uniform(0.5, 4.0, size=rows)
        shared = rng.normal(size=(rows, cap, 1))
        draws = sd[:, None, None] * (0.5 ** 0.5) * (shared + rng.normal(size=(rows, cap, 2)))  # vs dino, vs byol
        spreads = [float(draws[r, :pilot].std(axis=0, ddof=1).max()) for r in range(rows)]
        n = planned_seeds(spreads, pilot, target, alpha, rows, 0.8, cap)
        spent.append(n)
        p = [max(sign_flip_pvalue(draws[r, :n, k]) for k in range(2)) for r in range(rows)]
        rejections += min(p) < alpha / rows  # Holm's first step decides whether any row is called
    rate = rejections / reps
    assert rate <= alpha + 3 * (alpha * (1 - alpha) / reps) ** 0.5
    assert np.mean(spent) < cap and min(spent) >= pilot


def test_the_report_states_the_plan(tmp_path: Path) -> None:
    from cass_bench.report.present.planning import plan_section

    out = tmp_path / "out"
    frame = sweep_frame(seeds=4, fractions=(0.1,), datasets=("embedded",), rng=4)
    out.mkdir()
    (out / "records.jsonl").write_text(frame.to_json(orient="records", lines=True) + "\n")
    assert plan_section(out) is None  # no config.yaml: no plan
    (out / "config.yaml").write_text(yaml.safe_dump({"methods": ["cass", "dino", "byol", "supervised"],
                                                     "seeds": [0, 1, 2, 3], "plan": {"pilot": 3, "planned": 4}}))
    section = plan_section(out)
    assert section is not None and "pilot of 3 seeds (0, 1, 2)" in section.lines[0]
    assert "(registered: 4)" in section.lines[0] or "asks for 4 seeds" in section.lines[0]


def test_a_dry_run_shows_the_pilot_and_what_the_plan_may_cost(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.cli import main

    out = tmp_path / "out"
    assert main(["run", "--config", "smoke", "--methods", "cass", "--seeds", "4", "--set", "plan.pilot=3",
                 "--set", "plan.cap=5", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert [f"seed={s}" in text for s in (4, 5, 6, 7)] == [True, True, True, False], "the pilot's seeds, no more"
    line = next(line for line in text.splitlines() if line.startswith("Seeds:"))
    assert "pilot of 3 (4, 5, 6" in line and "between 3 and 5 seeds" in line and "up to 2 more" in line
    assert "unknown until one has run here" in line and not out.exists()


def test_the_cost_of_a_seed_counts_whole_seeds_only() -> None:
    from cass_bench.report.present.planning import spent_line

    def record(seed: int, method: str) -> dict:
        return {"seed": seed, "method": method, "encoders": "cnn", "eval": "finetune", "torch_threads": 1,
                "eval_time_s": 60.0 * (seed + 1)}

    whole = [record(s, m) for s in (0, 1) for m in ("cass", "dino")]
    line = spent_line(pd.DataFrame(whole))
    assert line == "Spent: 6 thread-minutes over 2 seeds (3.0 a seed); a fixed 12 seeds would cost about 36."
    running = spent_line(pd.DataFrame([*whole, record(2, "cass")]))
    assert running == ("Spent: 9 thread-minutes over 3 seeds, 1 of them short of the fullest seed's 2 records (3.0 a "
                       "seed); a fixed 12 seeds would cost about 36.")
    assert spent_line(pd.DataFrame([{"seed": 0, "method": "cass", "encoders": "cnn"}])) is None
