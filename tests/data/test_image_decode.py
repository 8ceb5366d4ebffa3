"""``decode_image`` on real files of every format, mode and size, and on hostile ones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxcnn.data import COLOR_MODES, MAX_PIXELS, ImageFileError, decode_image
from jaxcnn.errors import InputError
from tests.data.images import (
    SUFFIX,
    encode,
    gif_bomb,
    png_bomb,
    random_gray,
    random_rgb,
    write_image,
)
from tests.memory import PEAK_RSS_SOURCE

LOSSLESS = ("PNG", "BMP", "WEBP")


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in float64 (the oracle of the grayscale conversion), in bytes."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return (299 * r + 587 * g + 114 * b) / 1000


def over_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA composited onto white, in float64 bytes: ``a c + (1 - a) 255``."""
    alpha = rgba[..., 3:].astype(np.float64) / 255
    return rgba[..., :3] * alpha + 255 * (1 - alpha)


def as_bytes(pixels: np.ndarray) -> np.ndarray:
    return np.rint(pixels.astype(np.float64) * 255)


@pytest.mark.parametrize("fmt", LOSSLESS)
def test_lossless_rgb_files_decode_to_the_bytes_written(tmp_path: Path, fmt: str) -> None:
    rgb = random_rgb(5, 7)
    path = write_image(tmp_path / f"x{SUFFIX[fmt]}", Image.fromarray(rgb), fmt)
    pixels = decode_image(path)
    assert pixels.dtype == np.float32
    assert pixels.shape == (5, 7, 3)
    np.testing.assert_array_equal(pixels, rgb.astype(np.float32) / np.float32(255))
    assert pixels.min() >= 0
    assert pixels.max() <= 1


