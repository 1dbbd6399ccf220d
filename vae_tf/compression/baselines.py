"""Classical codecs measured the same way as ours: whole files, same images.

Rates count every byte a codec writes (headers included). Lossy quality is
PSNR (`vae_tf.evaluation.psnr_per_image`) and MS-SSIM
(`tf.image.ssim_multiscale`) of the 8-bit decoded image, averaged over
images. Small images are dominated by JPEG's and WebP's headers, so
comparisons use mosaics of test images (`mosaic`).
"""

import io

import numpy as np
import tensorflow as tf

from vae_tf.evaluation import psnr_per_image
from vae_tf.images import tile

__all__ = [
    "mosaic",
    "mosaics",
    "pillow_round_trip",
    "image_quality",
    "classical_sweep",
    "psnr_at_rate",
    "LOSSY_FORMATS",
]

# Pillow's save options per format: JPEG with 4:2:0 chroma subsampling, as
# photos are usually saved; WebP with its default method.
LOSSY_FORMATS = {
    "jpeg": {"format": "JPEG", "subsampling": "4:2:0"},
    "webp": {"format": "WEBP"},
}


def mosaic(images, columns: int) -> np.ndarray:
    """Tile `(N, h, w[, c])` uint8 images into one image, row by row, black
    after the last (`vae_tf.images.tile`)."""
    images = np.asarray(images)
    if images.ndim == 3:
        return np.asarray(tile(images[..., None], columns))[..., 0]
    return np.asarray(tile(images, columns))


def mosaics(images, count: int, grid: int = 8) -> np.ndarray:
    """`count` mosaics of `grid x grid` consecutive images: `(count, H, W, c)`."""
    per = grid * grid
    if len(images) < count * per:
        raise ValueError(
            f"{count} mosaics of {grid}x{grid} need {count * per} images. "
            f"Received: {len(images)}"
        )
    return np.stack(
        [mosaic(images[i * per : (i + 1) * per], grid) for i in range(count)]
    )


def pillow_round_trip(image: np.ndarray, **options) -> tuple:
    """Encode one uint8 image with Pillow; return `(file bytes, decoded image)`.

    The decoded image has the original's shape: a format that stores grey as
    RGB (WebP) is read back as grey.
    """
    from PIL import Image

    buffer = io.BytesIO()
    squeeze = image.ndim == 3 and image.shape[-1] == 1
    grey = image.ndim == 2 or squeeze
    Image.fromarray(image[..., 0] if squeeze else image).save(buffer, **options)
    data = buffer.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("L" if grey else "RGB"))
    return data, decoded.reshape(image.shape)


def image_quality(decoded, originals) -> dict:
    """Mean PSNR (dB) and MS-SSIM of uint8 images against the originals.

    Args:
        decoded, originals: uint8 `(N, H, W, C)` arrays, or lists of `(H, W,
            C)` images of any sizes (each decoded image the size of its
            original).

    Returns:
        `{"psnr_db", "ms_ssim"}`, each the mean over the images. MS-SSIM
        needs images of at least 161 pixels a side (5 scales of an 11-pixel
        window); if one is smaller it is `None`.
    """
    if isinstance(originals, np.ndarray) and isinstance(decoded, np.ndarray):
        pairs = [(decoded, originals)]  # one batch
    else:
        pairs = [(d[None], o[None]) for d, o in zip(decoded, originals)]
    large = all(min(np.shape(o)[1:3]) >= 161 for _, o in pairs)
    psnr, ms_ssim = [], []
    for d, o in pairs:
        d = tf.convert_to_tensor(np.asarray(d), tf.uint8)
        o = tf.convert_to_tensor(np.asarray(o), tf.uint8)
        psnr.append(psnr_per_image(d, o, max_val=255).numpy())
        if large:
            ms_ssim.append(tf.image.ssim_multiscale(d, o, max_val=255).numpy())
    return {
        "psnr_db": float(np.mean(np.concatenate(psnr))),
        "ms_ssim": float(np.mean(np.concatenate(ms_ssim))) if large else None,
    }


def classical_sweep(images, codec: str, qualities) -> list:
    """Rate and quality of a Pillow codec at each quality setting.

    Args:
        images: uint8 `(N, H, W, c)` (e.g. `mosaics`), or a list of `(H, W,
            c)` images of any sizes (e.g. photographs), one file each.
        codec: a key of `LOSSY_FORMATS` (`"jpeg"` or `"webp"`).
        qualities: Pillow `quality` settings.

    Returns:
        One dict per quality: `codec`, `quality`, `bytes` (all files),
        `bits_per_pixel` (8 x bytes / pixels), `psnr_db`, `ms_ssim` (means
        over the images, `image_quality`).
    """
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    points = []
    for quality in qualities:
        sizes, decoded = [], []
        for image in images:
            data, out = pillow_round_trip(
                image, quality=int(quality), **LOSSY_FORMATS[codec]
            )
            sizes.append(len(data))
            decoded.append(out)
        if isinstance(images, np.ndarray):
            decoded = np.stack(decoded)
        points.append(
            {
                "codec": codec,
                "quality": int(quality),
                "bytes": int(sum(sizes)),
                "bits_per_pixel": 8 * sum(sizes) / pixels,
                **image_quality(decoded, images),
            }
        )
    return points


def psnr_at_rate(points: list, bits_per_pixel: float) -> float | None:
    """A codec's PSNR at a rate, linearly interpolated between measured points.

    `None` outside the measured range (no extrapolation).
    """
    rates = np.array([p["bits_per_pixel"] for p in points])
    order = np.argsort(rates)
    rates = rates[order]
    psnrs = np.array([p["psnr_db"] for p in points])[order]
    if not rates[0] <= bits_per_pixel <= rates[-1]:
        return None
    return float(np.interp(bits_per_pixel, rates, psnrs))
