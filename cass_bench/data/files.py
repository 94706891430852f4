"""Checks on the files a dataset points at: folders and CSVs exist, every image file exists and opens."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
from PIL import Image, UnidentifiedImageError

from cass_bench.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def resolve(value: str, base: Path) -> Path:
    """``value`` with ``~`` expanded, relative to ``base`` unless absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def require_dir(path: Path, key: str) -> None:
    """Raises UserError if the folder named by dataset key ``key`` does not exist."""
    if not path.is_dir():
        raise UserError(f"image folder '{path}' (dataset key '{key}') not found; create it or fix '{key}'")


def read_csv(path: Path, key: str) -> pd.DataFrame:
    """Reads a CSV with every column as text; raises UserError if it is missing, unreadable or has no rows."""
    if not path.is_file():
        raise UserError(f"CSV file '{path}' (dataset key '{key}') not found; fix the path in '{key}'")
    try:
        frame = pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError:
        raise UserError(f"CSV file '{path}' is empty; add a header row and one row per image") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"CSV file '{path}' cannot be parsed ({first}); fix it to comma-separated text") from None
    if frame.empty:
        raise UserError(f"CSV file '{path}' has no rows (empty dataset); add one row per image")
    return frame


def check_images(paths: Sequence[Path], where: str) -> None:
    """Checks that every image file exists and opens as an image, cheaply (header and PIL ``verify``).

    Truncated JPEGs pass ``verify`` and are caught only when decoded; PNGs are checked against their checksums.

    Args:
        paths: the image files.
        where: what listed them (a CSV or a folder), for the message.

    Raises:
        UserError: naming the first missing or unreadable file and how many there are.
    """
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} image file(s) listed in {where} are missing, e.g. '{missing[0]}'; "
            "fix image_dir / image_suffix or remove those rows"
        )
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(
                f"image file '{path}' (from {where}) is corrupt or not an image ({type(exc).__name__}); "
                "replace or remove it"
            ) from None
