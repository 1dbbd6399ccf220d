"""Image files in, uint8 pixels out: the package's one image reader.

Every path that takes a user's image file reads it here: `vae-tf compress`
(both codecs) and training on a folder (`vae-tf train --image-dir`). Pillow
opens the file (PNG, JPEG, WebP, GIF, BMP, TIFF and the rest it reads), except
16-bit PNGs, which Pillow reduces to 8 bits by keeping the high byte: those are
decoded with `tf.io.decode_png(..., dtype=tf.uint16)`.

There is one set of rules and two policies:

- **exact** (`exact=True`, lossless compression) refuses any file whose pixels
  cannot be given back bit for bit as an 8-bit PNG of the model's channels,
  with a one-line `ValueError` that names the file and the reason.
- **convert** (`exact=False`, lossy compression and training) converts such a
  file and says what it did in short notes, e.g. `"16-bit samples scaled to 8
  bits"`.

| file | exact | convert |
| --- | --- | --- |
| 1-bit, 8-bit grey, RGB | as it is (1-bit as 0/255) | the same |
| 16-bit grey/RGB/RGBA PNG, grey TIFF | refused | `round(v * 255 / 65535)` |
| 16-bit colour TIFF | refused | Pillow's high byte |
| 32-bit integer (`I`) or float (`F`) | refused | refused (no defined white) |
| alpha or tRNS, all opaque | alpha dropped | the same |
| alpha or tRNS, some transparent | refused | composited on white |
| palette without transparency | its colours | the same |
| CMYK, YCbCr, LAB, HSV | refused | converted to RGB by Pillow |
| EXIF orientation 2-8 | turned upright | the same |
| several frames or pages | refused | the first frame |
| colour, for a greyscale model | refused unless R == G == B | ITU-R 601 luma |
| grey, for a colour model | replicated to RGB | the same |
| empty, damaged, not an image | refused | refused |
| over `max_pixels` | refused before decoding | the same |

Damaged files are refused, never partially decoded: Pillow's
`ImageFile.LOAD_TRUNCATED_IMAGES` is left as it is (False unless changed).

`tile` is the package's one way of laying images side by side: figure grids
(`vae_tf.plotting.image_grid`), the codec benchmarks' mosaics
(`vae_tf.compression.baselines.mosaic`) and training on mosaics
(`vae_tf.data.tile_batches`).
"""

import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

__all__ = [
    "MAX_PIXELS",
    "GREY_TO_RGB",
    "check_image_file",
    "read_image",
    "read_images",
    "tile",
]

# Larger images are refused from their header, before any pixel is decoded.
MAX_PIXELS = 100_000_000
# The note of a grey file read for a colour model.
GREY_TO_RGB = "grey replicated to RGB"


