"""The base of every method's recipe (its config section), where each value came from, and what tuning may change.

A recipe field may carry its provenance (:func:`sourced`: the reference file or paper section, the value there, and
how it was scaled to this harness), and a recipe class declares its tuning search space next to its values
(:attr:`MethodRecipe.SEARCH`: :class:`SearchAxis` entries). Both are read without torch: the docs' provenance table
and the tuning stage are generated from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from cass_bench.config.schema import BenchConfig

SOURCE = "source"
"""The field-metadata key of a :class:`Source`."""


@dataclass(frozen=True)
class Source:
    """Where a recipe value comes from.

    Attributes:
        where: the reference (repository file, paper section or docs page).
        there: the value as the reference sets it (None: the same as ours).
        scaled: how the reference's value was carried over to this harness (None: taken as is).
    """

    where: str
    there: str | None = None
    scaled: str | None = None


def sourced(default: Any, where: str, there: str | None = None, scaled: str | None = None) -> Any:
    """A recipe field whose value comes from a reference (see :class:`Source`)."""
    return field(default=default, metadata={SOURCE: Source(where, there, scaled)})


@dataclass(frozen=True)
class SearchAxis:
    """One tuned setting of a recipe: the values a tuning trial may give it.

    Attributes:
        name: the recipe field.
        factors: multiples of the recipe's value (a log grid around the reference value), or
        values: the values themselves (e.g. ``(0.0, 0.1)`` for warm-up off / on).
    """

    name: str
    factors: tuple[float, ...] = ()
    values: tuple[Any, ...] = ()

    def grid(self, reference: Any) -> tuple[Any, ...]:
        """The axis's values around ``reference`` (the recipe's own value of the field)."""
        if self.values:
            return self.values
        return tuple(float(f"{reference * f:.6g}") for f in self.factors)


class MethodRecipe:
    """Base of every method's recipe: a frozen dataclass in the method's own module, registered with the method.

    Its fields are the method's config section (and part of its records' identity); subclasses add the checks no
    type can express, and declare the settings the tuning stage may change in :attr:`SEARCH`.

    Attributes:
        SEARCH: the tuning search space, one :class:`SearchAxis` per tuned field; the trials are the grid of their
            values (the first axis varies slowest).
    """

    SEARCH: ClassVar[tuple[SearchAxis, ...]] = ()

    def validate(self) -> None:
        """Raises UserError, naming the key and the fix, when a value of the recipe is impossible."""

    def check(self, cfg: BenchConfig) -> None:
        """Raises UserError when the recipe cannot run with ``cfg``'s shared settings (checked for chosen methods)."""

    def search_grid(self) -> list[dict[str, Any]]:
        """Every point of :attr:`SEARCH` around this recipe's values, as field -> value, nearest the reference's own
        values first (in steps along each axis's grid, summed over the axes; ties in grid order), so the first
        ``tune.trials`` points are the narrowest grid of that many around the reference."""
        points: list[tuple[dict[str, Any], int]] = [({}, 0)]
        for axis in self.SEARCH:
            own, values = getattr(self, axis.name), axis.grid(getattr(self, axis.name))
            centre = values.index(own) if own in values else None
            points = [({**p, axis.name: v}, steps + (abs(k - centre) if centre is not None else 0))
                      for p, steps in points for k, v in enumerate(values)]
        return [p for p, _ in sorted(points, key=lambda item: item[1])]


def provenance(recipe: type) -> list[tuple[str, Any, Source | None]]:
    """Each field of a recipe class: (name, default value, its :class:`Source` or None)."""
    return [(f.name, f.default if f.default is not dataclasses.MISSING else None, f.metadata.get(SOURCE))
            for f in dataclasses.fields(recipe)]
