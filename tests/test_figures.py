"""A pretraining run's figures, typed from the callbacks to the cache and the record: the record's own parts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cass_bench.engine.checkpoints import CheckpointCache
from cass_bench.engine.figures import RunFigures
from cass_bench.records.schema import (PretrainModule, PretrainTiming, Pretraining, Spent, field_names,
                                       flat_values)


def _figures() -> RunFigures:
    return RunFigures(timing=PretrainTiming(pretrain_epoch_time_s=2.5, pretrain_threads=1, pretrain_other_processes=0),
                      module=PretrainModule(pretrain_params=1000, embedding_std=0.2, embedding_dim=64),
                      feature_std_history={"cnn": [0.5, 0.4], "vit": [0.3, 0.2]},
                      centred_rank_history={"cnn": [30.0, 20.0], "vit": [9.0, 1.2]})


def test_each_encoder_gets_the_runs_costs_and_its_own_histories_and_flags() -> None:
    cnn, vit = _figures().for_encoder("cnn"), _figures().for_encoder("vit")
    assert cnn.timing.pretrain_epoch_time_s == vit.timing.pretrain_epoch_time_s == 2.5
    assert cnn.module.pretrain_params == 1000
    assert cnn.features.centred_rank_history == [30.0, 20.0] and cnn.features.centred_rank == 20.0
    assert cnn.features.collapsed is False
    assert vit.features.feature_std == 0.2 and vit.features.centred_rank == 1.2 and vit.features.collapsed is True
    assert cnn.features.embedding_collapsed is False


def test_the_record_is_written_flat_with_every_part_in_place() -> None:
    flat = flat_values(_figures().for_encoder("vit"))
    assert list(flat) == list(field_names(Pretraining))
    assert flat["pretrain_epoch_time_s"] == 2.5 and flat["centred_rank"] == 1.2 and flat["peak_rss_mb"] is None
    assert "cell_process" in field_names(Spent)


def test_the_cache_stores_the_record_names_it_stored_before(tmp_path: Path) -> None:
    """A checkpoint written before a figure existed stays valid: its names are the record's, new figures read None."""
    stored_before = {  # the names a format-2 checkpoint of the committed results holds
        "pretrain_epoch_time_s", "pretrain_first_epoch_time_s", "pretrain_time_s", "images_per_s", "data_wait_share",
        "pretrain_cpu_share", "peak_gpu_mem_mb", "peak_gpu_reserved_mb", "peak_gpu_mem_mb_per_device",
        "peak_rss_mb", "flops_per_image", "mfu", "pretrain_params", "embedding_std", "embedding_std_history",
        "embedding_dim", "world_size", "effective_batch_size", "feature_std_history", "centred_rank_history"}
    assert stored_before <= set(_figures().to_dict())
    old = {name: value for name, value in _figures().to_dict().items() if name in stored_before}
    read = RunFigures.from_dict(old)
    assert read.timing.pretrain_epoch_time_s == 2.5 and read.timing.pretrain_other_processes is None
    assert read.flops.peak_flops is None and read.centred_rank_history == _figures().centred_rank_history


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
