"""The fair-comparison protocol: recipes with their sources, one tuning budget for every method on validation images,
the chosen values registered before any measured cell, starts that follow the seed, and the folder's registration."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from cass_bench.config.files import resolve_config
from cass_bench.config.load import load_config
from cass_bench.config.recipe import SearchAxis, provenance
from cass_bench.config.recipes import ByolConfig, CassConfig, DinoConfig
from cass_bench.config.registered import registered_config
from cass_bench.config.schema import BenchConfig
from cass_bench.data.bundle import ImageSet, SubsetImages
from cass_bench.data.sources import load_dataset
from cass_bench.engine.trainer import Optimization
from cass_bench.errors import UserError
from cass_bench.config.checks import validate
from cass_bench.records.identity import Cell, config_hash, pretrain_key, record_id, start_key
from cass_bench.report.present.tuning import load_trials, tuning_section
from cass_bench.run import sweep, tune
from cass_bench.records.store import TUNING
from cass_bench.run.tuning import choose, trial_id, trials, tuned_methods

ROOT = Path(__file__).resolve().parent.parent


def cfg_of(tmp_path: Path, **overrides: Any) -> BenchConfig:
    """The smoke config with every method, three trials each, into ``tmp_path``."""
    base = {"methods": ("cass", "dino", "byol", "supervised"), "out": str(tmp_path / "out"), "tune.trials": 3}
    return load_config(resolve_config("smoke"), {**base, **overrides})


def _root_indices(images: ImageSet) -> set[int]:
    """The indices of a set's images in the array every split of the dataset was cut from."""
    source, index = images.images, np.arange(len(images))
    while isinstance(source, SubsetImages):
        index, source = source.indices[index], source.source
    return set(index.tolist())


def test_validation_part_holds_no_test_image() -> None:
    bundle = load_dataset("embedded", 16, "~", 0)
    for seed in (1000, 1001):
        part = tune.validation_bundle(bundle, 0.2, seed)
        val, train, test = _root_indices(part.val), _root_indices(part.train), _root_indices(bundle.test)
        assert val and not val & test and not train & test and not val & train
        assert val | train == _root_indices(bundle.train)
        assert _root_indices(part.test) == val  # the trial scores the validation part, never the test split
        assert len(val) == pytest.approx(0.2 * len(bundle.train), abs=10)
        held = np.bincount(part.val.labels, minlength=10) / len(part.val)
        assert np.all(np.abs(held - np.bincount(bundle.train.labels, minlength=10) / len(bundle.train)) < 0.03)


def test_every_method_gets_the_same_number_of_trials(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path)
    found = trials(cfg)
    per_run: dict[tuple[str, tuple[str, ...]], int] = {}
    for t in found:
        per_run[(t.method, t.archs)] = per_run.get((t.method, t.archs), 0) + 1
    assert set(per_run.values()) == {3} and len(per_run) == 5  # CASS (joint), DINO and BYOL per encoder
    assert tuned_methods(cfg) == ["cass", "dino", "byol"]
    assert all(t.values == {"lr": cfg.recipes[t.method].lr} for t in found if t.point == 0)
    assert len({trial_id(cfg, t) for t in found}) == len(found)


def test_three_trials_try_the_reference_and_its_neighbours_and_five_widen_the_grid(tmp_path: Path) -> None:
    for method, recipe in {"cass": CassConfig(), "dino": DinoConfig(), "byol": ByolConfig()}.items():
        ref = recipe.lr
        tried = {n: sorted({t.values["lr"] / ref for t in trials(cfg_of(tmp_path, **{"tune.trials": n}))
                            if t.method == method}) for n in (3, 5)}
        assert tried[3] == pytest.approx([1 / 3, 1, 3], rel=1e-5)
        assert tried[5] == pytest.approx([1 / 9, 1 / 3, 1, 3, 9], rel=1e-5)
    assert SearchAxis("lr", values=(0.0, 0.1)).grid(0.05) == (0.0, 0.1)
    grid = type("Two", (DinoConfig,), {"SEARCH": (SearchAxis("lr", factors=(0.5, 1.0, 2.0)),
                                                  SearchAxis("warmup_fraction", values=(0.0, 0.1, 0.2)))})
    points = grid(warmup_fraction=0.1).search_grid()
    assert points[0] == {"lr": 0.0005, "warmup_fraction": 0.1}  # the reference itself, then one step away
    assert all(p["lr"] == 0.0005 or p["warmup_fraction"] == 0.1 for p in points[1:5])


