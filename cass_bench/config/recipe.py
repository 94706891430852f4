"""The base of every method's recipe (its config section), defined apart so method modules and the config share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cass_bench.config.schema import BenchConfig


class MethodRecipe:
    """Base of every method's recipe: a frozen dataclass in the method's own module, registered with the method.

    Its fields are the method's config section (and part of its records' identity); subclasses add the checks no
    type can express.
    """

    def validate(self) -> None:
        """Raises UserError, naming the key and the fix, when a value of the recipe is impossible."""

    def check(self, cfg: BenchConfig) -> None:
        """Raises UserError when the recipe cannot run with ``cfg``'s shared settings (checked for chosen methods)."""
