"""Image files in, `.vtfz` files out, and back: what `vae-tf compress` runs.

Images are read with Pillow (PNG, or anything Pillow reads) and written back
as PNG. Outputs are written to a temporary file and renamed into place, so a
failure never leaves a half-written file behind.
"""

import os
from pathlib import Path

import keras
import numpy as np

from vae_tf.compression import container
from vae_tf.compression.bitsback import BitsBackCodec
from vae_tf.compression.lossy import LossyCodec

__all__ = ["read_images", "compress_files", "decompress_file", "PROGRESS_FROM"]

# Batches of at least this many images show a progress bar.
PROGRESS_FROM = 1000


def _pillow():
    from PIL import Image, UnidentifiedImageError

    return Image, UnidentifiedImageError


def read_images(paths, image_shape) -> list:
    """Read image files as uint8 `(height, width, channels)` arrays, with clear
    errors.

    Greyscale models take greyscale files (`L`, `1` or palette images that
    are grey); colour models take RGB (or RGBA that is fully opaque).
    `image_shape` is `(height, width, channels)`; `height` and `width` may be
    `None` for a model that takes any size.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a file is unreadable, or has the wrong size or colours.
    """
    Image, UnidentifiedImageError = _pillow()
    height, width, channels = image_shape
    if not paths:
        raise ValueError("No image files given.")
    images = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No image file at {path}.")
        try:
            with Image.open(path) as image:
                image.load()
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path} is not a readable image: {error}") from None
        array = np.asarray(image.convert("RGBA"))
        if (array[..., 3] != 255).any():
            raise ValueError(
                f"{path} has transparent pixels; expected an opaque image."
            )
        rgb = array[..., :3]
        if channels == 1:
            if not (
                np.array_equal(rgb[..., 0], rgb[..., 1])
                and np.array_equal(rgb[..., 0], rgb[..., 2])
            ):
                raise ValueError(
                    f"{path} is a colour image; this model codes greyscale images."
                )
            array = rgb[..., :1]
        else:
            array = rgb
        if height is not None and array.shape[:2] != (height, width):
            raise ValueError(
                f"{path} is {array.shape[1]}x{array.shape[0]} pixels; this model "
                f"codes {width}x{height} images."
            )
        images.append(array)
    return images


def _write_atomically(path: Path, write):
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _progress(total: int, verbose: bool):
    if not verbose or total < PROGRESS_FROM:
        return None
    bar = keras.utils.Progbar(total, unit_name="image")
    return lambda count: bar.add(count)


def compress_files(model, paths, output, lossless: bool = True, verbose: bool = True):
    """Compress image files into one `.vtfz` file.

    `lossless` codes with bits-back (`BitsBackCodec`, any trained VAE with a
    supported likelihood and its image size), otherwise with the lossy codec
    (`LossyCodec`, a trained `LossyVAE`, images of any size).

    Returns:
        A dict of figures: `images`, `bytes`, `bits_per_dim` (whole file) and,
        lossless, the coder's `net_bits_per_dim`; lossy, `bits_per_pixel`.
    """
    output = Path(output)
    if output.is_dir():
        raise IsADirectoryError(f"-o must be a file path, not a directory: {output}")
    if lossless:
        if hasattr(model, "synthesis"):
            raise ValueError(
                "This model is a lossy codec (a LossyVAE): it has no likelihood of "
                "the pixels to code them losslessly. Drop --lossless, or use a VAE "
                "run such as mnist-8bit."
            )
        codec = BitsBackCodec(model)
        images = codec.check_images(np.stack(read_images(paths, codec.image_shape)))
        payload, stats = codec.encode(images, progress=_progress(len(images), verbose))
        data = codec.pack(payload, len(images))
        extra = {"net_bits_per_dim": stats["bits_per_dim"]}
    else:
        codec = LossyCodec(model)
        images = read_images(paths, (None, None, codec.channels))
        data = codec.compress(images)
        pixels = sum(image.shape[0] * image.shape[1] for image in images)
        extra = {"bits_per_pixel": 8 * len(data) / pixels}
    _write_atomically(output, lambda tmp: tmp.write_bytes(data))
    values = sum(image.size for image in images)
    return {
        "images": len(images),
        "bytes": len(data),
        "bits_per_dim": 8 * len(data) / values,
        **extra,
    }


def decompress_file(model, path, out_dir, overwrite: bool = False, verbose=True):
    """Decode a `.vtfz` file into `out_dir/00000.png`, ... (the input order).

    Nothing is written unless the whole file decodes.

    Returns:
        The paths written.
    """
    Image, _ = _pillow()
    path, out_dir = Path(path), Path(out_dir)
    if not path.is_file():
        raise FileNotFoundError(f"No compressed file at {path}.")
    data = path.read_bytes()
    if container.unpack(data).kind == container.LOSSY:
        images = LossyCodec.decompress_bytes(model, data)
    else:
        codec, parsed = BitsBackCodec.from_file(model, data)
        images = codec.decode(
            parsed.payload,
            parsed.num_images,
            progress=_progress(parsed.num_images, verbose),
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"-o must be a directory. Received: {out_dir}")
    digits = max(5, len(str(len(images) - 1)))
    names = [out_dir / f"{i:0{digits}d}.png" for i in range(len(images))]
    existing = [name for name in names if name.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists ({len(existing)} of the outputs do). "
            "Choose another directory or pass --overwrite."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images):
        array = image[..., 0] if image.shape[-1] == 1 else image
        _write_atomically(
            name, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG")
        )
    return names