def test_a_method_without_a_search_space_is_refused_when_tuning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ByolConfig, "SEARCH", ())
    with pytest.raises(UserError, match="byol' declares no search space"):
        cfg_of(tmp_path)
    monkeypatch.setattr(ByolConfig, "SEARCH", (SearchAxis("lr", factors=(1.0, 2.0)),))
    with pytest.raises(UserError, match="has 2 points; lower tune.trials to 2"):
        cfg_of(tmp_path)


def test_tuning_seeds_must_differ_from_measured_seeds(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="tune.seeds and seeds share"):
        cfg_of(tmp_path, seeds=(0, 1000))


def test_search_space_or_budget_changes_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = cfg_of(tmp_path)
    base = {m: config_hash(cfg, m) for m in cfg.methods}
    fewer = cfg_of(tmp_path, **{"tune.trials": 2})
    assert all(config_hash(fewer, m) != base[m] for m in ("cass", "dino", "byol"))
    assert config_hash(fewer, "supervised") == base["supervised"]  # nothing of it is tuned
    other_seed = cfg_of(tmp_path, **{"tune.seeds": (2000,)})
    assert config_hash(other_seed, "dino") != base["dino"]
    monkeypatch.setattr(DinoConfig, "SEARCH", (SearchAxis("lr", factors=(1.0, 0.1, 10.0)),))
    assert config_hash(cfg, "dino") != base["dino"] and config_hash(cfg, "cass") == base["cass"]
    untuned = cfg_of(tmp_path, **{"tune.trials": 0})
    assert config_hash(untuned, "dino") != base["dino"]


def test_chosen_values_enter_the_recipe_and_the_identity(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path)
    tuned = dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, chosen={"dino": {"lr": 1.5e-3}}))
    assert tuned.recipe(DinoConfig).lr == 1.5e-3 and cfg.recipe(DinoConfig).lr == 5e-4
    assert tuned.recipes["dino"].lr == 5e-4  # the registered recipe keeps the reference value
    cell = Cell("embedded", "dino", ("cnn",), 16, 1, 0)
    assert pretrain_key(cell, tuned) != pretrain_key(cell, cfg)
    assert config_hash(tuned, "cass") == config_hash(cfg, "cass")
    with pytest.raises(UserError, match="tune.chosen.dino.momentum"):
        cfg_of(tmp_path, **{"tune.chosen": {"dino": {"momentum_start": 0.9}}})


def _record(cfg: BenchConfig, trial: Any, scores: dict[str, float | None], status: str = "ok") -> dict[str, Any]:
    return {"record_id": trial_id(cfg, trial), "dataset": trial.dataset, "method": trial.method,
            "encoders": "+".join(trial.archs), "point": trial.point, "values": trial.values, "seed": trial.seed,
            "scores": scores, "status": status}


def test_choose_takes_the_best_mean_and_never_a_failed_trial(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path)
    wanted = {"cass": 2, "dino": 1, "byol": 0}
    records = []
    for t in trials(cfg):
        score = 0.9 if t.point == wanted[t.method] else 0.5
        status = "ok"
        if t.method == "byol" and t.point == 1:
            score, status = 0.99, "diverged"  # the best score, but the trial failed
        records.append(_record(cfg, t, {a: score for a in t.archs}, status))
    chosen = choose(cfg, records)
    points = {m: cfg.tune.trial_points(cfg.recipes[m]) for m in wanted}
    assert chosen == {m: points[m][k] for m, k in wanted.items()}
    ties = [_record(cfg, t, {a: 0.5 for a in t.archs}) for t in trials(cfg)]
    assert choose(cfg, ties) == {m: points[m][0] for m in wanted}  # a tie keeps the reference's values
    with pytest.raises(ValueError, match="no record yet"):
        choose(cfg, records[1:])


