"""The ``plan`` section: seeds planned from a pilot instead of listed (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

from cass_bench.errors import UserError


@dataclass(frozen=True)
class PlanConfig:
    """Seeds planned from an internal pilot, blind to the effect (Wittes & Brittain 1990).

    The sweep first runs the pilot's seeds (the first ``pilot`` of ``seeds``); from their records alone it takes, for
    each row of the paper's family, the spread of the per-seed paired differences of every comparison the row needs
    (never their mean), and the seeds a two-sided paired test at Holm's first level needs to detect ``target``
    points with ``power``; the largest, between ``pilot`` and ``cap``, is the plan. The planned seeds (``seeds``
    continued consecutively) and ``planned`` are written into the results folder's ``config.yaml`` before any
    post-pilot cell runs (:mod:`cass_bench.report.seedplan` computes it; the sweep runs the stages).

    Attributes:
        pilot: seeds of the pilot (0: no plan, ``seeds`` is the list; at least 2 otherwise).
        target: the smallest difference worth detecting, in macro-F1 points, for every row of the paper's family.
        power: the power the plan gives each row at that difference.
        cap: the most seeds the plan may ask for.
        planned: the seeds the plan chose (written by the sweep after the pilot; unset before).
    """

    pilot: int = 0
    target: float = 5.0
    power: float = 0.8
    cap: int = 12
    planned: int | None = None

    def __post_init__(self) -> None:
        if self.pilot < 0 or self.pilot == 1:
            raise UserError(f"plan.pilot must be 0 (no plan) or at least 2 seeds (a spread needs two), got "
                            f"{self.pilot}")
        if self.pilot and self.cap < self.pilot:
            raise UserError(f"plan.cap ({self.cap}) is below plan.pilot ({self.pilot}); give a cap of at least the "
                            "pilot's seeds")
        if not self.target > 0:
            raise UserError(f"plan.target must be a positive number of macro-F1 points, got {self.target}")
        if not 0 < self.power < 1:
            raise UserError(f"plan.power must lie in (0, 1), got {self.power}")
        if self.planned is not None and not (self.pilot <= self.planned <= self.cap):
            raise UserError(f"plan.planned ({self.planned}) lies outside [plan.pilot, plan.cap]; remove it (the "
                            "sweep writes it after the pilot)")

    def seeds(self, listed: tuple[int, ...], n: int) -> tuple[int, ...]:
        """The first ``n`` seeds: ``listed``, continued consecutively after its last when it is shorter."""
        seeds = list(listed[:n])
        while len(seeds) < n:
            seeds.append(max(seeds) + 1)
        return tuple(seeds)

    def pilot_seeds(self, listed: tuple[int, ...]) -> tuple[int, ...]:
        """The pilot's seeds (every listed seed without a plan)."""
        return self.seeds(listed, self.pilot) if self.pilot else tuple(listed)

    def current_seeds(self, listed: tuple[int, ...]) -> tuple[int, ...]:
        """The seeds a sweep runs now: the pilot's until the plan is written, then every listed seed (the sweep
        writes the planned list into ``seeds``)."""
        return tuple(listed) if self.planned is not None else self.pilot_seeds(listed)
