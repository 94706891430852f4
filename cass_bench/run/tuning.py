"""The tuning stage's plan, without torch: its trials, where they stand, and the values it chooses.

One budget for every pretraining method (:class:`cass_bench.config.schema.TuneConfig`): each method's first
``tune.trials`` points of its recipe's search space, for every dataset, run group (both encoders for a joint method,
one encoder per run otherwise) and tuning seed, at the main setting (batch size 16 when swept, else the first; the
most pretraining epochs). A trial's record holds the validation macro-F1 of each encoder it trained. Per method, the
point with the best mean score over its encoders, datasets and tuning seeds wins; a failed trial scores nothing and
cannot win. Running the trials is :mod:`cass_bench.run.tune`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cass_bench.config.registry import get_method
from cass_bench.config.schema import BenchConfig, stable_hash, to_dict
from cass_bench.config.vocabulary import Status
from cass_bench.records.identity import shared_settings

TRIAL_SCHEMA = 1
MAIN_BATCH_SIZE = 16
"""The paper's batch size: tuning runs at it when the sweep has it."""


@dataclass(frozen=True)
class Trial:
    """One tuning trial: a method's recipe at one point of its search space, pretrained once and scored.

    Attributes:
        dataset: dataset name.
        method: the method tuned.
        archs: the encoders the run trains.
        point: index of the point in the method's trials (0: the reference's own values).
        values: the recipe values of the point.
        seed: the tuning seed (also the seed of the validation split and of the start behind it).
        batch_size, pretrain_epochs: the main setting the trial pretrains at.
    """

    dataset: str
    method: str
    archs: tuple[str, ...]
    point: int
    values: dict[str, Any]
    seed: int
    batch_size: int
    pretrain_epochs: int

    def describe(self) -> str:
        """A short label for the terminal."""
        values = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.values.items())
        return f"{self.dataset} {self.method}/{'+'.join(self.archs)} trial {self.point + 1} ({values}) seed={self.seed}"


def main_setting(cfg: BenchConfig) -> tuple[int, int]:
    """The batch size and pretraining epochs tuning runs at (see the module docstring)."""
    batch = MAIN_BATCH_SIZE if MAIN_BATCH_SIZE in cfg.batch_sizes else cfg.batch_sizes[0]
    return batch, max(cfg.pretrain_epochs)


def tuned_methods(cfg: BenchConfig) -> list[str]:
    """The configured methods tuning changes (those with a search space, when there are trials)."""
    return [m for m in cfg.methods if not get_method(m).is_reference and cfg.tune.tunes(cfg.recipes.get(m))]


def trials(cfg: BenchConfig) -> list[Trial]:
    """Every trial of the tuning stage, in a stable order (empty without tuning)."""
    batch, epochs = main_setting(cfg)
    found = []
    for method in tuned_methods(cfg):
        spec, points = get_method(method), cfg.tune.trial_points(cfg.recipes[method])
        groups = [tuple(cfg.archs)] if spec.joint else [(a,) for a in cfg.archs]
        for dataset in cfg.datasets:
            for seed in cfg.tune.seeds:
                for archs in groups:
                    found.extend(Trial(dataset, method, archs, k, point, seed, batch, epochs)
                                 for k, point in enumerate(points))
    return found


def untuned(cfg: BenchConfig) -> BenchConfig:
    """``cfg`` without tuning: what every trial starts from before its point's values are applied."""
    return dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, trials=0, chosen={}))


def trial_config(cfg: BenchConfig, trial: Trial) -> BenchConfig:
    """The config a trial pretrains with: tuning off, its method's recipe at the trial's point."""
    base = untuned(cfg)
    return base.with_recipe(dataclasses.replace(base.recipes[trial.method], **trial.values))


def trial_id(cfg: BenchConfig, trial: Trial) -> str:
    """The id of a trial's record: the trial, its recipe, every shared pretraining setting and the selection."""
    tune = cfg.tune
    return stable_hash({"schema": TRIAL_SCHEMA, "trial": dataclasses.asdict(trial),
                        "recipe": to_dict(trial_config(cfg, trial).recipes[trial.method]),
                        "shared": shared_settings(cfg), "eval": tune.eval, "fraction": tune.label_fraction,
                        "val_share": tune.val_share, "eval_settings": to_dict(cfg.eval)}, length=16)


def pending(cfg: BenchConfig, records: list[dict[str, Any]]) -> list[Trial]:
    """The trials without a record."""
    done = {r.get("record_id") for r in records}
    return [t for t in trials(cfg) if trial_id(cfg, t) not in done]


