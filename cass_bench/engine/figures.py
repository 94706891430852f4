"""What one pretraining run measured, typed: the record's own parts, from the training callbacks to the checkpoint
cache and the record.

Each measuring callback returns its part of the record's :class:`~cass_bench.records.schema.Pretraining`
(:class:`~cass_bench.engine.timing.EpochClock`: timing, :class:`~cass_bench.engine.memory.PeakMemory`: memory,
:class:`~cass_bench.engine.flops.StepFlops`: FLOPs); the module gives its own (:func:`module_figures`), and
:class:`~cass_bench.engine.feature_collapse.FeatureCollapse` one feature history per encoder. A run's costs are
measured once for all its encoders, its feature histories once per encoder; :meth:`RunFigures.for_encoder` is the
record of one encoder.

The checkpoint cache stores the figures flat under the record's field names (:meth:`RunFigures.to_dict`); a cache
written before a figure existed reads it as not measured, and one holding a name this version does not know is not
read (:meth:`RunFigures.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cass_bench.engine.collapse import collapsed, embedding_collapsed
from cass_bench.records.schema import (EncoderFeatures, Pretraining, PretrainFlops, PretrainMemory, PretrainModule,
                                       PretrainTiming, field_names)

HISTORIES = ("feature_std_history", "centred_rank_history")
"""The per-encoder figures the cache stores, each as ``{arch: history}``."""
STORED_PARTS = (PretrainTiming, PretrainMemory, PretrainFlops, PretrainModule)
"""The parts a run measures once for all its encoders, stored flat."""


def module_figures(module: Any, params: int, batch_size: int, world_size: int) -> PretrainModule:
    """The pretraining module's own figures: its size, placement and the spread of its outputs per epoch.

    Args:
        module: the trained :class:`~cass_bench.methods.contract.PretrainMethod`.
        params: its parameter count.
        batch_size: the per-device batch size.
        world_size: the run's processes.
    """
    history = list(module.embedding_std_history)
    return PretrainModule(pretrain_params=params, embedding_std=history[-1] if history else None,
                          embedding_std_history=history, embedding_dim=module.embedding_dim, world_size=world_size,
                          effective_batch_size=batch_size * world_size)


@dataclass(frozen=True)
class RunFigures:
    """The figures of one pretraining run: the parts its callbacks and module returned, and each encoder's feature
    histories.

    Attributes:
        feature_std_history: per encoder, the spread of its pooled features before and after every epoch.
        centred_rank_history: per encoder, the centred effective rank of its pooled features likewise.
    """

    timing: PretrainTiming = field(default_factory=PretrainTiming)
    memory: PretrainMemory = field(default_factory=PretrainMemory)
    flops: PretrainFlops = field(default_factory=PretrainFlops)
    module: PretrainModule = field(default_factory=PretrainModule)
    feature_std_history: dict[str, list[float]] = field(default_factory=dict)
    centred_rank_history: dict[str, list[float]] = field(default_factory=dict)

    def for_encoder(self, arch: str) -> Pretraining:
        """The run's figures as the record of encoder ``arch`` holds them: its own histories and collapse flags."""
        stds, ranks = self.feature_std_history.get(arch), self.centred_rank_history.get(arch)
        features = EncoderFeatures(
            feature_std_history=stds, centred_rank_history=ranks, feature_std=stds[-1] if stds else None,
            centred_rank=ranks[-1] if ranks else None, collapsed=collapsed(ranks),
            embedding_collapsed=embedding_collapsed(self.module.embedding_std, self.module.embedding_dim))
        return Pretraining(self.timing, self.memory, self.flops, self.module, features)

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain data under the record's field names (what the checkpoint cache stores)."""
        parts = (self.timing, self.memory, self.flops, self.module)
        return {**{k: v for part in parts for k, v in dataclasses.asdict(part).items()},
                **{name: getattr(self, name) for name in HISTORIES}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFigures:
        """The figures a cache stored; a figure added since it was written reads as None (not measured).

        Raises:
            ValueError: ``data`` holds a figure this version does not know (a cache of another version).
        """
        known = {name for part in STORED_PARTS for name in field_names(part)} | set(HISTORIES)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"figures {sorted(unknown)} are not this version's")
        parts = [part(**{name: data.get(name) for name in field_names(part)}) for part in STORED_PARTS]
        return cls(*parts, **{name: data.get(name) or {} for name in HISTORIES})
