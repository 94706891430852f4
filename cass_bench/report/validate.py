"""The report's rule for records it cannot trust: it refuses them, naming the record (exit status 2, nothing written).

Every number a record holds must be finite and within its range (scores, shares and p-values in [0, 1], every other
figure not negative); every word must be one the harness writes (a registered method, an encoder, a status, an
evaluation); a finished record must hold its macro-F1; and one setting, seed and configuration is one record (a
copy under another id would count as a second seed). A record that breaks the rule is never averaged in, shown or
silently dropped: the folder is refused until the record is fixed or moved aside. Torch-free.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cass_bench.config.registry import method_names
from cass_bench.config.schema import ARCHS
from cass_bench.config.vocabulary import EVALS, Status
from cass_bench.errors import UserError
from cass_bench.records.identity import SETTING_KEYS, setting_of
from cass_bench.records.schema import NUMERIC_FIELDS, OK

UNIT_FIELDS = ("f1_macro", "f1_micro", "f1_seed_code", "balanced_accuracy", "auroc", "accuracy", "chance_f1_majority",
               "chance_f1_random", "above_chance_p", "data_wait_share", "pretrain_cpu_share", "start_source_accuracy",
               "label_fraction")
"""Fields that are shares, scores or probabilities: in [0, 1] (up to float32 rounding)."""
ROUNDING = 1e-6
"""How far above 1 a score computed in float32 may lie."""
STATUSES = tuple(s.value for s in Status)
FIX = "fix the record or move it aside (to another file), then report again"


def check_records(records: list[dict[str, Any]], path: Path) -> None:
    """Refuses the first record the report cannot trust (see the module docstring).

    Args:
        records: the folder's records, as the store reads them.
        path: the records file, for the message.

    Raises:
        UserError: naming the record, the field and its value.
    """
    known = method_names()
    for record in records:
        problem = _word_problem(record, known) or _number_problem(record)
        if problem:
            raise UserError(f"{path}: record '{record['record_id']}' {problem}; {FIX}")
    _refuse_copies(records, path)


def _word_problem(record: dict[str, Any], known: list[str]) -> str | None:
    status, method, arch = record.get("status"), record.get("method"), record.get("arch")
    evaluation = record.get("eval")
    if status not in STATUSES:
        return f"has status {status!r}, which is none of {', '.join(STATUSES)}"
    if method not in known:
        return (f"is of method {method!r}, which is not registered (known: {', '.join(known)}; a plug-in's records "
                "are reported from Python after registering it)")
    if arch not in ARCHS:
        return f"is of encoder {arch!r}, which is none of {', '.join(ARCHS)}"
    if evaluation is not None and evaluation not in EVALS:
        return f"has evaluation {evaluation!r}, which is none of {', '.join(EVALS)}"
    if status == OK and record.get("f1_macro") is None:
        return "is finished (status ok) but holds no f1_macro"
    return None


def _number_problem(record: dict[str, Any]) -> str | None:
    for name in NUMERIC_FIELDS:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"has {name} {value!r}, which is not a number"
        if not math.isfinite(value):
            return f"has {name} {value}, which is not a finite number"
        if name in UNIT_FIELDS and not 0 <= value <= 1 + ROUNDING:
            return f"has {name} {value}, outside [0, 1]"
        if value < 0:
            return f"has {name} {value}, below 0"
    return None


def _refuse_copies(records: list[dict[str, Any]], path: Path) -> None:
    """Refuses two finished records of one setting, seed, device and ``config_hash`` under different ids."""
    first: dict[tuple[Any, ...], str] = {}
    for record in records:
        if record.get("status") != OK:
            continue
        key = (*setting_of(record), record.get("seed"), record.get("device"), record.get("config_hash"))
        other = first.setdefault(key, record["record_id"])
        if other != record["record_id"]:
            shown = ", ".join(f"{k} {v}" for k, v in zip(SETTING_KEYS, key) if v is not None)
            raise UserError(f"{path}: records '{other}' and '{record['record_id']}' are one setting ({shown}), seed "
                            f"{record.get('seed')} and configuration under two ids, so they would count as two "
                            "seeds; keep the one the run wrote and move the copy aside, then report again")
