"""IDX files (the MNIST family's format), gzip-compressed or plain, read with numpy alone (no torch).

Layout: a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values,
big-endian, row-major. A file is read whole and must hold exactly the values its header promises.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from cass_bench.errors import UserError

IDX_TYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
"""The magic number's type byte -> numpy dtype of the values."""
GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: Path, fix: str) -> bytes:
    try:
        with path.open("rb") as file:
            head = file.read(2)
        if head != GZIP_MAGIC:
            return path.read_bytes()
        with gzip.open(path, "rb") as file:
            return file.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UserError(f"IDX file '{path}' is truncated or corrupt (gzip: {exc}); {fix}") from None
    except OSError as exc:
        raise UserError(f"IDX file '{path}' cannot be read ({exc.strerror or exc}); {fix}") from None


def read_idx(path: str | Path, fix: str = "replace it with an intact copy") -> np.ndarray:
    """Reads an IDX file, gzip-compressed (detected by its first bytes) or plain.

    Args:
        path: the file.
        fix: what the user should do about a bad file, appended to every error message.

    Returns:
        The values in their IDX type (native byte order), shaped by the header's sizes.

    Raises:
        UserError: unreadable, truncated or corrupt file, wrong magic number, or a size that does not match the
            header; the message names the file.
    """
    path = Path(path)
    raw = _raw_bytes(path, fix)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise UserError(f"'{path}' is not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected "
                        f"0000<type><ndim>); {fix}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"IDX file '{path}' is truncated: its header of {ndim} sizes needs {header} bytes, the file "
                        f"holds {len(raw)}; {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    count = math.prod(shape)
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        what = ("truncated" if len(raw) < expected
                else f"longer than its header says ({len(raw) - expected} extra bytes)")
        raise UserError(f"IDX file '{path}' is {what}: shape {'x'.join(map(str, shape))} of {dtype.name} needs "
                        f"{expected} bytes, the file holds {len(raw)}; {fix}")
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)
