"""Your own images: a folder of PNG/JPEG files as a streamed `tf.data` pipeline.

Files are listed once (recursively, in sorted order) and checked by their
first bytes; the pixels are read, decoded and resized batch by batch as
training runs, so a folder of any size trains in constant memory. Each image
is scaled so that its shorter side fits the model, then centre-cropped to the
model's size (`(height, width)`), and converted to the model's channels (RGB
to grey for a greyscale model, grey to RGB for a colour one).
"""

import os
from pathlib import Path

import tensorflow as tf

__all__ = ["IMAGE_SUFFIXES", "list_images", "split_files", "folder_dataset"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def _signature(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    for magic, kind in _SIGNATURES.items():
        if head.startswith(magic):
            return kind
    return None


def list_images(directory) -> list:
    """The PNG and JPEG files under `directory`, sorted, each checked to be one.

    Raises:
        NotADirectoryError: `directory` is not a folder.
        ValueError: it holds no PNG/JPEG file, or some files named `.png` /
            `.jpg` / `.jpeg` are not PNG or JPEG data (listed in the message).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(
            f"--image-dir must be a folder of PNG or JPEG files. Received: {directory}"
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
    unreadable = [path for path in files if _signature(path) is None]
    if unreadable:
        shown = ", ".join(str(p) for p in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        raise ValueError(
            f"{len(unreadable)} file(s) in {directory} are not readable PNG or JPEG "
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


def _load(path, image_shape):
    height, width, channels = image_shape
    image = tf.io.decode_image(
        tf.io.read_file(path), channels=3, expand_animations=False
    )  # (h, w, 3) uint8: grey and palette files become RGB
    image.set_shape((None, None, 3))
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
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

    Args:
        files: image paths (e.g. from `list_images`).
        image_shape: `(height, width, channels)` of the model.
        batch_size: images per batch.
        shuffle: reshuffle the file order every epoch.
        seed: shuffle seed.
        drop_remainder: drop the last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `(batch, height, width, channels)` float32.

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
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path: _load(path, tuple(image_shape)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )
