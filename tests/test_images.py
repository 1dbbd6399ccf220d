"""The one image reader: every kind of file, under the exact and convert
policies, checked pixel by pixel; and the compressor and the folder pipeline
that use it."""

import resource
import struct
import warnings
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFile, ImageOps

import vae_tf
from vae_tf import image_folders, images
from vae_tf.compression.files import compress_files

M = 65535  # the largest 16-bit sample


def chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data))
    )


def png_bytes(samples, colour_type, depth=16, extra=b"", size=None):
    """A PNG written by hand (Pillow cannot write 16-bit colour PNGs)."""
    samples = np.asarray(samples)
    height, width = size or samples.shape[:2]
    dtype = ">u2" if depth == 16 else "u1"
    rows = b"".join(b"\0" + row.astype(dtype).tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def tiff_rgb16(samples) -> bytes:
    """An uncompressed little-endian 48-bit RGB TIFF, written by hand."""
    height, width, _ = samples.shape
    data = samples.astype("<u2").tobytes()
    entries = [  # (tag, type: 3 SHORT / 4 LONG, count, value or offset)
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 3, 8 + 2 + 9 * 12 + 4),  # BitsPerSample, after the IFD
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 8 + 2 + 9 * 12 + 4 + 6),  # the strip, after BitsPerSample
        (277, 3, 1, 3),
        (278, 3, 1, height),
        (279, 4, 1, len(data)),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<3H", 16, 16, 16) + data


def ramp16() -> np.ndarray:
    """The reported file: 0..65535 over a 28x28 image."""
    return np.round(np.linspace(0, M, 28 * 28)).astype(np.uint16).reshape(28, 28)


def scaled(samples) -> np.ndarray:
    """16 to 8 bits as a float computation: `round(v * 255 / 65535)`."""
    return np.round(np.asarray(samples, np.float64) * 255 / M).astype(np.uint8)


def on_white(samples, alpha, maximum=255) -> np.ndarray:
    """Compositing on white in floats: `255 (c a + M (M - a)) / M**2`, rounded."""
    c = np.asarray(samples, np.float64)
    a = np.asarray(alpha, np.float64)[..., None]
    return np.round(255 * (c * a + maximum * (maximum - a)) / maximum**2).astype(
        np.uint8
    )


def random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def read_both(path, channels):
    """`read_image` under the convert then the exact policy."""
    return (
        images.read_image(path, channels),
        images.read_image(path, channels, exact=True),
    )


def test_one_bit_images_are_grey_0_and_255_under_both_policies(tmp_path):
    bits = random_uint8((12, 17)) > 127
    Image.fromarray(bits).convert("1").save(tmp_path / "bits.png")
    assert Image.open(tmp_path / "bits.png").mode == "1"
    for pixels, notes in read_both(tmp_path / "bits.png", 1):
        np.testing.assert_array_equal(pixels[..., 0], np.where(bits, 255, 0))
        assert pixels.dtype == np.uint8 and notes == []


def test_8bit_grey_and_rgb_files_are_read_as_they_are(tmp_path):
    grey, rgb = random_uint8((9, 14)), random_uint8((9, 14, 3), seed=1)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.bmp")
    for pixels, notes in read_both(tmp_path / "grey.png", 1):
        np.testing.assert_array_equal(pixels[..., 0], grey)
        assert notes == []
    for name in ("rgb.png", "rgb.bmp"):
        for pixels, notes in read_both(tmp_path / name, 3):
            np.testing.assert_array_equal(pixels, rgb)
            assert notes == []


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_is_refused_exact_and_scaled_with_rounding_in_convert(
    tmp_path, suffix
):
    path = tmp_path / f"ramp16{suffix}"
    Image.fromarray(ramp16()).save(path)
    with pytest.raises(ValueError, match="ramp16.* has 16-bit samples; the lossless"):
        images.read_image(path, 1, exact=True)
    pixels, notes = images.read_image(path, 1)
    np.testing.assert_array_equal(pixels[..., 0], scaled(ramp16()))
    assert notes == ["16-bit samples scaled to 8 bits"]
    # Scaled, not clipped: the ramp stays a ramp, 0 to 255, about half below 128.
    assert pixels.min() == 0 and pixels.max() == 255
    assert (pixels < 128).mean() == pytest.approx(0.5, abs=0.01)


