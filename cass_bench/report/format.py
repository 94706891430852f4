"""How the report writes keys and numbers as text, and the order its rows follow (methods in registry order)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cass_bench.config.registry import method_names
from cass_bench.config.claim_row import fraction_text

MISSING = "—"
ENCODER_ORDER = ("cnn", "vit", "cnn+vit")
HEADERS = {"batch_size": "batch size", "pretrain_epochs": "epochs", "label_fraction": "labels",
           "record_id": "record", "embedding_std": "embedding std"}


def key_text(value: Any) -> str:
    """A key value as text: whole numbers without a decimal point, a dash when missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return str(value)


def stat_text(mean: float, std: float, n: int, fmt: str = ".3f") -> str:
    """``mean ± std (n=k)`` with n and std shown only when n > 1; a dash when there is no mean."""
    if pd.isna(mean):
        return MISSING
    if n > 1:
        return f"{mean:{fmt}} ± {std:{fmt}} (n={int(n)})"
    return f"{mean:{fmt}}"


def number_text(value: float, fmt: str) -> str:
    """A number in ``fmt``, a dash when missing."""
    return MISSING if pd.isna(value) else f"{value:{fmt}}"


def _rank(index: pd.Index) -> pd.Index:
    orders = {"method": tuple(method_names()), "arch": ENCODER_ORDER, "encoders": ENCODER_ORDER}
    order = orders.get(index.name)
    if order is None:
        return index
    return index.map(lambda v: f"{order.index(v) if v in order else len(order)}:{v}")


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in report order: methods as registered, encoders cnn, vit, cnn+vit, other keys ascending."""
    return frame.sort_index(key=_rank) if len(frame) else frame


def with_keys(cells: pd.DataFrame) -> pd.DataFrame:
    """The index levels of ``cells`` as leading text columns (with readable headers), then the cells."""
    keys = cells.index.to_frame(index=False)
    keys = keys.apply(lambda c: c.map(fraction_text if c.name == "label_fraction" else key_text))
    keys.columns = [HEADERS.get(c, c) for c in keys.columns]
    return pd.concat([keys, cells.reset_index(drop=True)], axis=1)
