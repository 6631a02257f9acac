"""open_image on real photos and on the broken, hostile and unusual files users really have."""

from __future__ import annotations

import gc
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from visiontrain.data.errors import ImageError
from visiontrain.data.images import MAX_PIXELS, open_image


@pytest.fixture(scope="module")
def real_jpeg(datasets_dir: Path) -> Path:
    return datasets_dir / "ants_bees" / "train" / "ants" / "0013035.jpg"


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny PNG file whose IHDR claims ``width`` x ``height`` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_real_jpeg_decodes_to_rgb_and_draft_keeps_both_sides_large_enough(real_jpeg: Path) -> None:
    full = open_image(real_jpeg)
    draft = open_image(real_jpeg, draft_size=64)
    assert full.mode == draft.mode == "RGB"
    assert full.size == Image.open(real_jpeg).size
    assert draft.size[0] < full.size[0] and min(draft.size) >= 64


def test_truncated_jpeg_is_refused_even_with_draft_decoding(real_jpeg: Path, tmp_path: Path) -> None:
    data = real_jpeg.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    for draft_size in (None, 64):
        with pytest.raises(ImageError, match="truncated"):
            open_image(cut, draft_size=draft_size)
    with pytest.raises(ImageError, match="truncated"):
        open_image(data[: len(data) // 2])


def test_text_file_named_jpg_and_empty_and_missing_files_are_refused_with_reasons(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is a note, not a photo\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="not an image"):
        open_image(text)
    with pytest.raises(ImageError, match="empty"):
        open_image(empty)
    with pytest.raises(ImageError, match="cannot read file"):
        open_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="cannot read file"):
        open_image(tmp_path)  # a folder


def test_decompression_bomb_is_refused_from_its_header_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    original_load = ImageFile.ImageFile.load

    def recording_load(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        decoded.append(str(self.size))
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    huge = tmp_path / "bomb.png"
    huge.write_bytes(png_with_header_size(30_000, 30_000))  # 900 MP claimed by a 100-byte file
    just_over = tmp_path / "just_over.png"
    just_over.write_bytes(png_with_header_size(11_000, 11_000))  # 121 MP: over our limit, under Pillow's error
    assert 11_000 * 11_000 > MAX_PIXELS

    with pytest.raises(ImageError, match="too large"):
        open_image(huge)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow warns above its own lower limit
        with pytest.raises(ImageError, match=r"11000x11000 = 121 MP.*decompression bomb"):
            open_image(just_over)
    assert decoded == []  # refused from the header: no pixel was decoded


def test_open_image_leaves_global_warning_filters_alone(real_jpeg: Path) -> None:
    # open_image runs in thread pools: changing the process-wide filters there is a race.
    before = list(warnings.filters)
    open_image(real_jpeg, draft_size=64)
    assert warnings.filters == before


def test_grayscale_and_sixteen_bit_images_become_rgb(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.new("L", (20, 10), 90).save(gray)
    out = open_image(gray)
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (90, 90, 90)

    deep = tmp_path / "deep.png"
    ramp = np.tile(np.linspace(0, 4095, 16, dtype=np.uint16), (8, 1))  # 12-bit sensor data in 16 bits
    Image.fromarray(ramp).save(deep)
    assert Image.open(deep).mode.startswith("I")
    out = open_image(deep)
    assert out.mode == "RGB" and out.size == (16, 8)
    assert out.getpixel((15, 0)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 0)
    assert 100 < out.getpixel((8, 0))[0] < 160  # scaled, not clipped to white


def test_transparent_areas_become_white_for_rgba_and_palette_images(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))
    rgba.save(tmp_path / "rgba.png")
    out = open_image(tmp_path / "rgba.png")
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((5, 5)) == (255, 0, 0)

    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "palette.png", transparency=0)
    out = open_image(tmp_path / "palette.png")
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((5, 5)) == (0, 128, 0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (400, 200), (10, 200, 30)).save(path, exif=exif)
    assert Image.open(path).size == (400, 200)
    assert open_image(path).size == (200, 400)
    drafted = open_image(path, draft_size=64)
    assert drafted.size[0] < drafted.size[1] and min(drafted.size) >= 64


def test_the_placeholder_gif_in_ants_bees_decodes_and_its_file_is_closed(datasets_dir: Path) -> None:
    # "imageNotFound.gif" is junk semantically but a valid 300x300 GIF: decoding cannot tell, so it
    # is kept (the importer's duplicate and class checks are where such junk gets noticed).
    gif = datasets_dir / "ants_bees" / "train" / "ants" / "imageNotFound.gif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        image = open_image(gif)
        del image
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_animated_gif_handle_is_closed_after_decoding(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("P", (12, 12), i) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        image = open_image(path)
        assert image.size == (12, 12) and image.mode == "RGB"
        del image
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_postscript_and_other_formats_off_the_allow_list_are_refused_before_any_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import EpsImagePlugin

    reached: list[str] = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: reached.append("eps"))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n%%EOF\n"
    disguised = tmp_path / "photo.jpg"  # what the CLI's data checks read: a path
    disguised.write_bytes(eps)
    for source in (eps, disguised):
        with pytest.raises(ImageError, match="PostScript/EPS files are not accepted"):
            open_image(source)
    with pytest.raises(ImageError, match="PDF files are not accepted"):
        open_image(b"%PDF-1.7\n" + b"\0" * 64)
    with pytest.raises(ImageError, match="SVG"):
        open_image(b'<svg xmlns="http://www.w3.org/2000/svg"/>')
    assert reached == []
