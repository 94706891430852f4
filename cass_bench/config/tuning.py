"""The ``tune`` section: one tuning budget for every pretraining method, and the values tuning chose."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from cass_bench.config.recipe import MethodRecipe
from cass_bench.errors import UserError

R = TypeVar("R", bound=MethodRecipe)

AT = "@"
"""Joins a method and a dataset in a per-dataset ``chosen`` key."""
TuneEval = Literal["knn", "linear"]
"""The selection evaluations (frozen-feature macro-F1)."""


@dataclass(frozen=True)
class TuneConfig:
    """One tuning budget for every pretraining method, spent on validation images before any measured seed runs.

    Each pretraining method with a search space (its recipe's ``SEARCH``) gets the same number of trials; a trial
    pretrains with one point of the space on the training images less a validation part (stratified, seeded by the
    tuning seed; never a test image) and scores the frozen encoder by ``eval`` at ``label_fraction`` of the
    remaining training labels on the validation part. Per method, the point with the best mean macro-F1 over its
    encoders, datasets and tuning seeds is chosen and written into the results folder's ``config.yaml``
    (``chosen``) before the first measured cell (:mod:`cass_bench.run.tune`). The shared fine-tuning recipe is
    never tuned.

    Attributes:
        trials: trials per method (0: no tuning; every method runs its reference recipe).
        seeds: tuning seeds, disjoint from the measured ``seeds``.
        eval: the selection evaluation: ``knn`` or ``linear`` (macro-F1 of frozen features).
        label_fraction: the labelled share of the tuning training images the selection evaluation uses.
        val_share: the share of the training images held out as the validation part.
        per_dataset: choose each method's values per dataset, from that dataset's trials alone (``chosen`` is then
            keyed ``method@dataset``), instead of one choice over every dataset.
        chosen: the values tuning chose, per method (written by the tuning stage; applied on top of each recipe).
    """

    trials: int = 0
    seeds: tuple[int, ...] = (1000,)
    eval: TuneEval = "knn"
    label_fraction: float = 0.1
    val_share: float = 0.2
    per_dataset: bool = False
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.chosen, dict) or not all(isinstance(v, dict) for v in self.chosen.values()):
            raise UserError(f"tune.chosen must map each method to its chosen values (method: {{field: value}}), got "
                            f"{self.chosen!r}; leave it out to tune (the tuning stage writes it)")
        if self.trials < 0:
            raise UserError(f"tune.trials must be >= 0 (0: no tuning), got {self.trials}")
        if not 0 < self.label_fraction <= 1:
            raise UserError(f"tune.label_fraction must lie in (0, 1], got {self.label_fraction}")
        if not 0 < self.val_share < 1:
            raise UserError(f"tune.val_share must lie in (0, 1), got {self.val_share}")
        if self.trials and not self.seeds:
            raise UserError("tune.seeds is empty; give at least one tuning seed (disjoint from seeds)")

    def tunes(self, recipe: MethodRecipe | None) -> bool:
        """Whether tuning changes ``recipe`` (there are trials and the recipe has a search space)."""
        return self.trials > 0 and recipe is not None and bool(recipe.SEARCH)

    def trial_points(self, recipe: MethodRecipe) -> list[dict[str, Any]]:
        """The ``trials`` points a method's tuning tries: its search grid, the reference's own values first.

        Raises:
            UserError: the grid has fewer points than ``trials`` (every method must get the same number).
        """
        grid = recipe.search_grid()
        if len(grid) < self.trials:
            raise UserError(f"tune.trials is {self.trials}, but the search space of {type(recipe).__name__} has "
                            f"{len(grid)} points; lower tune.trials to {len(grid)} so every method gets as many")
        return grid[: self.trials]

    @staticmethod
    def key(method: str, dataset: str | None) -> str:
        """The ``chosen`` key of a method's values: ``method``, or ``method@dataset`` when chosen per dataset."""
        return method if dataset is None else f"{method}{AT}{dataset}"

    def for_dataset(self, dataset: str) -> TuneConfig:
        """This section as a cell of ``dataset`` reads it: with per-dataset choices, the dataset's own values keyed by
        method (unchanged otherwise, or once resolved)."""
        if not self.per_dataset or not any(AT in k for k in self.chosen):
            return self
        own = {k.partition(AT)[0]: v for k, v in self.chosen.items() if k.partition(AT)[2] == dataset}
        return dataclasses.replace(self, chosen=own)

    def apply(self, method: str, recipe: R) -> R:
        """``recipe`` with the values tuning chose for ``method`` (unchanged before tuning or without it)."""
        if not self.tunes(recipe) or method not in self.chosen:
            return recipe
        return dataclasses.replace(recipe, **self.chosen[method])
