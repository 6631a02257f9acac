"""Reading one image safely: any format Pillow knows, orientation fixed, RGB out, bombs refused.

Every failure raises :class:`ImageError` with a reason meant for the user; callers report it by
path and carry on. JPEGs are decoded at a reduced scale (``draft_size``) when the model needs far
fewer pixels than the file has: the DCT does the downscaling, which is several times faster than
decoding every pixel and resizing afterwards.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from visiontrain.data.errors import ImageError

# Larger than any camera photo (a 100 MP medium-format shot is ~1e8): beyond this a file is a
# decompression bomb or not meant for training.
MAX_PIXELS = 120_000_000
# A file this large is refused before it is read at all.
MAX_FILE_BYTES = 200 * 1024 * 1024
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)

# Truncated files must fail loudly, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def open_image(source: str | Path | bytes, *, draft_size: int | None = None) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) into an RGB image, EXIF rotation applied.

    ``draft_size``: the model's input side; JPEGs may then be decoded at a reduced scale that still
    keeps both sides at least that large.

    Safe to call from several threads at once (no global warning filters are touched).
    """
    if isinstance(source, bytes):
        return _decode(io.BytesIO(source), draft_size, "<bytes>")
    try:
        size = Path(source).stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"file is too large ({size / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB)")
        if size == 0:
            raise ImageError("file is empty")
        # Opened here, not by Pillow, so that the handle is closed even for multi-frame files (GIF,
        # TIFF) and failed decodes, and so that an unreadable file is not reported as a corrupt one.
        handle = open(source, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    with handle:
        return _decode(handle, draft_size, str(source))


def _decode(stream: io.IOBase | io.BufferedReader, draft_size: int | None, name: str) -> Image.Image:
    try:
        # Pillow's own bomb check runs inside open(): above 2x Image.MAX_IMAGE_PIXELS it raises,
        # above 1x it only warns; our limit below is checked before any pixel is decoded.
        image = Image.open(stream)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(
                f"image is too large ({width}x{height} = {width * height / 1e6:.0f} MP; "
                f"the limit is {MAX_PIXELS / 1e6:.0f} MP): a decompression bomb or not a photo"
            )
        if draft_size and image.format in ("JPEG", "MPO"):
            # EXIF rotation may swap the sides: ask for a square so both stay large enough.
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc})") from None
    except Exception as exc:  # Pillow's plugins raise assorted errors on hostile files
        raise ImageError(f"cannot decode image ({type(exc).__name__}: {exc}) in {name}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every mode: alpha is composited on white (transparent areas are background)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything to white.
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / top)).clip(0, 255).astype("uint8"), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
