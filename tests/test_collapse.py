"""The collapse measure: the centred rank of L2-normalised features, its floor, and the rules built on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cass_bench.config.schema import BackboneConfig
from cass_bench.data.sources import load_dataset
from cass_bench.engine.checkpoints import FORMAT, CheckpointCache
from cass_bench.engine.collapse import (COLLAPSE_RANK, SPREAD_FLOOR, centred_rank, collapsed, effective_rank,
                                        embedding_collapsed, feature_spread)
from cass_bench.models.encoders import build_encoder
from cass_bench.run.cell import probe_batch


def test_constant_features_with_a_tiny_residue_are_collapsed() -> None:
    rng = np.random.default_rng(0)
    constant = np.tile(rng.normal(size=(1, 64)), (256, 1))
    noisy = constant + 1e-6 * rng.normal(size=constant.shape)
    assert centred_rank(constant) == 0.0
    assert centred_rank(noisy) < COLLAPSE_RANK
    assert collapsed([30.0, centred_rank(noisy)]) is True
    # the same residue without the floor reads as nearly full rank: the floor is what keeps it out
    assert centred_rank(noisy, floor=0.0) > 30


def test_a_shared_mean_with_rich_variation_is_not_collapse() -> None:
    rng = np.random.default_rng(1)
    mean = 500.0 * np.ones((1, 128))
    varied = mean + rng.normal(size=(256, 20)) @ rng.normal(size=(20, 128))
    assert effective_rank(varied) < COLLAPSE_RANK  # the uncentred rank reads the shared mean as collapse
    assert centred_rank(varied) > 15
    assert collapsed([centred_rank(varied)]) is False


def test_the_floor_keeps_only_directions_with_spread() -> None:
    rng = np.random.default_rng(2)
    three = rng.normal(size=(256, 3)) @ rng.normal(size=(3, 32))
    residue = three + 1e-7 * rng.normal(size=three.shape)
    assert 2.0 < centred_rank(residue) <= 3.0 + 1e-6
    assert SPREAD_FLOOR == pytest.approx(1e-3)


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_random_encoders_on_real_images_are_not_collapsed(arch: str) -> None:
    images = probe_batch(load_dataset("embedded", 16, "~/.medmnist", 0), size=128)
    encoder = build_encoder(arch, BackboneConfig(vit_patch_size=4), 16, seed=0).eval()
    with torch.no_grad():
        features = encoder(images)
    rank = centred_rank(features)
    assert rank >= COLLAPSE_RANK
    assert rank > effective_rank(features)
    assert 0 < feature_spread(features) < 1


def test_rules_and_measures_take_tensors_and_say_when_nothing_was_measured() -> None:
    assert collapsed(None) is None and collapsed([]) is None
    assert collapsed([5.0, 1.9]) is True and collapsed([1.0, 2.0]) is False
    assert embedding_collapsed(None, 8) is None and embedding_collapsed(0.1, None) is None
    assert embedding_collapsed(1e-4, 64) is True and embedding_collapsed(0.1, 64) is False
    assert feature_spread(torch.ones(5, 8)) == 0.0
    assert centred_rank(torch.eye(4)) == pytest.approx(3.0, abs=1e-6)
    with pytest.raises(ValueError, match="features must be an"):
        centred_rank(np.ones(4))


def test_a_checkpoint_of_the_uncentred_format_is_moved_aside(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    payload = {"cell": "x"}
    cache.save("k", payload, {"cnn": {"w": torch.ones(2)}}, {"feature_rank_history": {"cnn": [1.1]}})
    saved = torch.load(cache.path("k"), weights_only=True)
    assert saved["format"] == FORMAT >= 2
    saved["format"] = 1
    cache.path("k").unlink()
    torch.save(saved, cache.path("k"))
    assert cache.load("k", payload) is None
    assert (tmp_path / "k.bad").is_file() and not cache.path("k").exists()
