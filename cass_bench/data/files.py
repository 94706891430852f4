"""Checks on the files a dataset points at: folders and CSVs exist, every image file exists, opens and can be
decoded faithfully; the content hash of each image (to find copies) comes out of the same read."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Sequence

import pandas as pd
from PIL import Image, UnidentifiedImageError

from cass_bench.data.decode import check_mode
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


def check_images(paths: Sequence[Path], where: str) -> list[str]:
    """Checks that every image file exists, decodes whole as an image of a supported mode, and hashes its content.

    Each file is decoded once (JPEGs at 1/8 scale, which still reads every byte), so a truncated file is caught
    here, named, before any work; an image too large for PIL's decompression-bomb limit is refused. High-bit-depth
    and float images are decoded at full precision to check their values.

    Args:
        paths: the image files.
        where: what listed them (a CSV or a folder), for the message.

    Returns:
        The SHA-256 of each file's bytes, in the order of ``paths``.

    Raises:
        UserError: naming the first missing, unreadable, truncated, oversized or unsupported file (and how many are
            missing).
    """
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} image file(s) listed in {where} are missing, e.g. '{missing[0]}'; "
            "fix image_dir / image_suffix or remove those rows"
        )
    digests = []
    for path in paths:
        data = path.read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
        _check_decodes(data, path, where)
    return digests


def _check_decodes(data: bytes, path: Path, where: str) -> None:
    """Raises UserError unless ``data`` decodes whole as an image of a supported mode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            check_mode(image, str(path))
        with Image.open(io.BytesIO(data)) as image:
            image.draft(image.mode, (1, 1))
            image.load()
    except Image.DecompressionBombError as exc:
        raise UserError(f"image file '{path}' (from {where}) is too large to decode safely ({str(exc).split(',')[0]}; "
                        "a decompression bomb?); resize or remove it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(
            f"image file '{path}' (from {where}) is corrupt or not an image ({type(exc).__name__}"
            f"{': ' + detail if detail else ''}); replace or remove it"
        ) from None
