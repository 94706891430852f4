"""What one pretraining run measured, typed: from the training callbacks to the checkpoint cache and the record.

A run's costs are measured once for all its encoders; its feature histories (spread and centred effective rank of
the pooled features, before and after every epoch) once per encoder. :meth:`RunFigures.for_encoder` is the one
mapping to a record's :class:`~cass_bench.records.schema.Pretraining` part: a figure added here and not there (or
renamed in one place) fails there, and a cached run whose figures are of another shape is not read
(:data:`cass_bench.engine.checkpoints.FORMAT`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cass_bench.engine.collapse import collapsed, embedding_collapsed
from cass_bench.records.schema import Pretraining


@dataclass(frozen=True)
class RunFigures:
    """The figures of one pretraining run (field meanings: the record's :class:`Pretraining` fields of the same name).

    Attributes:
        feature_std_history: per encoder, the spread of its pooled features before and after every epoch.
        centred_rank_history: per encoder, the centred effective rank of its pooled features likewise.
    """

    pretrain_epoch_time_s: float | None = None
    pretrain_first_epoch_time_s: float | None = None
    pretrain_time_s: float | None = None
    images_per_s: float | None = None
    data_wait_share: float | None = None
    pretrain_cpu_share: float | None = None
    peak_gpu_mem_mb: float | None = None
    peak_gpu_reserved_mb: float | None = None
    peak_gpu_mem_mb_per_device: list[float] | None = None
    peak_rss_mb: float | None = None
    flops_per_image: float | None = None
    mfu: float | None = None
    pretrain_params: int | None = None
    embedding_std: float | None = None
    embedding_std_history: list[float] | None = None
    embedding_dim: int | None = None
    world_size: int | None = None
    effective_batch_size: int | None = None
    feature_std_history: dict[str, list[float]] = field(default_factory=dict)
    centred_rank_history: dict[str, list[float]] = field(default_factory=dict)

    def for_encoder(self, arch: str) -> Pretraining:
        """The run's figures as the record of encoder ``arch`` holds them: its own histories and collapse flags."""
        per_encoder = {"feature_std_history", "centred_rank_history"}
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in per_encoder}
        stds, ranks = self.feature_std_history.get(arch), self.centred_rank_history.get(arch)
        return Pretraining(**shared, feature_std_history=stds, centred_rank_history=ranks,
                           feature_std=stds[-1] if stds else None, centred_rank=ranks[-1] if ranks else None,
                           collapsed=collapsed(ranks),
                           embedding_collapsed=embedding_collapsed(self.embedding_std, self.embedding_dim))

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain data (what the checkpoint cache stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFigures:
        """The figures a cache stored.

        Raises:
            ValueError: ``data`` does not hold exactly these figures (a cache of another version).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise ValueError(f"figures {sorted(set(data) ^ names)} differ from this version's")
        return cls(**data)