def test_16bit_rgb_and_rgba_pngs_keep_all_16_bits_before_scaling(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, M + 1, (6, 7, 3))
    (tmp_path / "rgb16.png").write_bytes(png_bytes(rgb, colour_type=2))
    with pytest.raises(ValueError, match="16-bit samples"):
        images.read_image(tmp_path / "rgb16.png", 3, exact=True)
    pixels, notes = images.read_image(tmp_path / "rgb16.png", 3)
    np.testing.assert_array_equal(pixels, scaled(rgb))
    assert notes == ["16-bit samples scaled to 8 bits"]
    # Pillow alone keeps the high byte, which differs from rounding.
    assert (np.asarray(Image.open(tmp_path / "rgb16.png")) != scaled(rgb)).any()
    # Opaque 16-bit alpha is dropped; transparent is composited on white.
    opaque = np.concatenate([rgb, np.full((6, 7, 1), M)], axis=-1)
    (tmp_path / "opaque16.png").write_bytes(png_bytes(opaque, colour_type=6))
    pixels, notes = images.read_image(tmp_path / "opaque16.png", 3)
    np.testing.assert_array_equal(pixels, scaled(rgb))
    assert notes == ["16-bit samples scaled to 8 bits"]
    alpha = rng.integers(0, M + 1, (6, 7))
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
    (tmp_path / "rgba16.png").write_bytes(png_bytes(rgba, colour_type=6))
    pixels, notes = images.read_image(tmp_path / "rgba16.png", 3)
    np.testing.assert_array_equal(pixels, on_white(rgb, alpha, maximum=M))
    assert notes == [
        "16-bit samples scaled to 8 bits",
        "transparent pixels composited on white",
    ]


def test_48bit_tiff_is_refused_exact_and_noted_in_convert(tmp_path):
    rgb = np.random.default_rng(0).integers(0, M + 1, (5, 6, 3))
    (tmp_path / "rgb48.tif").write_bytes(tiff_rgb16(rgb))
    with pytest.raises(ValueError, match="has 16-bit samples"):
        images.read_image(tmp_path / "rgb48.tif", 3, exact=True)
    pixels, notes = images.read_image(tmp_path / "rgb48.tif", 3)
    np.testing.assert_array_equal(pixels, rgb >> 8)  # what Pillow decodes
    assert notes == ["16-bit samples reduced to 8 bits (Pillow keeps the high byte)"]


@pytest.mark.parametrize(
    "mode, name", [("I", "32-bit integer"), ("F", "32-bit floating-point")]
)
def test_32bit_samples_are_refused_under_both_policies(tmp_path, mode, name):
    values = np.linspace(0, 1, 20).reshape(4, 5) * (1.0 if mode == "F" else 1000)
    Image.fromarray(values.astype("float32" if mode == "F" else "int32")).save(
        tmp_path / "raw.tif"
    )
    assert Image.open(tmp_path / "raw.tif").mode == mode
    for exact in (False, True):
        with pytest.raises(ValueError, match=f"raw.tif has {name} samples"):
            images.read_image(tmp_path / "raw.tif", 1, exact=exact)


def palette_image(colours, indices, transparency=None) -> Image.Image:
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), indices.astype(np.uint8).tobytes())
    image.putpalette(np.asarray(colours, np.uint8).ravel().tolist())
    if transparency is not None:
        image.info["transparency"] = transparency
    return image


