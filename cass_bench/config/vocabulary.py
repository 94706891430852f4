"""The harness's words as types, each defined once: the evaluations of an encoder and the statuses of a record.

Both are ``str`` enums, so a member is written to YAML, JSON and the records as its plain value (``"knn"``,
``"ok"``) and compares equal to it; turning a word into a member with :meth:`Eval.parse` refuses an unknown one.
"""

from __future__ import annotations

from enum import Enum

from cass_bench.errors import UserError


class Eval(str, Enum):
    """An evaluation of a pretrained encoder at a label fraction (a record's ``eval``, a YAML ``eval.evals`` entry)."""

    FINETUNE = "finetune"
    LINEAR = "linear"
    KNN = "knn"

    def __str__(self) -> str:
        return self.value

    @property
    def title(self) -> str:
        """The evaluation in words, as the report's section titles name it."""
        return EVAL_TITLES[self]

    @classmethod
    def parse(cls, name: str) -> Eval:
        """The evaluation named ``name``.

        Raises:
            UserError: ``name`` is no evaluation; the message lists the known ones.
        """
        try:
            return cls(name)
        except ValueError:
            raise UserError(f"unknown evaluation '{name}'; choose from {', '.join(e.value for e in cls)}") from None


EVAL_TITLES = {Eval.FINETUNE: "fine-tuned end to end", Eval.LINEAR: "linear probe on frozen features",
               Eval.KNN: "kNN on frozen features"}
EVALS: tuple[str, ...] = tuple(e.value for e in Eval)
"""Every evaluation's name, in the order the report shows them (fine-tuning, the main one, first)."""
MAIN_EVAL = Eval.FINETUNE
"""The evaluation of the main F1 table, the claims and the terminal's cell lines."""


class Status(str, Enum):
    """How a record ended: finished, or the failure that stopped it (the sweep records it and goes on).

    ``interrupted`` (the cell's process was ended by a signal, not by what it computed) is not done: a plain rerun
    runs it again; the other failures stay until ``--retry-failed``.
    """

    OK = "ok"
    OOM = "oom"
    DIVERGED = "diverged"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value
