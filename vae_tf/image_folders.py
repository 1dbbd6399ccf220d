"""Your own images: a folder of image files as a streamed `tf.data` pipeline.

Files are listed once (recursively, in sorted order) and checked by their
headers; the pixels are read batch by batch as training runs, so a folder of
any size trains in constant memory. Each file is read by `vae_tf.images`
(`read_image`, convert policy: 16-bit samples scaled, transparency composited
on white, EXIF orientation applied, the first frame of an animation, colour to
grey for a greyscale model, grey to RGB for a colour one), then either
scaled so that its shorter side fits the model and centre-cropped to the
model's size (`crop="fit"`: the whole picture, small), or cut into random
crops of the model's size at the file's own resolution (`crop="random"`:
the statistics a codec that codes full-size pictures tile by tile meets).
"""

import functools
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from vae_tf import images

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "split_files",
    "folder_dataset",
    "fit_image",
    "CROPS",
]

CROPS = ("fit", "random")
# Random crops are mixed across files in a buffer of this many crops.
_CROP_SHUFFLE_BUFFER = 4096

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def list_images(directory) -> list:
    """The image files under `directory`, sorted, each checked by its header.

    A file is listed when its name ends in one of `IMAGE_SUFFIXES`; each is
    opened with Pillow without decoding its pixels
    (`vae_tf.images.check_image_file`), so a file damaged after its header is
    only found when training reads it (and stops with an error naming it).

    Args:
        directory: the folder, searched with its subfolders.

    Returns:
        The file paths, as strings, sorted.

    Raises:
        NotADirectoryError: `directory` is not a folder.
        ValueError: it holds no image file, or some of its image files cannot
            be decoded: empty, not images Pillow reads, or too large (listed in
            the message).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(
            "--image-dir must be a folder of image files (PNG, JPEG, ...). "
            f"Received: {directory}"
        )
    files = sorted(
        path
        for path in directory.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )
    if not files:
        raise ValueError(
            f"{directory} holds no image files: expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)} (in it or in its subfolders)."
        )
    unreadable = []
    for path in files:
        try:
            images.check_image_file(path)
        except (ValueError, OSError) as error:
            unreadable.append(str(error).rstrip("."))
    if unreadable:
        shown = "; ".join(unreadable[:5])
        more = f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        raise ValueError(
            f"{len(unreadable)} file(s) in {directory} could not be decoded as "
            f"images: {shown}{more}. Remove or replace them."
        )
    return [os.fspath(path) for path in files]


def split_files(files: list, test_every: int = 20) -> tuple:
    """Hold out every `test_every`-th file as a test set.

    Returns:
        `(train_files, test_files)`; with fewer than `test_every` files there
        is no held-out set and `test_files` is the training files themselves.
    """
    if len(files) < test_every:
        return list(files), list(files)
    test = files[test_every - 1 :: test_every]
    held_out = set(test)
    return [f for f in files if f not in held_out], test


def _read(path: bytes, channels: int):
    """`(pixels, error)` of one file: the reader's pixels and `""`, or no
    pixels and the reader's one-line error (raised in the graph by `_load`)."""
    try:
        pixels, _ = images.read_image(os.fsdecode(path), channels)
    except (ValueError, OSError) as error:
        return np.zeros((0, 0, channels), np.uint8), str(error)
    return pixels, ""


def _load(path, image_shape):
    height, width, _ = image_shape
    return fit_image(_read_pixels(path, image_shape[-1]), height, width)


def _read_pixels(path, channels: int):
    """The uint8 `(h, w, channels)` pixels of the file at `path` (a tensor)."""
    image, error = tf.numpy_function(
        functools.partial(_read, channels=channels),
        [path],
        (tf.uint8, tf.string),
        stateful=False,
    )
    # A refused file stops the pipeline with an InvalidArgumentError naming it.
    check = tf.debugging.Assert(tf.equal(error, ""), [error])
    with tf.control_dependencies([check]):
        image = tf.identity(image)
    image.set_shape((None, None, channels))  # (h, w, channels) uint8
    return image


def _random_crops(path, seed, image_shape, count: int, flips: bool = False):
    """`count` random `image_shape` crops of one file at its own resolution,
    float32 in [0, 1]; a file smaller than a crop is first scaled up so its
    shorter side fits (as `fit_image` scales). With `flips`, each crop is
    mirrored left to right with probability 1/2."""
    height, width, channels = image_shape
    image = _read_pixels(path, channels)
    size = tf.shape(image)[:2]
    image = tf.cond(
        tf.reduce_all(size >= [height, width]),
        lambda: tf.cast(image, tf.float32) / 255.0,
        lambda: _scale_to_cover(image, height, width),
    )
    room = tf.shape(image)[:2] - [height, width] + 1  # crop offsets: 0 .. room-1
    offsets = (
        tf.random.stateless_uniform(
            [count, 2],
            tf.stack([seed, tf.zeros_like(seed)]),
            minval=0,
            maxval=2**30,
            dtype=tf.int32,
        )
        % room
    )
    crops = tf.map_fn(
        lambda offset: tf.slice(
            image, [offset[0], offset[1], 0], [height, width, channels]
        ),
        offsets,
        fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32),
    )
    if not flips:
        return crops
    flipped = tf.random.stateless_uniform([count], tf.stack([seed, tf.ones_like(seed)]))
    return tf.where(flipped[:, None, None, None] < 0.5, crops[:, :, ::-1], crops)