def test_per_dataset_tuning_chooses_from_each_datasets_trials_and_each_cell_reads_its_own(tmp_path: Path) -> None:
    datasets = ("embedded", "embedded-multilabel")
    cfg = cfg_of(tmp_path, methods=("cass", "dino"), datasets=datasets, **{"tune.per_dataset": True})
    best = {("cass", "embedded"): 2, ("cass", "embedded-multilabel"): 0, ("dino", "embedded"): 1,
            ("dino", "embedded-multilabel"): 2}
    records = [_record(cfg, t, {a: 0.9 if t.point == best[t.method, t.dataset] else 0.4 for a in t.archs})
               for t in trials(cfg)]
    chosen = choose(cfg, records)
    points = {m: cfg.tune.trial_points(cfg.recipes[m]) for m in ("cass", "dino")}
    assert chosen == {f"{m}@{d}": points[m][k] for (m, d), k in best.items()}
    pooled = choose(dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, per_dataset=False)), records)
    assert set(pooled) == {"cass", "dino"}, "the same trials, one choice over both datasets"
    tuned = dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, chosen=chosen))
    validate(tuned)
    lrs = {d: tuned.for_dataset(d).recipe(DinoConfig).lr for d in datasets}
    assert lrs == {d: points["dino"][best["dino", d]]["lr"] for d in datasets}
    cells = [Cell(d, "dino", ("cnn",), 16, 1, 0) for d in datasets]
    assert pretrain_key(cells[0], tuned) == pretrain_key(cells[0], tuned.for_dataset("embedded"))
    ids = {d: record_id(c, "cnn", 0.1, "knn", tuned) for d, c in zip(datasets, cells)}
    other = {**chosen, "dino@embedded-multilabel": points["dino"][0]}
    moved = dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, chosen=other))
    assert record_id(cells[1], "cnn", 0.1, "knn", moved) != ids["embedded-multilabel"]
    with pytest.raises(UserError, match="method and one of the run's datasets"):
        validate(dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, chosen={"dino": points["dino"][0]})))


def test_chosen_values_are_registered_before_the_first_measured_cell(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = registered_config(cfg_of(tmp_path, methods=("cass", "dino", "supervised"), archs=("cnn",)))
    ran: list[Any] = []

    def fake_trial(run_cfg: BenchConfig, trial: Any) -> dict[str, Any]:
        ran.append(trial)
        return _record(run_cfg, trial, {a: 0.1 * (trial.point + 1) for a in trial.archs})

    seen: list[dict[str, Any]] = []

    def fake_cell(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        registered = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
        spec = json.loads(Path(args[-1]).read_text())
        seen.append({"registered": registered["tune"]["chosen"], "spec": spec["config"]["tune"]["chosen"]})
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(tune, "run_trial", fake_trial)
    monkeypatch.setattr(sweep.subprocess, "run", fake_cell)
    sweep.run_sweep(cfg)
    assert len(ran) == 2 * 3  # cass (both encoders in one run... here one encoder) and dino-cnn
    best = {"cass": {"lr": 3e-3}, "dino": {"lr": 1.5e-3}}
    assert seen and all(s["registered"] == best and s["spec"] == best for s in seen)
    assert len((tmp_path / "out" / TUNING).read_text().splitlines()) == 6
    again = sweep.tuning_stage(load_config(tmp_path / "out" / "config.yaml"))
    assert again.tune.chosen == best and len(ran) == 6  # resumed from the folder: nothing tuned twice


def test_a_run_that_differs_from_the_folder_registration_is_refused(tmp_path: Path) -> None:
    cfg = registered_config(cfg_of(tmp_path))
    path = tmp_path / "out" / "config.yaml"
    before = path.read_text()
    with pytest.raises(UserError, match="another 'methods'"):
        registered_config(cfg_of(tmp_path, methods=("cass",)))
    with pytest.raises(UserError, match="another 'claims.family'"):
        registered_config(cfg_of(tmp_path, **{"claims.family": ("a@10%:cnn:dino",)}))
    assert path.read_text() == before
    same = registered_config(cfg_of(tmp_path, num_workers=2))  # a runtime setting: allowed, not written back
    assert path.read_text() == before and same.num_workers == 2
    grown = registered_config(cfg_of(tmp_path, seeds=(0, 1, 2)))
    assert load_config(path).seeds == (0, 1, 2) and grown.seeds == (0, 1, 2)
    assert cfg.seeds == (0,)


def test_the_folder_chosen_values_are_adopted(tmp_path: Path) -> None:
    registered_config(cfg_of(tmp_path))
    path = tmp_path / "out" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["tune"]["chosen"] = {"dino": {"lr": 1e-3}}
    path.write_text(yaml.safe_dump(data))
    run = registered_config(cfg_of(tmp_path), write=False)
    assert run.tune.chosen == {"dino": {"lr": 1e-3}} and run.recipe(DinoConfig).lr == 1e-3


def test_starts_follow_the_seed(tmp_path: Path) -> None:
    one = cfg_of(tmp_path, init="fractal")
    assert start_key(one, 0) == start_key(one, 5) == start_key(one)
    each = cfg_of(tmp_path, init="fractal", **{"source.starts": 0})
    assert len({start_key(each, s) for s in range(4)}) == 4 and start_key(each, 0) == start_key(one)
    three = cfg_of(tmp_path, init="fractal", **{"source.starts": 3})
    assert start_key(three, 1) == start_key(three, 4) != start_key(three, 2)
    assert config_hash(each, "cass") != config_hash(one, "cass")
    assert config_hash(each, "cass") == config_hash(cfg_of(tmp_path, init="fractal", seeds=(3,),
                                                           **{"source.starts": 0}), "cass")


def test_the_untuned_folder_keeps_its_identity() -> None:
    """The committed untuned default's reference rows keep their ids under the code that added tuning and starts."""
    folder = ROOT / "results" / "untuned"
    cfg = load_config(folder / "config.yaml")
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    supervised = {r["config_hash"] for r in records if r["method"] == "supervised"}
    assert supervised == {config_hash(cfg, "supervised")}
    assert {r["start_key"] for r in records if r.get("start_key")} == {start_key(cfg)}


def test_warm_up_then_cosine() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=1.0)
    schedule = Optimization.warmup_cosine(opt, 100, 0.1).scheduler
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.5) and max(lrs) == pytest.approx(1.0)
    assert np.argmax(lrs) == 9 and lrs[-1] < 0.01 and all(np.diff(lrs[9:]) <= 1e-12)
    plain = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert type(Optimization.warmup_cosine(plain, 100, 0.0).scheduler).__name__ == "CosineAnnealingLR"


