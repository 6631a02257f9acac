"""Reading one image safely: an allow-list of raster formats, orientation fixed, RGB out, bombs refused.

Every failure raises :class:`ImageError` with a reason meant for the user; callers report it by
path and carry on. The format is decided from the file's first bytes (magic numbers) before any
decoder runs, and only Pillow's plugin for that format may then open it: JPEG, PNG, WebP, GIF (first
frame), BMP and TIFF. Anything else (PostScript/EPS, which Pillow would hand to Ghostscript, PDF,
SVG, ICO, PSD, ...) is refused naming what it is. JPEGs are decoded at a reduced scale
(``draft_size``) when the model needs far fewer pixels than the file has: the DCT does the
downscaling, which is several times faster than decoding every pixel and resizing afterwards.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from visiontrain.data.errors import ImageError

# Larger than any camera photo (a 100 MP medium-format shot is ~1e8): beyond this a file is a
# decompression bomb or not meant for training. The platform's server has its own, lower limit
# (``ServerConfig.max_image_pixels``), passed as ``max_pixels``.
MAX_PIXELS = 120_000_000
# A file this large is refused before it is read at all.
MAX_FILE_BYTES = 200 * 1024 * 1024
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif"})

# The formats that may be decoded, as Pillow names them. MPO (multi-picture JPEG from cameras) is
# opened by the JPEG plugin itself.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ALLOWED_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF"
# Enough bytes to recognise every format below.
SNIFF_BYTES = 32

# Truncated files must fail loudly, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Formats recognised only to be refused by name (a clearer answer than "not an image").
_REFUSED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS (DOS binary PostScript)"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"8BPS", "PSD (Photoshop)"),
    (b"icns", "ICNS"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"gimp xcf", "XCF (GIMP)"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
)


def sniff_format(head: bytes) -> str:
    """The Pillow format name of an allowed image from its first bytes; ImageError naming anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM" and len(head) >= 18:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if not head:
        raise ImageError("file is empty")
    for signature, name in _REFUSED_SIGNATURES:
        if head.startswith(signature):
            raise ImageError(f"{name} files are not accepted: only {ALLOWED_FORMAT_NAMES} images are decoded")
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftypmsf1"):
        raise ImageError(f"HEIF/AVIF files are not accepted: only {ALLOWED_FORMAT_NAMES} images are decoded")
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        raise ImageError(f"an XML/SVG/HTML document is not accepted: only {ALLOWED_FORMAT_NAMES} images are decoded")
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"Pf", b"PF"):
        raise ImageError(f"PPM/PGM (Netpbm) files are not accepted: only {ALLOWED_FORMAT_NAMES} images are decoded")
    raise ImageError(f"not an image in an accepted format (only {ALLOWED_FORMAT_NAMES} are decoded)")


def sniff_stream(stream: BinaryIO) -> str:
    """:func:`sniff_format` on a seekable stream's first bytes; the stream is left where it was."""
    position = stream.tell()
    head = stream.read(SNIFF_BYTES)
    stream.seek(position)
    return sniff_format(head)


def open_image(
    source: str | Path | bytes, *, draft_size: int | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) into an RGB image, EXIF rotation applied.

    ``draft_size``: the model's input side; JPEGs may then be decoded at a reduced scale that still
    keeps both sides at least that large. ``max_pixels``: the largest width x height accepted
    (default :data:`MAX_PIXELS`), checked from the header before any pixel is decoded.

    Safe to call from several threads at once (no global warning filters are touched).
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return to_rgb(_decode(io.BytesIO(bytes(source)), draft_size, max_pixels)[0])
    with _open_path(source) as handle:
        return to_rgb(_decode(handle, draft_size, max_pixels)[0])


def check_image(stream: BinaryIO, *, max_pixels: int | None = None) -> tuple[str, int, int]:
    """Fully decode a seekable stream to prove it is a usable image, holding as few pixels as possible.

    Returns its format (Pillow's name; MPO as JPEG) and its size as displayed (EXIF rotation
    applied). JPEGs are decoded at 1/8 scale (the DCT still reads every byte, so truncation is
    caught); other formats keep their own mode (no RGB copy is made).
    """
    image, (width, height) = _decode(stream, draft_size=1, max_pixels=max_pixels, transpose=False)
    try:
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        image_format = image.format or "PNG"
        return ("JPEG" if image_format == "MPO" else image_format), width, height
    finally:
        image.close()


def _open_path(source: str | Path) -> BinaryIO:
    try:
        size = Path(source).stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"file is too large ({size / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB)")
        if size == 0:
            raise ImageError("file is empty")
        # Opened here, not by Pillow, so that the handle is closed even for multi-frame files (GIF,
        # TIFF) and failed decodes, and so that an unreadable file is not reported as a corrupt one.
        return open(source, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None


def _decode(
    stream: BinaryIO, draft_size: int | None, max_pixels: int | None, *, transpose: bool = True
) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (EXIF rotation applied unless ``transpose`` is false) and its size as stored."""
    limit = max_pixels or MAX_PIXELS
    image_format = sniff_stream(stream)
    try:
        # Only the plugin of the format the bytes announced may open them: Pillow would otherwise try
        # every plugin it has (EpsImagePlugin runs Ghostscript). Pillow's own bomb check runs inside
        # open(): above 2x Image.MAX_IMAGE_PIXELS it raises; our limit is checked before any decoding.
        image = Image.open(stream, formats=[image_format])
        width, height = image.size
        if width * height > limit:
            raise ImageError(
                f"image is too large ({width}x{height} = {width * height / 1e6:.0f} MP; "
                f"the limit is {limit / 1e6:.0f} MP): a decompression bomb or not a photo"
            )
        if draft_size and image.format in ("JPEG", "MPO"):
            # EXIF rotation may swap the sides: ask for a square so both stay large enough.
            image.draft("RGB" if transpose else image.mode, (draft_size, draft_size))
        image.load()
        return (ImageOps.exif_transpose(image) if transpose else image), (width, height)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a readable {image_format} image (its first bytes say {image_format}, the rest does not decode)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc})") from None
    except Exception as exc:  # Pillow's plugins raise assorted errors on hostile files
        raise ImageError(f"cannot decode image ({type(exc).__name__}: {exc})") from None


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
