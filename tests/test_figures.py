"""A pretraining run's figures, typed from the callbacks to the cache and the record."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cass_bench.engine.checkpoints import CheckpointCache
from cass_bench.engine.figures import RunFigures
from cass_bench.records.schema import Pretraining, field_names


def _figures() -> RunFigures:
    return RunFigures(pretrain_epoch_time_s=2.5, pretrain_params=1000, embedding_std=0.2, embedding_dim=64,
                      feature_std_history={"cnn": [0.5, 0.4], "vit": [0.3, 0.2]},
                      centred_rank_history={"cnn": [30.0, 20.0], "vit": [9.0, 1.2]})


def test_each_encoder_gets_the_runs_costs_and_its_own_histories_and_flags() -> None:
    cnn, vit = _figures().for_encoder("cnn"), _figures().for_encoder("vit")
    assert cnn.pretrain_epoch_time_s == vit.pretrain_epoch_time_s == 2.5 and cnn.pretrain_params == 1000
    assert cnn.centred_rank_history == [30.0, 20.0] and cnn.centred_rank == 20.0 and cnn.collapsed is False
    assert vit.feature_std == 0.2 and vit.centred_rank == 1.2 and vit.collapsed is True
    assert cnn.embedding_collapsed is False


def test_every_record_figure_but_the_derived_ones_comes_from_the_run() -> None:
    derived = {"feature_std", "centred_rank", "collapsed", "embedding_collapsed"}
    assert set(field_names(Pretraining)) - derived == set(_figures().to_dict())


def test_figures_round_trip_through_the_cache_and_another_shape_is_moved_aside(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache, states = CheckpointCache(tmp_path), {"cnn": {"w": torch.ones(2)}}
    cache.save("k", {"cell": 1}, states, _figures().to_dict())
    loaded = cache.load("k", {"cell": 1}, RunFigures.from_dict)
    assert loaded is not None and loaded[1] == _figures()
    cache.save("k", {"cell": 1}, states, {**_figures().to_dict(), "renamed_figure": 1.0})
    assert cache.load("k", {"cell": 1}, RunFigures.from_dict) is None
    assert "holds measures of another version" in capsys.readouterr().err
    assert (tmp_path / "k.bad").exists() and not cache.path("k").exists()