def test_dino_follows_its_reference_optimisation() -> None:
    from cass_bench.config.schema import BackboneConfig
    from cass_bench.methods.baselines.dino import DECAYED, DINO

    cfg = DinoConfig(hidden_dim=32, bottleneck_dim=8, output_dim=16, n_local_views=0)
    model = DINO(cfg, BackboneConfig(vit_patch_size=4), "cnn", 16, seed=0, batch_size=16)
    optimization = model.build_optimizer(total_steps=50)
    groups = {g["name"]: g for g in optimization.optimizer.param_groups}
    assert isinstance(optimization.optimizer, torch.optim.AdamW)
    assert groups[DECAYED]["weight_decay"] == 0.04 and groups["no_weight_decay"]["weight_decay"] == 0.0
    assert groups[DECAYED]["initial_lr"] == pytest.approx(5e-4 * 16 / 256)
    norms = {id(p) for m in model.student.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert norms and norms <= {id(p) for p in groups["no_weight_decay"]["params"]}
    assert groups[DECAYED]["lr"] == pytest.approx(5e-4 * 16 / 256 / 5)  # warm-up over 5 of the 50 steps


def test_every_builtin_recipe_value_names_its_source() -> None:
    for recipe in (CassConfig, DinoConfig, ByolConfig):
        fields = provenance(recipe)
        assert fields and all(source is not None and source.where for _, _, source in fields), recipe.__name__


def test_the_report_shows_the_tuning(tmp_path: Path) -> None:
    cfg = registered_config(cfg_of(tmp_path))
    best = {"cass": {"lr": 3e-3}, "dino": {"lr": 5e-4}, "byol": {"lr": 0.02}}
    data = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    data["tune"]["chosen"] = best
    (tmp_path / "out" / "config.yaml").write_text(yaml.safe_dump(data))
    lines = []
    for t in trials(cfg):
        score = {"cass": 0.6 + 0.1 * t.point, "dino": 0.7 - 0.2 * t.point, "byol": 0.5}[t.method]
        lines.append(json.dumps(_record(cfg, t, {a: score for a in t.archs},
                                        "error" if (t.method, t.point) == ("byol", 2) else "ok")))
    (tmp_path / "out" / TUNING).write_text("\n".join(lines) + "\n")
    assert len(load_trials(tmp_path / "out")) == 3 * 2 + 3 * 2 * 2
    section = tuning_section(tmp_path / "out")
    assert section is not None and section.table is not None
    cells = section.table.cells
    chosen = cells[cells["chosen"] == "yes"]
    assert sorted(zip(chosen["method"], chosen["encoder"], chosen["values"])) == [
        ("BYOL", "cnn", "lr 0.02"), ("BYOL", "vit", "lr 0.02"), ("CASS", "cnn", "lr 0.003"), ("CASS", "vit", "lr 0.003"),
        ("DINO", "cnn", "lr 0.0005"), ("DINO", "vit", "lr 0.0005")]
    spread = [line for line in section.lines if line.startswith("- DINO-cnn")]
    assert spread == ["- DINO-cnn: best 0.700, worst 0.300, spread 40.0 points"]
    assert any(line.startswith("- BYOL-cnn") and "1 trial(s) failed" in line for line in section.lines)
    edge = [line for line in section.lines if line.startswith("Chosen at an edge")]
    assert edge and edge[0].endswith(": CASS lr 0.003 (highest of 3); BYOL lr 0.02 (lowest of 3)."), section.lines


def test_dry_run_shows_the_tuning_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.cli import main

    out = tmp_path / "dry"
    code = main(["run", "--config", "smoke", "--methods", "cass,dino,supervised", "--out", str(out), "--dry-run",
                 "--set", "tune.trials=3"])
    text = capsys.readouterr().out
    assert code == 0 and not out.exists()
    assert "Tuning: 9 trials (3 per method, encoder group, dataset and tuning seed), 0 done, 9 pending" in text
    assert "every measured cell waits for it" in text
    code = main(["run", "--config", "default", "--seeds", "0", "--out", str(out), "--dry-run"])
    text = capsys.readouterr().out
    assert code == 0 and "Tuning: none runs here (the config carries its chosen values: cass lr=" in text, \
        "configs/default.yaml carries results/default's choice, so no trial runs"


def test_the_report_counts_the_starts_behind_the_seeds() -> None:
    import pandas as pd

    from cass_bench.report.present.start import start_lines

    many = pd.DataFrame({"init": "fractal", "seed": [0, 1, 2, 3], "start_key": ["a", "b", "c", "a"], "arch": "cnn"})
    assert "3 distinct starts behind 4 seeds: a, b, c" in start_lines(many)[0]
    one = many.assign(start_key="a")
    assert "one start behind all 4 seeds" in start_lines(one)[0]


def test_runtime_settings_may_differ_from_the_registration(tmp_path: Path) -> None:
    registered_config(cfg_of(tmp_path))
    path = tmp_path / "out" / "config.yaml"
    before = path.read_text()
    run = registered_config(cfg_of(tmp_path, pretrain_alone="true", cpu_peak_gflops=50.0, launcher="local"))
    assert run.pretrain_alone == "true" and path.read_text() == before


@pytest.mark.slow
def test_a_real_trial_pretrains_on_the_training_part_and_scores_the_validation_part(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, methods=("dino", "supervised"), archs=("cnn",), pretrain_batches=2)
    trial = trials(cfg)[0]
    record = tune.run_trial(cfg, trial)
    assert record["status"] == "ok", record["error"]
    assert record["record_id"] == trial_id(cfg, trial) and 0 <= record["scores"]["cnn"] <= 1
    bundle = load_dataset("embedded", cfg.image_size, "~", cfg.split_seed)
    assert record["n_val"] == len(tune.validation_bundle(bundle, 0.2, trial.seed).val)
    assert record["n_train"] + record["n_val"] == len(bundle.train)
    assert record["pretrain_time_s"] > 0 and record["centred_rank"]["cnn"] > 0


def test_the_index_states_tuning_cost_and_sets_two_folders_verdicts_side_by_side(tmp_path: Path) -> None:
    from cass_bench.report.index import tuning_cost_lines, verdict_lines

    folder = tmp_path / "results" / "fair"
    folder.mkdir(parents=True)
    (folder / TUNING).write_text("".join(json.dumps({"record_id": str(k), "wall_time_s": 120.0}) + "\n"
                                         for k in range(3)))
    assert tuning_cost_lines(folder, None) == ["Tuning: 3 trials, 6 thread-minutes; no measured seed to set it "
                                               "against yet."]
    (folder / "records.jsonl").write_text("")
    untuned = ROOT / "results" / "untuned"
    lines = verdict_lines(folder, untuned, ROOT / "results")
    assert lines[0] == "## fair/ against untuned/" and "`fair/`" in lines[1]
    rows = [line for line in lines[2].splitlines() if line.startswith("| embedded/a@")]
    assert len(rows) == 6 and all("| not measured " in row for row in rows)
    assert sum("supported" in row for row in rows) == 1  # the untuned default's one best-other verdict (1% ViT)


def test_two_folders_cost_rows_line_up_when_only_one_was_timed_at_several_thread_counts() -> None:
    from cass_bench.report.index import verdict_lines

    table = verdict_lines(ROOT / "results" / "default", ROOT / "results" / "untuned", ROOT / "results")[2]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in table.splitlines()
            if line.startswith("| embedded/b:") or line.startswith("| embedded/c:")}
    assert set(rows) == {f"embedded/{k}:t{n}" for k in ("b:bs16:ep6:dino", "b:bs16:ep6:byol", "c:bs16:ep6:dino")
                         for n in (1, 2)}
    assert all(status != "not measured" for key, (ours, theirs) in rows.items() if key.endswith(":t1")
               for status in (ours, theirs))
    assert all(rows[key][0] == "not measured" for key in rows if key.endswith(":t2"))


def test_chosen_values_that_are_no_mapping_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="tune.chosen must map each method to its chosen values"):
        cfg_of(tmp_path, **{"tune.chosen": "{}"})