def trial_score(record: dict[str, Any]) -> float:
    """A trial's selection score: the mean validation macro-F1 of its encoders (-inf when it failed)."""
    scores = [s for s in (record.get("scores") or {}).values() if isinstance(s, (int, float)) and math.isfinite(s)]
    if record.get("status") != Status.OK or not scores:
        return -math.inf
    return sum(scores) / len(scores)


def choose(cfg: BenchConfig, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tuned method (and per dataset with ``tune.per_dataset``), the values of the point with the best mean score
    over its trials' records (ties: the earlier point, so the reference's values win a tie); every trial must have
    its record.

    Raises:
        ValueError: a trial has no record yet.
    """
    by_id = {r.get("record_id"): r for r in records}
    groups = [(m, d) for m in tuned_methods(cfg) for d in (cfg.datasets if cfg.tune.per_dataset else (None,))]
    chosen: dict[str, dict[str, Any]] = {}
    for method, dataset in groups:
        points = cfg.tune.trial_points(cfg.recipes[method])
        totals = [0.0] * len(points)
        for trial in (t for t in trials(cfg) if t.method == method and dataset in (None, t.dataset)):
            record = by_id.get(trial_id(cfg, trial))
            if record is None:
                raise ValueError(f"tuning trial {trial.describe()} has no record yet")
            totals[trial.point] += trial_score(record)
        best = max(range(len(points)), key=lambda k: (totals[k], -k))
        chosen[cfg.tune.key(method, dataset)] = dict(points[best])
    return chosen


def with_chosen(cfg: BenchConfig, chosen: dict[str, dict[str, Any]]) -> BenchConfig:
    """``cfg`` with the values tuning chose."""
    return dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, chosen=chosen))


def chosen_text(chosen: dict[str, dict[str, Any]]) -> str:
    """Chosen values in words: ``cass lr=0.000333333; dino lr=0.0015``."""
    return "; ".join(f"{m} " + ", ".join(f"{k}={v:g}" for k, v in values.items()) for m, values in chosen.items())


def needs_tuning(cfg: BenchConfig) -> bool:
    """Whether the measured cells must wait for tuning: trials are configured and nothing is chosen yet."""
    return bool(tuned_methods(cfg)) and not cfg.tune.chosen


def plan_text(cfg: BenchConfig, done: list[dict[str, Any]], measured: list[dict[str, Any]]) -> str | None:
    """The tuning stage in a dry run: its trials, how many are done, and the time left (from the trials already
    recorded, else from finished pretraining runs of the same kind scaled to the tuning split; None without
    tuning)."""
    every = trials(cfg)
    if not every:
        return None
    left = pending(cfg, done)
    if cfg.tune.chosen and left:
        return (f"Tuning: none runs here (the config carries its chosen values: {chosen_text(cfg.tune.chosen)}; "
                f"delete tune.chosen to run its {len(every)} trials first).")
    if cfg.tune.chosen:
        state = f"chosen values registered: {chosen_text(cfg.tune.chosen)}"
    else:
        state = "nothing chosen yet: every measured cell waits for it (their ids above are provisional)"
    seconds, unknown = 0.0, 0
    for trial in left:
        estimate = _trial_seconds(cfg, trial, done, measured)
        if estimate is None:
            unknown += 1
        else:
            seconds += estimate
    time_left = f"about {seconds / 60:.0f} min" + (f" plus {unknown} trial(s) of unknown duration" if unknown else "")
    if unknown and not seconds:
        time_left = "unknown (no trial or pretraining run of the same kind in this folder yet)"
    return (f"Tuning: {len(every)} trials ({cfg.tune.trials} per method, encoder group, dataset and tuning seed), "
            f"{len(every) - len(left)} done, {len(left)} pending; time left: {time_left if left else 'nothing'}; "
            f"{state}.")


def _trial_seconds(cfg: BenchConfig, trial: Trial, done: list[dict[str, Any]],
                   measured: list[dict[str, Any]]) -> float | None:
    """A trial's expected wall time: the mean of recorded trials of its method and encoders, else the pretraining
    time of a finished measured run of its kind times the tuning split's share of the training images."""
    same = [r["wall_time_s"] for r in done if r.get("method") == trial.method
            and r.get("encoders") == "+".join(trial.archs) and isinstance(r.get("wall_time_s"), (int, float))]
    if same:
        return sum(same) / len(same)
    runs = [r["pretrain_time_s"] for r in measured if r.get("method") == trial.method
            and r.get("encoders") == "+".join(trial.archs) and r.get("batch_size") == trial.batch_size
            and r.get("pretrain_epochs") == trial.pretrain_epochs and isinstance(r.get("pretrain_time_s"), (int, float))]
    return (1 - cfg.tune.val_share) * sum(runs) / len(runs) if runs else None
