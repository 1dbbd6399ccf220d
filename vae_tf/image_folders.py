"""Your own images: a folder of image files as a streamed `tf.data` pipeline.

Files are listed once (recursively, in sorted order) and checked by their
headers; the pixels are read batch by batch as training runs, so a folder of
any size trains in constant memory. Each file is read by `vae_tf.images`
(`read_image`, convert policy: 16-bit samples scaled, transparency composited
on white, EXIF orientation applied, the first frame of an animation, colour to
grey for a greyscale model, grey to RGB for a colour one), then scaled so that
its shorter side fits the model and centre-cropped to the model's size
(`(height, width)`).
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
]

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
    height, width, channels = image_shape
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
    return fit_image(image, height, width)


def fit_image(image, height: int, width: int):
    """An image scaled so its shorter side fits `(height, width)`, centre-cropped.

    Area resampling (antialiased), as training on a folder does.

    Args:
        image: uint8 `(h, w, channels)` pixels (numpy or a tensor).
        height, width: the size wanted.

    Returns:
        float32 `(height, width, channels)` in [0, 1].
    """
    image = tf.cast(image, tf.float32) / 255.0
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.reduce_max(tf.constant([height, width], tf.float32) / size)
    resized = tf.cast(tf.math.ceil(size * scale), tf.int32)
    image = tf.image.resize(image, resized, method="area", antialias=True)
    image = tf.image.resize_with_crop_or_pad(image, height, width)
    return tf.clip_by_value(image, 0.0, 1.0)  # (height, width, channels)


def folder_dataset(
    files: list,
    image_shape: tuple,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of the images in `files`, resized to `image_shape`, floats in [0, 1].

    Each file is read, when its batch is made, by `vae_tf.images.read_image`
    (convert policy, with the model's channels), then scaled so that its
    shorter side fits `(height, width)` and centre-cropped to it.

    Args:
        files: image paths (e.g. from `list_images`).
        image_shape: `(height, width, channels)` of the model.
        batch_size: images per batch.
        shuffle: reshuffle the file order every epoch.
        seed: shuffle seed.
        drop_remainder: drop the last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `(batch, height, width, channels)` float32.
        Iterating it raises `tf.errors.InvalidArgumentError`, with the
        reader's message naming the file, at a file the reader refuses.

    Raises:
        ValueError: `files` is empty, or a bad `batch_size` or channel count.

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
    image_shape = (int(height), int(width), int(channels))
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
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