def alpha_files(tmp_path, alpha):
    """LA, RGBA and a palette with tRNS, each with the given alpha; returns
    `(path, channels, colour, alpha)` for each."""
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, alpha.shape, dtype=np.uint8)
    Image.fromarray(np.stack([grey, alpha], -1)).save(tmp_path / "la.png")
    rgb = rng.integers(0, 256, (*alpha.shape, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    colours = rng.integers(0, 256, (4, 3))
    indices = rng.integers(0, 3, alpha.shape)  # colour 3 unused
    indices[alpha < 255] = 0  # colour 0 is the transparent one, if any
    transparency = 0 if (alpha < 255).any() else 3
    palette_image(colours, indices, transparency).save(
        tmp_path / "p.png", transparency=transparency
    )
    palette_alpha = np.where(indices == transparency, 0, 255)
    return [
        (tmp_path / "la.png", 1, grey[..., None], alpha),
        (tmp_path / "rgba.png", 3, rgb, alpha),
        (tmp_path / "p.png", 3, colours[indices], palette_alpha),
    ]


def test_opaque_alpha_and_unused_transparency_are_dropped_under_both_policies(
    tmp_path,
):
    alpha = np.full((5, 8), 255, np.uint8)
    for path, channels, colour, _ in alpha_files(tmp_path, alpha):
        for pixels, notes in read_both(path, channels):
            np.testing.assert_array_equal(pixels, colour)
            assert notes == []


def test_transparent_pixels_are_refused_exact_and_composited_on_white_in_convert(
    tmp_path,
):
    alpha = np.random.default_rng(3).integers(0, 256, (5, 8)).astype(np.uint8)
    alpha[0, 0] = 0
    for path, channels, colour, file_alpha in alpha_files(tmp_path, alpha):
        with pytest.raises(ValueError, match=f"{path.name} has transparent pixels"):
            images.read_image(path, channels, exact=True)
        pixels, notes = images.read_image(path, channels)
        np.testing.assert_array_equal(pixels, on_white(colour, file_alpha))
        assert notes == ["transparent pixels composited on white"]
    # A grey PNG with a tRNS colour key: pixels of that value are transparent.
    grey = np.random.default_rng(4).integers(0, 256, (5, 8)).astype(np.uint8)
    key = int(grey[2, 3])
    trns = chunk(b"tRNS", struct.pack(">H", key))
    (tmp_path / "key.png").write_bytes(png_bytes(grey, 0, depth=8, extra=trns))
    with pytest.raises(ValueError, match="has transparent pixels"):
        images.read_image(tmp_path / "key.png", 1, exact=True)
    pixels, _ = images.read_image(tmp_path / "key.png", 1)
    np.testing.assert_array_equal(pixels[..., 0], np.where(grey == key, 255, grey))


def test_palettes_give_their_colours_and_grey_palettes_give_grey(tmp_path):
    rng = np.random.default_rng(5)
    indices = rng.integers(0, 16, (7, 9))
    colours = rng.integers(0, 256, (16, 3))
    palette_image(colours, indices).save(tmp_path / "colour.png")
    levels = rng.integers(0, 256, 16)
    palette_image(np.stack([levels] * 3, -1), indices).save(tmp_path / "grey.png")
    assert Image.open(tmp_path / "grey.png").mode == "P"
    for pixels, notes in read_both(tmp_path / "colour.png", 3):
        np.testing.assert_array_equal(pixels, colours[indices])
        assert notes == []
    for pixels, notes in read_both(tmp_path / "grey.png", 1):
        np.testing.assert_array_equal(pixels[..., 0], levels[indices])
        assert notes == []


@pytest.mark.parametrize(
    "mode, suffix", [("CMYK", ".jpg"), ("LAB", ".tif"), ("YCbCr", ".tif")]
)
def test_other_colour_modes_are_refused_exact_and_converted_to_rgb(
    tmp_path, mode, suffix
):
    path = tmp_path / f"image{suffix}"
    samples = random_uint8((6, 8, 4 if mode == "CMYK" else 3))
    Image.frombytes(mode, (8, 6), samples.tobytes()).save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(ValueError, match=f"is a {mode} image"):
        images.read_image(path, 3, exact=True)
    pixels, notes = images.read_image(path, 3)
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(path).convert("RGB")))
    assert notes == [f"{mode} converted to RGB"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_turned_upright_under_both_policies(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(random_uint8((6, 9, 3))).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    for pixels, notes in read_both(tmp_path / "o.png", 3):
        np.testing.assert_array_equal(pixels, expected)
        turned = "rotated" if orientation in (3, 6, 8) else "flipped"
        assert notes == (
            [f"{turned} upright (EXIF orientation {orientation})"]
            if orientation > 1
            else []
        )


def test_exif_orientation_of_a_jpeg_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(random_uint8((20, 30, 3))).save(tmp_path / "o.jpg", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")))
    pixels, notes = images.read_image(tmp_path / "o.jpg", 3)
    assert pixels.shape == (30, 20, 3)
    np.testing.assert_array_equal(pixels, expected)
    assert notes == ["rotated upright (EXIF orientation 6)"]


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp", ".tif"])
def test_multi_frame_files_are_refused_exact_and_give_their_first_frame(
    tmp_path, suffix
):
    rng = np.random.default_rng(6)
    colours = rng.integers(0, 256, (8, 3), dtype=np.uint8)  # few: a GIF keeps them
    frames = [colours[rng.integers(0, 8, (6, 9))] for _ in range(3)]
    path = tmp_path / f"frames{suffix}"
    options = {"lossless": True} if suffix == ".webp" else {}
    first, *rest = (Image.fromarray(frame) for frame in frames)
    first.save(path, save_all=True, append_images=rest, **options)
    with pytest.raises(ValueError, match="has 3 frames"):
        images.read_image(path, 3, exact=True)
    pixels, notes = images.read_image(path, 3)
    np.testing.assert_array_equal(pixels, frames[0])
    assert notes == ["first of 3 frames"]


def test_empty_damaged_and_non_image_files_are_refused(tmp_path):
    Image.fromarray(random_uint8((60, 90, 3))).save(tmp_path / "whole.png")
    Image.fromarray(random_uint8((60, 90, 3))).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    damaged = bytearray(data)
    damaged[60] ^= 0xFF  # inside the compressed pixels
    (tmp_path / "flipped.png").write_bytes(bytes(damaged))
    jpeg = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    cases = {
        "empty.png": r"empty.png is empty \(0 bytes\)",
        "text.png": "text.png is not a readable image .*not an image file Pillow can",
        "cut.png": "cut.png is truncated or damaged",
        "flipped.png": "flipped.png is truncated or damaged",
        "cut.jpg": "cut.jpg is truncated or damaged",
    }
    for name, message in cases.items():
        for exact in (False, True):
            with pytest.raises(ValueError, match=message) as error:
                images.read_image(tmp_path / name, 3, exact=exact)
            assert "\n" not in str(error.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def gif_header(width, height) -> bytes:
    """A GIF whose header claims `width`x`height`, with one 1x1 frame."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0" * 6
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def test_huge_dimensions_are_refused_from_the_header_without_decoding(tmp_path):
    tiny = zlib.compress(b"\0" * 100)
    for name, width, height in [("huge.png", 60000, 60000), ("big.png", 12000, 10000)]:
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        (tmp_path / name).write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", tiny)
            + chunk(b"IEND", b"")
        )
    (tmp_path / "huge.gif").write_bytes(gif_header(65535, 65535))
    (tmp_path / "big.gif").write_bytes(gif_header(11000, 10000))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with warnings.catch_warnings():
        # No DecompressionBombWarning escapes the reader.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for name, message in [
            ("huge.png", r"60000x60000 pixels \(3,600,000,000\), over the limit of "),
            ("big.png", r"12000x10000 pixels \(120,000,000\), over the limit of "),
            ("huge.gif", r"over the limit of pixels decoded \(Image size \(4294836225"),
            ("big.gif", r"11000x10000 pixels \(110,000,000\), over the limit of "),
        ]:
            for exact in (False, True):
                with pytest.raises(ValueError, match=f"{name} is {message}"):
                    images.read_image(tmp_path / name, 1, exact=exact)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 200_000  # KiB: nothing near the 3.6 GB of the claimed pixels
    # The limit is an argument, checked against width * height.
    Image.fromarray(random_uint8((28, 28))).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="28x28 pixels .* limit of 783 pixels"):
        images.read_image(tmp_path / "small.png", 1, max_pixels=783)
    assert images.read_image(tmp_path / "small.png", 1, max_pixels=784)[0].size == 784
    assert images.MAX_PIXELS == 100_000_000


def test_colour_for_a_grey_model_is_refused_exact_unless_grey_and_luma_in_convert(
    tmp_path,
):
    rgb = random_uint8((7, 11, 3))
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(
        ValueError, match="colour.png is a colour image; this model codes greyscale"
    ):
        images.read_image(tmp_path / "colour.png", 1, exact=True)
    pixels, notes = images.read_image(tmp_path / "colour.png", 1)
    assert notes == ["colour converted to grey (ITU-R 601 luma)"]
    # Pillow's own conversion, and the ITU-R 601 weights to within rounding.
    np.testing.assert_array_equal(
        pixels[..., 0], np.asarray(Image.fromarray(rgb).convert("L"))
    )
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(pixels[..., 0], luma, atol=0.51)
    # An RGB file whose pixels are all grey is grey: accepted, nothing noted.
    grey = random_uint8((7, 11))
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "grey_rgb.png")
    for pixels, notes in read_both(tmp_path / "grey_rgb.png", 1):
        np.testing.assert_array_equal(pixels[..., 0], grey)
        assert notes == []


def test_grey_for_a_colour_model_is_replicated_under_both_policies(tmp_path):
    grey = random_uint8((7, 11))
    Image.fromarray(grey).save(tmp_path / "grey.png")
    for pixels, notes in read_both(tmp_path / "grey.png", 3):
        np.testing.assert_array_equal(pixels, np.stack([grey] * 3, -1))
        assert notes == ["grey replicated to RGB"]


def test_missing_files_and_directories_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image file at .*missing.png"):
        images.read_image(tmp_path / "missing.png", 1)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        images.read_image(tmp_path, 1)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        images.read_image(tmp_path / "missing.png", 2)


def test_read_images_checks_every_size_and_returns_the_notes(tmp_path):
    Image.fromarray(random_uint8((20, 30))).save(tmp_path / "a.png")
    Image.fromarray(ramp16()).save(tmp_path / "ramp16.png")
    paths = [tmp_path / "a.png", tmp_path / "ramp16.png"]
    with pytest.raises(ValueError, match=r"a.png is 30x20 pixels; .* codes 28x28"):
        images.read_images(paths, (28, 28, 1))
    pixels, notes = images.read_images(paths, (None, None, 1))
    assert [p.shape for p in pixels] == [(20, 30, 1), (28, 28, 1)]
    assert notes == [[], ["16-bit samples scaled to 8 bits"]]
    with pytest.raises(ValueError, match="No image files given"):
        images.read_images([], (None, None, 1))


def test_lossless_compression_refuses_the_16bit_ramp_and_writes_nothing(tmp_path):
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(2, (8,)),
        vae_tf.DenseDecoder((28, 28, 1), (8,)),
        vae_tf.Bernoulli("threshold"),
        seed=0,
    )
    model.build((None, 28, 28, 1))
    Image.fromarray(ramp16()).save(tmp_path / "ramp16.png")
    Image.fromarray(random_uint8((28, 28)) > 127).save(tmp_path / "bits.png")
    output = tmp_path / "x.vtfz"
    paths = [tmp_path / "bits.png", tmp_path / "ramp16.png"]
    with pytest.raises(ValueError, match="ramp16.png has 16-bit samples"):
        compress_files(model, paths, output, lossless=True, verbose=False)
    assert not output.exists() and not list(tmp_path.glob(".*.tmp"))


def test_lossy_compression_reads_the_16bit_ramp_scaled_and_reports_it(tmp_path, capsys):
    model = vae_tf.LossyVAE(filters=8, latent_channels=8, num_layers=2, channels=1)
    model.build((None, 32, 32, 1))
    Image.fromarray(ramp16()).save(tmp_path / "ramp16.png")
    output = tmp_path / "x.vtfz"
    figures = compress_files(model, [tmp_path / "ramp16.png"], output, lossless=False)
    assert output.exists() and figures["images"] == 1
    note = "16-bit samples scaled to 8 bits"
    assert figures["conversions"] == {str(tmp_path / "ramp16.png"): [note]}
    assert f"ramp16.png: {note}" in capsys.readouterr().err


def test_folder_dataset_yields_the_readers_pixels(tmp_path):
    """With `image_shape` the file's size, the resize is the identity (checked
    against the reader's pixels after rounding to 8 bits, and to within float32
    rounding of `v / 255`)."""
    Image.fromarray(ramp16()).save(tmp_path / "ramp16.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(random_uint8((20, 30, 3))).save(tmp_path / "o.jpg", exif=exif)
    for name, shape in [("ramp16.png", (28, 28, 1)), ("o.jpg", (30, 20, 3))]:
        pixels, notes = images.read_image(tmp_path / name, shape[-1])
        assert notes and pixels.shape == shape
        (batch,) = image_folders.folder_dataset(
            [str(tmp_path / name)], shape, batch_size=1, shuffle=False
        )
        assert batch.shape == (1, *shape)
        np.testing.assert_allclose(batch[0].numpy() * 255, pixels, atol=1e-3)
        np.testing.assert_array_equal(np.round(batch[0].numpy() * 255), pixels)


def crop_offsets(crop, picture):
    """Where `crop` (h, w, C) lies in `picture`, as (top, left) pairs."""
    height, width = crop.shape[:2]
    return [
        (top, left)
        for top in range(picture.shape[0] - height + 1)
        for left in range(picture.shape[1] - width + 1)
        if np.array_equal(picture[top : top + height, left : left + width], crop)
    ]


def test_random_crops_are_windows_of_the_files_at_their_own_resolution(tmp_path):
    pictures = [random_uint8((40, 50, 3), seed) for seed in range(3)]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(tmp_path / f"{i}.png")
    Image.fromarray(random_uint8((6, 9, 3), 7)).save(tmp_path / "small.png")
    files = [str(tmp_path / f"{i}.png") for i in range(3)]

    def passes(shuffle):
        """The crops of two passes over one dataset, each sorted."""
        dataset = image_folders.folder_dataset(
            files,
            (8, 8, 3),
            7,
            shuffle=shuffle,
            seed=1,
            crop="random",
            crops_per_image=5,
        )
        return [
            np.concatenate([np.round(b.numpy() * 255) for b in dataset])
            for _ in range(2)
        ]

    first, second = passes(shuffle=True)
    assert first.shape == second.shape == (15, 8, 8, 3)
    # Every crop is a window of exactly one of the files (no resampling),
    # five of each file, at more than one place.
    found = [[i for i, p in enumerate(pictures) if crop_offsets(c, p)] for c in first]
    assert sorted(sum(found, [])) == [0] * 5 + [1] * 5 + [2] * 5
    assert len({crop_offsets(c, pictures[f[0]])[0] for c, f in zip(first, found)}) > 5
    # New crops each pass when shuffling; without, the same ones: a fixed
    # test set.
    assert not np.array_equal(np.sort(first, axis=0), np.sort(second, axis=0))
    fixed, again = passes(shuffle=False)
    np.testing.assert_array_equal(fixed, again)
    # ... whatever the process's global seed (a run's test set, cut in the
    # training process, must be the one a later evaluation cuts).
    keras.utils.set_random_seed(123)
    np.testing.assert_array_equal(passes(shuffle=False)[0], fixed)
    # A file smaller than a crop is scaled up to cover it first.
    (small,) = image_folders.folder_dataset(
        [str(tmp_path / "small.png")], (8, 8, 3), 4, crop="random", crops_per_image=4
    )
    assert small.shape == (4, 8, 8, 3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"crop": "centre"}, "crop must be one of"),
        ({"crop": "random", "crops_per_image": 0}, "positive integer"),
        ({"crops_per_image": 3}, 'applies to crop="random"'),
    ],
)
def test_bad_crop_settings_are_clear_errors(tmp_path, options, message):
    Image.fromarray(random_uint8((10, 10, 3))).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match=message):
        image_folders.folder_dataset([str(tmp_path / "a.png")], (8, 8, 3), **options)


def test_a_random_crop_run_is_evaluated_on_fixed_crops_of_its_held_out_files(
    tmp_path,
):
    for i in range(20):
        Image.fromarray(random_uint8((40, 30), i)).save(tmp_path / f"{i:02d}.png")
    config = {
        "preset": "mnist-dense",
        "image_dir": str(tmp_path),
        "crop": "random",
        "crops_per_image": 3,
    }
    images, labels, line = vae_tf.runs.run_test_images(config, 100)
    again, _, _ = vae_tf.runs.run_test_images(config, 100)
    # One held-out file (every 20th), three 28x28 crops of it at its own size.
    assert images.shape == (3, 28, 28, 1) and labels is None
    np.testing.assert_array_equal(images, again)
    held_out = np.asarray(Image.open(tmp_path / "19.png"))[..., None]
    for crop in np.round(images * 255):
        assert crop_offsets(crop, held_out)
    assert line.startswith("3 random crops of 1 held-out image files")
    with pytest.raises(ValueError, match="cut the files of an --image-dir"):
        vae_tf.runs.train("mnist-dense", tmp_path / "run", crop="random")


def test_folder_damaged_after_its_header_stops_with_an_error_naming_the_file(
    tmp_path,
):
    Image.fromarray(random_uint8((40, 50, 3))).save(tmp_path / "good.jpg")
    jpeg = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    files = image_folders.list_images(tmp_path)  # the header is fine
    assert [Path(f).name for f in files] == ["cut.jpg", "good.jpg"]
    dataset = image_folders.folder_dataset(files, (8, 8, 3), batch_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cut.jpg is truncated"):
        list(dataset)


def test_list_images_takes_what_pillow_reads_and_names_the_bad_files(tmp_path):
    rgb = random_uint8((6, 8, 3))
    for suffix in image_folders.IMAGE_SUFFIXES:
        Image.fromarray(rgb).save(tmp_path / f"image{suffix}")
    assert len(image_folders.list_images(tmp_path)) == 8
    (tmp_path / "empty.webp").write_bytes(b"")
    (tmp_path / "text.tiff").write_text("not an image")
    with pytest.raises(
        ValueError, match="2 file.*empty.webp is empty .*text.tiff is not"
    ):
        image_folders.list_images(tmp_path)


@pytest.mark.parametrize("columns, pad", [(1, 0), (3, 1), (3, 0), (7, 2), (8, 1)])
def test_tile_lays_images_out_row_by_row_with_black_after_the_last(columns, pad):
    images = np.random.default_rng(0).integers(1, 256, (7, 3, 4, 2), dtype=np.uint8)
    tiled = np.asarray(vae_tf.images.tile(images, columns, pad=pad))
    rows = -(-7 // columns)
    assert tiled.shape == (rows * (3 + pad) - pad, columns * (4 + pad) - pad, 2)
    for i in range(rows * columns):
        r, c = divmod(i, columns)
        place = tiled[
            r * (3 + pad) : r * (3 + pad) + 3, c * (4 + pad) : c * (4 + pad) + 4
        ]
        expected = images[i] if i < 7 else np.zeros_like(images[0])
        np.testing.assert_array_equal(place, expected)
    # The gaps and empty places are black, and nothing else (no pixel is 0).
    assert (tiled == 0).sum() == tiled.size - 7 * images[0].size
    # A batch of mosaics: leading axes are kept, inside a tf.data map too.
    batch = np.stack([images, images[::-1]])
    mapped = tf.data.Dataset.from_tensors(batch).map(
        lambda x: vae_tf.images.tile(x, columns, pad)
    )
    out = next(iter(mapped)).numpy()
    np.testing.assert_array_equal(out[0], tiled)
    np.testing.assert_array_equal(
        out[1], np.asarray(vae_tf.images.tile(images[::-1], columns, pad))
    )