def tile(images, columns: int, pad: int = 0):
    """Lay `N` images out in rows of `columns`, row by row, as one image.

    Works on arrays and tensors, eagerly or inside a `tf.data` map; leading
    axes before `N` are kept (a batch of mosaics). Places after the last image
    are black, and so are the `pad` pixels between images.

    Args:
        images: `(..., N, height, width, channels)` with static `N`, `height`,
            `width` and `channels`.
        columns: images per row (rows: `ceil(N / columns)`).
        pad: pixels between neighbouring images.

    Returns:
        A tensor `(..., rows * (height + pad) - pad, columns * (width + pad) -
        pad, channels)` of the images' dtype.

    Raises:
        ValueError: if `images` has fewer than 4 axes or `columns`/`pad` are
            out of range.
    """
    x = tf.convert_to_tensor(images)
    if x.shape.rank is None or x.shape.rank < 4:
        raise ValueError(
            "tile takes images shaped (..., N, height, width, channels). Received: "
            f"shape {tuple(x.shape)}"
        )
    if not (isinstance(columns, int) and columns > 0 and isinstance(pad, int)):
        raise ValueError(
            f"columns must be a positive integer and pad an integer. Received: "
            f"columns={columns!r}, pad={pad!r}"
        )
    if pad < 0:
        raise ValueError(f"pad must be 0 or more. Received: pad={pad}")
    n, height, width, channels = x.shape[-4:]
    rows = -(-n // columns)
    lead = tf.shape(x)[:-4]
    axes = x.shape.rank - 4
    if rows * columns > n:  # black places after the last image
        blank = tf.concat([lead, [rows * columns - n, height, width, channels]], 0)
        x = tf.concat([x, tf.zeros(blank, x.dtype)], axis=-4)
    x = tf.pad(x, [[0, 0]] * (axes + 1) + [[0, pad], [0, pad], [0, 0]])
    cell_h, cell_w = height + pad, width + pad
    x = tf.reshape(x, tf.concat([lead, [rows, columns, cell_h, cell_w, channels]], 0))
    order = list(range(axes))
    x = tf.transpose(x, order + [axes, axes + 2, axes + 1, axes + 3, axes + 4])
    x = tf.reshape(x, tf.concat([lead, [rows * cell_h, columns * cell_w, channels]], 0))
    return x[..., : rows * cell_h - pad, : columns * cell_w - pad, :]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ORIENTATION = 0x0112  # the EXIF Orientation tag
_BITS_PER_SAMPLE = 258  # the TIFF BitsPerSample tag
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
_RAW_SAMPLES = {"I": "32-bit integer", "F": "32-bit floating-point"}
# Errors Pillow and zlib raise on damaged data.
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# Pillow warns about big images through the process-wide warnings filters; the
# header is read under this lock so that concurrent readers (tf.data threads)
# never interleave their changes to the filters.
_HEADER_LOCK = threading.Lock()


def _refuse(path, reason: str) -> ValueError:
    """A one-line error: `"<path> <reason>."`."""
    return ValueError(f"{path} {' '.join(reason.split())}.")


def _png_header(path: Path):
    """`(width, height, bit_depth)` from a PNG's IHDR chunk, else `None`."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError as error:
        raise _refuse(path, f"cannot be read ({error.strerror})") from None
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIB", head[16:25])


def _check_pixels(path, width: int, height: int, max_pixels: int):
    if width * height > max_pixels:
        raise _refuse(
            path,
            f"is {width}x{height} pixels ({width * height:,}), over the limit of "
            f"{max_pixels:,} pixels (max_pixels); it was not decoded",
        )


def _open(path: Path, max_pixels: int, count_frames: bool):
    """Open `path` (its header only) and check it: `(image, frames, png_header)`."""
    if not path.exists():
        raise FileNotFoundError(f"No image file at {path}.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected an image file.")
    if path.stat().st_size == 0:
        raise _refuse(path, "is empty (0 bytes)")
    png = _png_header(path)
    if png is not None:
        _check_pixels(path, png[0], png[1], max_pixels)
    with _HEADER_LOCK, warnings.catch_warnings():
        # Our own limit is checked below, before anything is decoded.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except UnidentifiedImageError:
            raise _refuse(
                path,
                "is not a readable image (it is not an image file Pillow can read)",
            ) from None
        except (Image.DecompressionBombError, *_DAMAGED) as error:
            raise _damaged(path, error) from None
        try:
            _check_pixels(path, image.width, image.height, max_pixels)
            frames = _count_frames(image, path) if count_frames else 1
        except BaseException:
            image.close()
            raise
    return image, frames, png


def _damaged(path, error) -> ValueError:
    """The error for a file Pillow (or TensorFlow, `error` a message) refused."""
    reason = str(error).rstrip(".")
    if isinstance(error, Image.DecompressionBombError):
        return _refuse(
            path, f"is over the limit of pixels decoded ({reason}); it was not decoded"
        )
    return _refuse(path, f"is truncated or damaged ({reason})")


def _count_frames(image, path) -> int:
    try:
        return getattr(image, "n_frames", 1)
    except (Image.DecompressionBombError, *_DAMAGED) as error:
        raise _damaged(path, error) from None


def check_image_file(path, max_pixels: int = MAX_PIXELS) -> None:
    """Check that a file is an image Pillow reads, from its header only.

    Cheap: no pixel is decoded, so a file damaged after its header passes
    here and is refused by `read_image`.

    Args:
        path: the file.
        max_pixels: the largest `width * height` accepted.

    Raises:
        FileNotFoundError: `path` does not exist.
        IsADirectoryError: `path` is a directory.
        ValueError: the file is empty, not an image, or too large.
    """
    image, _, _ = _open(Path(path), max_pixels, count_frames=False)
    image.close()


def _transparency_key(image, samples: np.ndarray):
    """The alpha of a tRNS colour key (`info["transparency"]`), or `None`."""
    key = image.info.get("transparency")
    if isinstance(key, int):
        key = (key,)
    if not isinstance(key, tuple) or len(key) != samples.shape[-1]:
        return None
    maximum = np.iinfo(samples.dtype).max
    transparent = np.all(samples == np.asarray(key, samples.dtype), axis=-1)
    return np.where(transparent, 0, maximum).astype(samples.dtype)  # (h, w)


def _samples(image, path: Path, png, exact: bool, notes: list):
    """`(samples, alpha)` of a loaded image: `(h, w, 1 or 3)` and `(h, w)` or
    `None`, both uint8 or both uint16."""
    mode = image.mode
    if png is not None and png[2] == 16:
        decoded = tf.io.decode_png(path.read_bytes(), channels=0, dtype=tf.uint16)
        decoded = decoded.numpy()  # (h, w, 1 to 4) uint16, all 16 bits
        if decoded.shape[-1] in (2, 4):
            return decoded[..., :-1], decoded[..., -1]
        return decoded, _transparency_key(image, decoded)
    if mode in _RAW_SAMPLES:
        raise _refuse(
            path,
            f"has {_RAW_SAMPLES[mode]} samples (mode {mode}) with no defined black "
            "and white; save it with 8- or 16-bit samples",
        )
    bits = getattr(image, "tag_v2", {}).get(_BITS_PER_SAMPLE, (8,))
    bits = max(bits) if isinstance(bits, tuple) else bits
    if bits > 8 and mode not in _SIXTEEN_BIT_GREY:
        # Pillow keeps the high byte of these (e.g. 48-bit RGB TIFF).
        if exact:
            raise _refuse(
                path,
                f"has {bits}-bit samples; the lossless codec stores 8 bits per sample",
            )
        notes.append(
            f"{bits}-bit samples reduced to 8 bits (Pillow keeps the high byte)"
        )
    if mode == "1":
        grey = np.asarray(image.convert("L"))[..., None]  # 0 or 255
        return grey, None
    if mode in _SIXTEEN_BIT_GREY:
        grey = np.asarray(image).astype(np.uint16)[..., None]
        return grey, _transparency_key(image, grey)
    if mode in ("L", "RGB", "RGBX"):
        array = np.asarray(image.convert("RGB") if mode == "RGBX" else image)
        array = array.reshape(*array.shape[:2], -1)  # (h, w, 1 or 3)
        return array, _transparency_key(image, array)
    if mode in ("LA", "La"):
        grey_alpha = np.asarray(image.convert("LA"))
        return grey_alpha[..., :1], grey_alpha[..., 1]
    if mode in ("P", "PA", "RGBA", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"))  # a palette's tRNS included
        return rgba[..., :3], rgba[..., 3]
    if exact:
        raise _refuse(
            path, f"is a {mode} image; the lossless codec stores grey or RGB pixels"
        )
    try:
        rgb = np.asarray(image.convert("RGB"))
    except ValueError:
        raise _refuse(
            path, f"has pixel mode {mode}, which Pillow cannot convert to RGB"
        ) from None
    notes.append(f"{mode} converted to RGB")
    return rgb, None


def _to_8_bits(samples: np.ndarray) -> np.ndarray:
    """`round(v * 255 / 65535)` exactly, in integers (there are no ties)."""
    return ((samples.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _on_white(samples: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite on white, rounded once: `round(255 * (c a + M (M - a)) / M**2)`.

    `M` is the largest sample (255 or 65535); `c` and `a` are the stored
    sample and alpha.
    """
    maximum = int(np.iinfo(samples.dtype).max)
    wide = np.uint32 if maximum == 255 else np.uint64  # holds 255 M**2
    c = samples.astype(wide)
    a = alpha[..., None].astype(wide)
    numerator = (c * a + maximum * (maximum - a)) * 255
    return ((numerator + maximum**2 // 2) // maximum**2).astype(np.uint8)


def _upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """`array` (h, w, ...) turned as `PIL.ImageOps.exif_transpose` turns it."""
    if orientation in (5, 6, 7, 8):
        array = array.swapaxes(0, 1)
    if orientation in (2, 3, 6, 7):
        array = array[:, ::-1]
    if orientation in (3, 4, 7, 8):
        array = array[::-1]
    return array


def read_image(
    path, channels: int, exact: bool = False, max_pixels: int = MAX_PIXELS
) -> tuple:
    """Read one image file as uint8 pixels with the model's channels.

    The module docstring (and the README's "Image files" section) lists what
    each kind of file gets. Files with several frames give their first frame;
    16-bit samples are scaled with rounding, `round(v * 255 / 65535)`;
    transparent pixels are composited on white, `round(c a / 255 + 255 - a)`
    in 8 bits; colour becomes grey with Pillow's ITU-R 601 luma,
    `(19595 R + 38470 G + 7471 B + 32768) >> 16`. Files with 32-bit integer or
    float samples are refused under both policies: their black and white
    levels are not defined. An image whose pixels all have R == G == B is
    grey, with no note.

    Args:
        path: the image file.
        channels: the model's channels, 1 (grey) or 3 (RGB).
        exact: refuse (rather than convert) any file whose pixels cannot be
            given back bit for bit as an 8-bit PNG with `channels` channels.
        max_pixels: the largest `width * height` decoded, checked from the
            header first.

    Returns:
        `(pixels, notes)`: uint8 `(height, width, channels)`, upright, and a
        list of short notes of what was done (empty when the file was used as
        it is), e.g. `["16-bit samples scaled to 8 bits"]`.

    Raises:
        FileNotFoundError: `path` does not exist.
        IsADirectoryError: `path` is a directory.
        ValueError: the file is empty, damaged, not an image, too large, or
            (exact, or for any policy where said above) cannot be read as the
            model's pixels; the one-line message names the file and why.

    Example:

    >>> pixels, notes = vae_tf.images.read_image("scan.png", channels=1)
    >>> notes
    ['16-bit samples scaled to 8 bits']
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
    path = Path(path)
    image, frames, png = _open(path, max_pixels, count_frames=True)
    notes = []
    with image:
        if frames > 1:
            if exact:
                raise _refuse(
                    path,
                    f"has {frames} frames (an animation or several pages); the "
                    "lossless codec stores one still image per file",
                )
            notes.append(f"first of {frames} frames")
        try:
            image.load()
            orientation = image.getexif().get(_ORIENTATION, 1)
        except (Image.DecompressionBombError, *_DAMAGED) as error:
            raise _damaged(path, error) from None
        try:
            samples, alpha = _samples(image, path, png, exact, notes)
        except tf.errors.OpError as error:
            raise _damaged(path, error.message) from None
    if samples.dtype == np.uint16:
        if exact:
            raise _refuse(
                path, "has 16-bit samples; the lossless codec stores 8 bits per sample"
            )
        notes.append("16-bit samples scaled to 8 bits")
    maximum = np.iinfo(samples.dtype).max
    if alpha is not None and (alpha < maximum).any():
        if exact:
            raise _refuse(
                path, "has transparent pixels; the lossless codec stores opaque pixels"
            )
        samples = _on_white(samples, alpha)
        notes.append("transparent pixels composited on white")
    elif samples.dtype == np.uint16:
        samples = _to_8_bits(samples)
    if orientation in range(2, 9):
        samples = _upright(samples, orientation)
        verb = "rotated" if orientation in (3, 6, 8) else "flipped"
        notes.append(f"{verb} upright (EXIF orientation {orientation})")
    if channels == 1 and samples.shape[-1] == 3:
        r, g, b = (samples[..., i] for i in range(3))
        if np.array_equal(r, g) and np.array_equal(g, b):
            samples = samples[..., :1]
        elif exact:
            raise _refuse(path, "is a colour image; this model codes greyscale images")
        else:
            luma = (
                19595 * r.astype(np.uint32)
                + 38470 * g.astype(np.uint32)
                + 7471 * b.astype(np.uint32)
                + 0x8000
            ) >> 16
            samples = luma.astype(np.uint8)[..., None]
            notes.append("colour converted to grey (ITU-R 601 luma)")
    elif channels == 3 and samples.shape[-1] == 1:
        samples = np.repeat(samples, 3, axis=-1)
        notes.append(GREY_TO_RGB)
    return np.ascontiguousarray(samples, dtype=np.uint8), notes


def read_images(
    paths, image_shape, exact: bool = False, max_pixels: int = MAX_PIXELS
) -> tuple:
    """Read image files for a model that takes `image_shape` images.

    Each file is read by `read_image` (see it for the rules); all files are
    read before anything is returned, so a refused file stops the whole batch.

    Args:
        paths: the image files.
        image_shape: `(height, width, channels)` of the model; `height` and
            `width` may be `None` for a model that takes any size.
        exact: the exact policy (lossless compression) rather than convert.
        max_pixels: the largest `width * height` of a file.

    Returns:
        `(images, notes)`: a list of uint8 `(height, width, channels)` arrays
        and, for each, the list of notes of what was done.

    Raises:
        FileNotFoundError: a path does not exist.
        IsADirectoryError: a path is a directory.
        ValueError: no paths, or a file is refused or has the wrong size.
    """
    height, width, channels = image_shape
    if not paths:
        raise ValueError("No image files given.")
    images, notes = [], []
    for path in paths:
        image, image_notes = read_image(path, channels, exact, max_pixels)
        if height is not None and image.shape[:2] != (height, width):
            raise ValueError(
                f"{path} is {image.shape[1]}x{image.shape[0]} pixels; this model "
                f"codes {width}x{height} images."
            )
        images.append(image)
        notes.append(image_notes)
    return images, notes
