"""Image decoding that keeps what an image shows: 8-bit RGB out of any supported mode, or a refusal.

PIL's ``convert("RGB")`` clips 16-bit and 32-bit images to 8 bits (a 16-bit PNG becomes white, a float TIFF in
[0, 1] black) and drops alpha, keeping whatever colour the transparent pixels hold. Here high-bit-depth and float
images are rescaled to 0..255 by their own minimum and maximum (a constant image becomes black), and alpha is
composited on :data:`BACKGROUND`. Other modes are refused with one line naming the mode.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cass_bench.errors import UserError

BACKGROUND = (0, 0, 0)
"""The colour transparent pixels are composited on (black)."""
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
PLAIN_MODES = ("1", "L", "P", "RGB", "CMYK", "YCbCr")
SUPPORTED_MODES = PLAIN_MODES + ALPHA_MODES + HIGH_DEPTH_MODES


def check_mode(image: Image.Image, where: str) -> None:
    """Raises UserError unless ``image`` can be decoded faithfully; decodes high-bit-depth images to check values.

    Args:
        image: an opened (not yet verified) image.
        where: the file, for the message.
    """
    if image.mode not in SUPPORTED_MODES:
        raise UserError(f"image '{where}' has mode {image.mode}, which cass-bench cannot decode faithfully; "
                        f"convert it to 8-bit RGB or grayscale (supported modes: {', '.join(SUPPORTED_MODES)})")
    if image.mode in HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise UserError(f"image '{where}' (mode {image.mode}) holds NaN or infinite values; "
                            "replace them with finite numbers or remove the image")


def rescaled(values: np.ndarray) -> np.ndarray:
    """``values`` mapped linearly from their own [min, max] to uint8 0..255 (all zeros when constant)."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def decode_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB at its own size: high bit depths rescaled by their range, alpha composited.

    Raises:
        UserError: a mode outside :data:`SUPPORTED_MODES`, or non-finite values.
    """
    if image.mode in HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise UserError(f"an image of mode {image.mode} holds NaN or infinite values; remove it from the dataset")
        return Image.fromarray(rescaled(values), mode="L").convert("RGB")
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode not in PLAIN_MODES:
        raise UserError(f"an image has mode {image.mode}, which cass-bench cannot decode faithfully; "
                        "convert it to 8-bit RGB or grayscale")
    return image.convert("RGB")
