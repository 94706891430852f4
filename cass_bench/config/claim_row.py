"""The claim-row grammar, parsed in one place: ``[DATASET/]KIND@FRACTION:ARCH:COMPARATOR[:LEVEL]``.

- ``a@10%:cnn:best``: claim (a), CASS against the best other method (every comparator at once);
- ``a@10%:cnn:dino``: claim (a) against one comparator; ``cnn+vit``: the encoders' average within each seed;
- ``d@10%:vit:byol:8`` / ``e@10%:cnn:dino:3``: robustness to batch size 8 / to 3 pretraining epochs against the main
  level;
- ``s@10%:vit:dino``: a method's fine-tuned F1 minus its start's (the no-pretraining reference);
- ``across/...``: the equal-weight mean over datasets within each seed; without ``DATASET/`` a row stands for every
  dataset. Fractions are written ``10%`` or ``0.1``.

The method registry is read when a row is parsed, so a plug-in registered later is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from cass_bench.config import registry
from cass_bench.errors import UserError

BEST = "best"
"""The comparator of a row against the best other method."""
ACROSS = "across"
"""The dataset of a row that averages the datasets within each seed."""
ROW_KINDS = ("a", "d", "e", "s")
LEVELLED = ("d", "e")
"""The kinds compared at a sweep level (the row names the level)."""
_ROW = re.compile(r"^(?:(?P<dataset>[^/]+)/)?(?P<claim>[a-z])@(?P<fraction>\d*\.?\d+)(?P<percent>%?)"
                  r":(?P<arch>cnn\+vit|cnn|vit):(?P<comparator>[\w-]+)(?::(?P<level>\d+))?$")
EXAMPLES = "a@10%:cnn:best, a@10%:cnn:dino, d@10%:cnn:dino:8, e@10%:vit:byol:3 or s@10%:vit:dino"


def fraction_text(fraction: float) -> str:
    """A label fraction as a percentage, e.g. 0.01 -> ``1%``."""
    return f"{fraction * 100:g}%"


@dataclass(frozen=True)
class ClaimRow:
    """One claim row.

    Attributes:
        claim: the kind's letter (:data:`ROW_KINDS`).
        dataset: the records' dataset name, :data:`ACROSS`, or None (every dataset: :meth:`for_datasets`).
        fraction: label fraction.
        arch: ``cnn``, ``vit`` or ``cnn+vit`` (the average of the two).
        comparator: the method compared with (``s``: the method compared with its start; :data:`BEST`: every
            comparator).
        level: (d) the batch size, (e) the epoch count compared with the main level; None otherwise.
    """

    claim: str
    dataset: str | None
    fraction: float
    arch: str
    comparator: str
    level: float | None = None

    @property
    def key(self) -> str:
        """The row's name in the report and in ``claims.family``."""
        level = "" if self.level is None else f":{self.level:g}"
        where = "" if self.dataset is None else f"{self.dataset}/"
        return f"{where}{self.claim}@{fraction_text(self.fraction)}:{self.arch}:{self.comparator}{level}"

    def for_datasets(self, datasets: list[str]) -> list[ClaimRow]:
        """The row itself when it names a dataset, else one per dataset."""
        return [self] if self.dataset is not None else [replace(self, dataset=d) for d in datasets]


def parse_claim_row(text: str) -> ClaimRow:
    """Parses one ``claims.family`` entry.

    Raises:
        UserError: the entry is malformed, its fraction is not in (0, 1], a level is missing or superfluous, or it
            names a method that is not a comparator of its kind.
    """
    match = _ROW.match(text)
    level_ok = match is not None and (match["claim"] in LEVELLED) == (match["level"] is not None)
    fraction = float(match["fraction"]) / (100 if match["percent"] else 1) if match else 0.0
    if match is None or match["claim"] not in ROW_KINDS or not level_ok or not 0 < fraction <= 1:
        raise UserError(f"claims.family row '{text}' is malformed; write {EXAMPLES} (optionally DATASET/ or "
                        f"{ACROSS}/ in front)")
    comparator, claim = match["comparator"], match["claim"]
    allowed = (registry.pretraining_methods() if claim == "s" else
               [BEST, *registry.comparators()] if claim == "a" else registry.comparators())
    if comparator not in allowed:
        raise UserError(f"claims.family row '{text}' names comparator '{comparator}'; choose from "
                        f"{', '.join(allowed)}")
    return ClaimRow(claim, match["dataset"], round(fraction, 10), match["arch"], comparator,
                    None if match["level"] is None else float(match["level"]))