@pytest.mark.parametrize("fmt", [*LOSSLESS, "GIF"])
def test_grayscale_files_stay_one_channel(tmp_path: Path, fmt: str) -> None:
    gray = random_gray(4, 6, seed=1)
    path = write_image(tmp_path / f"g{SUFFIX[fmt]}", Image.fromarray(gray), fmt)
    pixels = decode_image(path)
    if fmt == "WEBP":  # WebP has no grayscale mode: it stores gray as RGB, so rgb it is
        assert pixels.shape == (4, 6, 3)
        np.testing.assert_array_equal(as_bytes(pixels)[..., 0], gray)
    else:  # (GIF stores a palette of grays, which counts as grayscale)
        assert pixels.shape == (4, 6, 1)
        np.testing.assert_array_equal(as_bytes(pixels)[..., 0], gray)
    rgb = decode_image(path, color="rgb")
    assert rgb.shape == (4, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(as_bytes(rgb)[..., channel], gray)


def test_jpeg_decodes_as_pillow_decodes_it(tmp_path: Path) -> None:
    rgb = random_rgb(16, 12, seed=2)
    path = write_image(tmp_path / "photo.jpeg", Image.fromarray(rgb), "JPEG")
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(as_bytes(decode_image(path)), expected)
    gray = write_image(tmp_path / "gray.jpg", Image.fromarray(random_gray(8, 8)), "JPEG")
    assert decode_image(gray).shape == (8, 8, 1)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = write_image(tmp_path / "cmyk.jpg", Image.new("CMYK", (3, 2), (0, 255, 255, 0)), "JPEG")
    pixels = as_bytes(decode_image(path))
    assert pixels.shape == (2, 3, 3)
    assert np.all(pixels[..., 0] > 240)  # no cyan: full red
    assert np.all(pixels[..., 1:] < 15)  # full magenta and yellow: no green, no blue


def test_colour_to_grayscale_is_itu_601_luma(tmp_path: Path) -> None:
    rgb = random_rgb(6, 9, seed=3)
    path = write_image(tmp_path / "c.png", Image.fromarray(rgb))
    gray = decode_image(path, color="grayscale")
    assert gray.shape == (6, 9, 1)
    # Pillow's fixed-point luma is within 0.01 of the float formula, so at most 1 apart once rounded
    assert np.abs(as_bytes(gray)[..., 0] - luma(rgb)).max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_rgba_is_composited_onto_white(tmp_path: Path, fmt: str) -> None:
    rgba = np.concatenate([random_rgb(5, 5, seed=4), random_gray(5, 5, seed=5)[..., None]], -1)
    rgba[0, 0, 3] = 0  # fully transparent: white
    rgba[0, 1, 3] = 255  # opaque: its own colour
    path = write_image(tmp_path / f"a{SUFFIX[fmt]}", Image.fromarray(rgba, "RGBA"), fmt)
    pixels = as_bytes(decode_image(path))
    assert pixels.shape == (5, 5, 3)
    np.testing.assert_array_equal(pixels[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(pixels[0, 1], rgba[0, 1, :3])
    assert np.abs(pixels - over_white(rgba)).max() <= 1
    gray = as_bytes(decode_image(path, color="grayscale"))[..., 0]
    assert np.abs(gray - luma(over_white(rgba))).max() <= 1.5  # two roundings


def test_grayscale_with_alpha_stays_grayscale_over_white(tmp_path: Path) -> None:
    la = np.stack([random_gray(3, 4, seed=6), random_gray(3, 4, seed=7)], -1)
    path = write_image(tmp_path / "la.png", Image.fromarray(la, "LA"))
    pixels = as_bytes(decode_image(path))
    assert pixels.shape == (3, 4, 1)
    gray_rgba = np.concatenate([np.repeat(la[..., :1], 3, -1), la[..., 1:]], -1)
    assert np.abs(pixels[..., 0] - over_white(gray_rgba)[..., 0]).max() <= 1


def test_palette_images_decode_to_their_palette_colours(tmp_path: Path) -> None:
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (3 * 253)
    index = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette)
    colours = np.array(palette[:9]).reshape(3, 3)
    for fmt in ("PNG", "GIF", "BMP"):
        path = write_image(tmp_path / f"p{SUFFIX[fmt]}", image, fmt)
        np.testing.assert_array_equal(as_bytes(decode_image(path)), colours[index], err_msg=fmt)
    image.info["transparency"] = 1  # entry 1 (green) is transparent: white
    path = write_image(tmp_path / "t.png", image)
    expected = colours[index].copy()
    expected[index == 1] = 255
    np.testing.assert_array_equal(as_bytes(decode_image(path)), expected)


def test_one_bit_and_sixteen_bit_grayscale(tmp_path: Path) -> None:
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    path = write_image(tmp_path / "bits.png", Image.fromarray(bits))
    np.testing.assert_array_equal(as_bytes(decode_image(path))[..., 0], bits * 255)
    wide = np.array([[0, 257, 65535], [128, 32896, 1000]], dtype=np.uint16)
    path = write_image(tmp_path / "wide.png", Image.fromarray(wide))
    np.testing.assert_array_equal(as_bytes(decode_image(path))[..., 0], np.rint(wide / 257))


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("L", (4, 3), value) for value in (10, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    np.testing.assert_array_equal(as_bytes(decode_image(path)), np.full((3, 4, 1), 10))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_tiny_images(tmp_path: Path, fmt: str) -> None:
    path = write_image(tmp_path / f"one{SUFFIX[fmt]}", Image.new("RGB", (1, 1), (255, 0, 0)), fmt)
    pixels = decode_image(path, color="rgb")
    assert pixels.shape == (1, 1, 3)
    assert pixels[0, 0, 0] > 0.9
    assert decode_image(path, size=(3, 2)).shape == (3, 2, 3)


def test_resize_is_pillows_bilinear_after_the_colour_conversion(tmp_path: Path) -> None:
    rgb = random_rgb(20, 30, seed=8)
    path = write_image(tmp_path / "big.png", Image.fromarray(rgb))
    small = decode_image(path, size=(7, 11), color="grayscale")
    assert small.shape == (7, 11, 1)
    gray = Image.fromarray(rgb).convert("L")
    expected = np.asarray(gray.resize((11, 7), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(as_bytes(small)[..., 0], expected)
    flat = write_image(tmp_path / "flat.png", Image.new("RGB", (9, 5), (30, 60, 90)))
    np.testing.assert_array_equal(
        as_bytes(decode_image(flat, size=(17, 2))), np.broadcast_to([30, 60, 90], (17, 2, 3))
    )
    assert decode_image(path, size=(20, 30)).shape == (20, 30, 3)  # the same size: no resize


def test_bytes_and_paths_decode_alike(tmp_path: Path) -> None:
    data = encode(Image.fromarray(random_rgb(3, 3)), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(decode_image(data), decode_image(path))
    np.testing.assert_array_equal(decode_image(bytearray(data)), decode_image(str(path)))


def test_bad_options_are_input_errors(tmp_path: Path) -> None:
    data = encode(Image.new("L", (2, 2)), "PNG")
    assert COLOR_MODES == ("grayscale", "rgb")
    with pytest.raises(InputError, match="color must be one of"):
        decode_image(data, color="RGB")
    for size in [(0, 3), (3,), (2.0, 3), "28x28", (True, 2)]:
        with pytest.raises(InputError, match="size must be"):
            decode_image(data, size=size)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_pixels"):
        decode_image(data, max_pixels=0)
    with pytest.raises(TypeError, match="source must be bytes or a path"):
        decode_image(12)  # type: ignore[arg-type]


# Hostile and broken files --------------------------------------------------------------


def refused(source: object, match: str, **options: object) -> ImageFileError:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow warning may reach the caller either
        with pytest.raises(ImageFileError, match=match) as caught:
            decode_image(source, **options)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    refused(tmp_path / "nope.png", r"nope\.png: no such file")
    refused(tmp_path, "cannot be read")  # a folder


def test_a_declared_size_over_the_bound_is_refused_before_decoding() -> None:
    # 9000 x 9000 is over MAX_PIXELS but under Pillow's own bomb check: ours refuses it
    declared = png_bomb(9000, 9000, rows=1)
    assert len(declared) < 10_000
    refused(declared, r"9000 x 9000 = 81,000,000 pixels, more than the 67,108,864", name="b.png")
    assert MAX_PIXELS == 67_108_864
    refused(encode(Image.new("L", (10, 10)), "PNG"), "more than the 99 allowed", max_pixels=99)


def test_decompression_bombs_are_refused(tmp_path: Path) -> None:
    bomb = png_bomb(20000, 20000)  # ~0.4 MB that inflates to 400 MB
    assert len(bomb) < 10**6
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    refused(path, r"bomb\.png: refused before decoding")
    refused(gif_bomb(), "refused before decoding", name="gif bomb")
    # raising jaxcnn's bound does not lift Pillow's own limit
    refused(bomb, "refused before decoding", max_pixels=10**10)


def test_a_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Peak RSS of a child that tries the 400 MB bomb grows by far less than the bomb decodes to."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(20000, 20000))
    decoded = 20000 * 20000  # bytes, as 8-bit grayscale
    script = PEAK_RSS_SOURCE + textwrap.dedent(
        f"""
        from jaxcnn.data import ImageFileError, decode_image
        raw = open({str(path)!r}, "rb").read()
        before = peak_rss()
        for _ in range(3):
            try:
                decode_image(raw)
            except ImageFileError:
                pass
            else:
                raise SystemExit("decoded the bomb")
        print(peak_rss() - before)
        """
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    grown_bytes = int(child.stdout)
    assert grown_bytes < decoded / 20, child.stdout


def test_truncated_files_are_refused(tmp_path: Path) -> None:
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "WEBP"):
        whole = encode(Image.fromarray(random_rgb(40, 40, seed=9)), fmt)
        path = tmp_path / f"cut{SUFFIX[fmt]}"
        path.write_bytes(whole[: len(whole) // 2])
        error = refused(path, rf"cut{SUFFIX[fmt]}: ")
        assert "truncated" in str(error) or "not a PNG" in str(error), (fmt, str(error))


def test_corrupt_and_non_image_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("just some text, not a picture\n")
    refused(text, r"notes\.png: is not a PNG, JPEG, BMP, GIF or WebP image")
    refused(b"", "the image: is not a PNG")
    refused(np.random.default_rng(0).bytes(5000), "is not a PNG", name="noise.jpg")
    png = bytearray(encode(Image.fromarray(random_rgb(30, 30, seed=10)), "PNG"))
    start = png.index(b"IDAT") + 20
    png[start : start + 40] = bytes(40)  # damage the compressed pixels (the CRC no longer holds)
    refused(bytes(png), "the image: is truncated or corrupt")


def test_other_formats_are_refused_even_if_pillow_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    Image.new("RGB", (4, 4)).save(path, "TIFF")  # a TIFF named .png
    refused(path, r"scan\.png: is not a PNG, JPEG, BMP, GIF or WebP image")
    eps = tmp_path / "vector.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    refused(eps, "is not a PNG")  # Pillow's EPS plugin (Ghostscript) is never tried


def test_a_wrong_extension_is_refused_with_the_right_one(tmp_path: Path) -> None:
    path = write_image(tmp_path / "photo.jpg", Image.new("RGB", (2, 2)), "PNG")
    refused(
        path, r"photo\.jpg: its name ends in \.jpg \(JPEG\) but it holds a PNG .*rename it to \.png"
    )
    assert decode_image(path.read_bytes()).shape == (2, 2, 3)  # bytes have no name to check
    other = tmp_path / "photo.dat"
    other.write_bytes(path.read_bytes())  # an unknown extension promises nothing
    assert decode_image(other).shape == (2, 2, 3)