def _scale_to_cover(image, height: int, width: int):
    """uint8 pixels scaled (area resampling) so that they cover `(height,
    width)`, float32 in [0, 1]."""
    image = tf.cast(image, tf.float32) / 255.0
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.reduce_max(tf.constant([height, width], tf.float32) / size)
    resized = tf.cast(tf.math.ceil(size * scale), tf.int32)
    image = tf.image.resize(image, resized, method="area", antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def fit_image(image, height: int, width: int):
    """An image scaled so its shorter side fits `(height, width)`, centre-cropped.

    Area resampling (antialiased), as training on a folder does.

    Args:
        image: uint8 `(h, w, channels)` pixels (numpy or a tensor).
        height, width: the size wanted.

    Returns:
        float32 `(height, width, channels)` in [0, 1].
    """
    image = _scale_to_cover(image, height, width)
    return tf.image.resize_with_crop_or_pad(image, height, width)


def folder_dataset(
    files: list,
    image_shape: tuple,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = None,
    drop_remainder: bool = False,
    crop: str = "fit",
    crops_per_image: int = 1,
    flips: bool = False,
) -> tf.data.Dataset:
    """Batches of the images in `files` at `image_shape`, floats in [0, 1].

    Each file is read, when its batch is made, by `vae_tf.images.read_image`
    (convert policy, with the model's channels), then (`crop="fit"`) scaled
    so that its shorter side fits `(height, width)` and centre-cropped to it,
    or (`crop="random"`) cut into `crops_per_image` random crops of
    `(height, width)` at the file's own resolution (new crops each pass over
    the data when `shuffle`, the same ones each pass otherwise), mixed
    across files when `shuffle`.

    Args:
        files: image paths (e.g. from `list_images`).
        image_shape: `(height, width, channels)` of the model.
        batch_size: images per batch.
        shuffle: reshuffle the file order every epoch.
        seed: shuffle seed.
        drop_remainder: drop the last, smaller batch.
        crop: `"fit"` or `"random"` (`CROPS`).
        crops_per_image: crops of each file per pass (`crop="random"` only).
        flips: mirror each random crop left to right with probability 1/2
            (`crop="random"` only).

    Returns:
        A `tf.data.Dataset` of `(batch, height, width, channels)` float32.
        Iterating it raises `tf.errors.InvalidArgumentError`, with the
        reader's message naming the file, at a file the reader refuses.

    Raises:
        ValueError: `files` is empty, or a bad `batch_size`, channel count,
            `crop` or `crops_per_image`.

    Example:

    >>> files = vae_tf.image_folders.list_images("photos/")
    >>> train = vae_tf.image_folders.folder_dataset(files, (32, 32, 3))
    """
    if not files:
        raise ValueError("files is empty: a dataset needs at least one image.")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(
            f"batch_size must be a positive integer. Received: {batch_size=}"
        )
    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ValueError(
            "image_shape must end in 1 (grey) or 3 (RGB) channels. "
            f"Received: image_shape={tuple(image_shape)}"
        )
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}. Received: {crop=}")
    if not isinstance(crops_per_image, int) or crops_per_image <= 0:
        raise ValueError(
            f"crops_per_image must be a positive integer. Received: {crops_per_image=}"
        )
    if crop == "fit" and crops_per_image != 1:
        raise ValueError(
            'crops_per_image (--crops-per-image) applies to crop="random" '
            f"(--crop random); a fitted image has one crop. Received: "
            f"{crops_per_image=}"
        )
    if crop == "fit" and flips:
        raise ValueError('flips applies to crop="random" (--crop random).')
    image_shape = (int(height), int(width), int(channels))
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    if crop == "random":
        return _random_crop_dataset(
            dataset,
            image_shape,
            batch_size,
            shuffle,
            seed,
            drop_remainder,
            crops_per_image,
            flips,
        )
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path: _load(path, image_shape),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )


def _random_crop_dataset(
    dataset, image_shape, batch_size, shuffle, seed, drop_remainder, count, flips
):
    """`folder_dataset`'s batches of random crops: each file read once a pass."""
    num_files = int(dataset.cardinality())
    if shuffle:
        dataset = dataset.shuffle(num_files, seed=seed, reshuffle_each_iteration=True)
    # A seed for each file's crops: new ones each pass when shuffling; fixed
    # ones otherwise, from `seed` and the file's place alone (a random op's
    # draws would also depend on the process's global seed, so a test set
    # would differ between a training process and a later evaluation).
    seed = 0 if seed is None else seed
    if shuffle:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    else:
        seeds = tf.data.Dataset.range(num_files).map(lambda i: i + seed * num_files)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(
        lambda path, crop_seed: _random_crops(
            path, crop_seed, image_shape, count, flips
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.unbatch()
    if shuffle:
        buffer = min(_CROP_SHUFFLE_BUFFER, num_files * count)
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )
