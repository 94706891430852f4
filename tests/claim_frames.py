"""Simulated sweeps for the claim checks: small record frames with a known truth, no training.

F1 (points) of a fine-tuned record = 60 + gain[method][arch] - loss[method] * log2(main batch / batch)
+ shared noise (one draw per dataset, arch, fraction, setting and seed, common to every method) + independent noise of
sd / sqrt(2) per record, so the paired CASS - comparator difference per seed has standard deviation ``sd``.
``f1_seed_code`` is the same value with its own noise, offset by ``code_gain`` for CASS.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np
import pandas as pd

from cass_bench.config.claim_row import BEST
from cass_bench.report.claims.decide import check_claims
from cass_bench.report.claims.family import Family, record_rows
from cass_bench.report.load import RANK_HISTORY, normalise

METHODS = ("cass", "dino", "byol")
ARCH_PAIR = ("cnn", "vit")
TIMES = {("cass", "cnn+vit"): 10.0, ("dino", "cnn"): 20.0, ("dino", "vit"): 30.0, ("byol", "cnn"): 18.0,
         ("byol", "vit"): 27.0}
FLOPS = {("cass", "cnn+vit"): 1e9, ("dino", "cnn"): 2e9, ("dino", "vit"): 3e9, ("byol", "cnn"): 2e9,
         ("byol", "vit"): 3e9}
MAIN_BATCH, MAIN_EPOCHS = 16, 6


def sweep_frame(*, gain: float | dict[str, float] = 5.0, seeds: int = 10, sd: float = 4.0,
                fractions: Iterable[float] = (0.01, 0.1, 1.0), datasets: Iterable[str] = ("d1",),
                batch_sizes: Iterable[int] = (MAIN_BATCH,), epochs: Iterable[int] = (MAIN_EPOCHS,),
                offsets: dict[str, float] | None = None, loss: dict[str, float] | None = None,
                code_gain: float | None = None, at_chance: Iterable[str] = (),
                collapsed: Iterable[tuple[str, str]] = (), times: dict[tuple[str, str], float] | None = None,
                time_sd: float = 0.02, shared_sd: float = 3.0, dataset_gain: dict[str, float] | None = None,
                start: float | None = None, rng: np.random.Generator | int = 0) -> pd.DataFrame:
    """A records frame of one simulated sweep.

    Args:
        gain: CASS's true F1 gain over every comparator (points), or one per arch.
        seeds: seeds 0 .. seeds - 1.
        sd: standard deviation of the paired per-seed difference.
        offsets: extra true F1 per method (e.g. a stronger DINO).
        loss: F1 points a method loses per halving of the batch size and of the epochs below the main level.
        code_gain: CASS's true gain on ``f1_seed_code`` (default: ``gain``).
        at_chance: methods whose records are all below chance.
        collapsed: (method, arch) encoders that collapsed in every run; every other encoder has its collapse measured.
        times: time per pretraining epoch of each run (method, encoders); each run varies by ``time_sd`` (relative).
        dataset_gain: extra true gain of CASS per dataset (points).
        start: when set, the start's own records (``supervised``, no pretraining) at the main setting's cells, with a
            true F1 of 60 + ``start``: every method's true change from its start is its offset minus ``start``.
    """
    rng = np.random.default_rng(rng)
    gains = gain if isinstance(gain, dict) else {arch: gain for arch in ARCH_PAIR}
    offsets, loss, times = offsets or {}, loss or {}, times or TIMES
    grid = list(itertools.product(list(datasets), list(batch_sizes), list(epochs), range(seeds), ARCH_PAIR,
                                  list(fractions)))
    keys = pd.DataFrame(grid, columns=["dataset", "batch_size", "pretrain_epochs", "seed", "arch", "label_fraction"])
    size = len(keys)
    df = pd.concat([keys] * len(METHODS), ignore_index=True)
    method = np.repeat(METHODS, size)
    arch = df["arch"].to_numpy()
    is_cass = method == "cass"
    halvings = (np.log2(MAIN_BATCH / df["batch_size"]).clip(lower=0)
                + np.log2(MAIN_EPOCHS / df["pretrain_epochs"]).clip(lower=0)).to_numpy()
    truth = (60 + np.array([offsets.get(m, 0.0) for m in METHODS]).repeat(size)
             - np.array([loss.get(m, 0.0) for m in METHODS]).repeat(size) * halvings
             + is_cass * np.vectorize(gains.get)(arch)
             + is_cass * df["dataset"].map(dataset_gain or {}).fillna(0.0).to_numpy())
    shared = np.tile(rng.normal(0, shared_sd, size), len(METHODS))
    f1 = truth + shared + rng.normal(0, sd / np.sqrt(2), 3 * size)
    code_shift = is_cass * (code_gain - np.vectorize(gains.get)(arch)) if code_gain is not None else 0.0
    code = truth + code_shift + shared + rng.normal(0, sd / np.sqrt(2), 3 * size)
    encoders = np.where(is_cass, "cnn+vit", arch)
    collapsed_set = set(collapsed)
    flags = np.array([(m, a) in collapsed_set for m, a in zip(method, arch)])
    run = pd.MultiIndex.from_arrays([df["dataset"], df["batch_size"], df["pretrain_epochs"], df["seed"], method,
                                     encoders])
    codes, uniques = pd.factorize(run)
    run_times = np.array([times[(m, e)] for *_, m, e in uniques]) * (1 + rng.normal(0, time_sd, len(uniques)))
    df = df.assign(method=method, encoders=encoders, f1_macro=f1 / 100, f1_seed_code=code / 100, collapsed=flags,
                   above_chance=~np.isin(method, list(at_chance)), pretrain_epoch_time_s=run_times[codes],
                   flops_per_image=[FLOPS[(m, e)] for m, e in zip(method, encoders)], eval="finetune", status="ok",
                   device="CPU (test)", init="random", config_hash="h", batch_size=df["batch_size"].astype(float),
                   pretrain_epochs=df["pretrain_epochs"].astype(float), record_id=[f"r{i}" for i in range(3 * size)],
                   **{RANK_HISTORY: [[8.0, 1.0] if c else [8.0, 6.0] for c in flags]})
    if start is None:
        return df
    main = df[(df["method"] == "cass") & (df["batch_size"] == MAIN_BATCH) & (df["pretrain_epochs"] == MAIN_EPOCHS)]
    own = truth[main.index] - 60 - offsets.get("cass", 0.0)  # CASS's gain: the start does not have it
    noise = rng.normal(0, sd / np.sqrt(2), len(main))
    reference = main.assign(method="supervised", encoders=main["arch"], batch_size=np.nan, pretrain_epochs=0.0,
                            f1_macro=(100 * main["f1_macro"] - own + start + noise) / 100,
                            f1_seed_code=(100 * main["f1_seed_code"] - own + start + noise) / 100, collapsed=None,
                            pretrain_epoch_time_s=np.nan, flops_per_image=np.nan, above_chance=True,
                            record_id=[f"s{i}" for i in range(len(main))], **{RANK_HISTORY: None})
    return pd.concat([df, reference], ignore_index=True)


def each_family(records: pd.DataFrame, batch: int = MAIN_BATCH, epochs: int = MAIN_EPOCHS) -> Family:
    """A family of every row against one comparator ((a) per comparator, (d), (e)): the detail rows as a family."""
    rows = [r for r in record_rows(records, float(batch), float(epochs)) if r.claim != "s" and r.comparator != BEST]
    return Family(tuple(rows), "every row against one comparator (a test)")


def claims_of(frame: pd.DataFrame, batch: int = MAIN_BATCH, epochs: int = MAIN_EPOCHS, each: bool = False,
              **kwargs: object) -> pd.DataFrame:
    """The claim rows of a simulated sweep, indexed by key (the function the report uses); ``each``: the family is
    every row against one comparator (:func:`each_family`) instead of the default."""
    records = normalise(frame)
    if each:
        kwargs["family"] = each_family(records, batch, epochs)
    return check_claims(records, float(batch), float(epochs), None, **kwargs).set_index("key")
