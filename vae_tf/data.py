"""Image datasets as `tf.data` pipelines: local `.npz`, tensorflow-datasets, bundled.

Three sources give the same arrays (uint8 images `(N, height, width,
channels)` and int labels):

- `"local"`: a folder of keras-layout files, `DIR/mnist.npz` and
  `DIR/cifar10.npz` (arrays `x_train`, `y_train`, `x_test`, `y_test`), given
  by `data_dir=` or the `VAE_TF_DATA_DIR` environment variable.
- `"tfds"`: `tensorflow_datasets.load`, which downloads on first use.
- `"bundled"`: a real MNIST subset shipped inside the package (10,000 train /
  2,000 test images), for machines that cannot download.

`source="auto"` (the default) takes the local folder when one is given, else
tensorflow-datasets when the data is already prepared or its download host
answers within a few seconds, else (MNIST only) the bundled subset, with a
warning. Offline, `tfds.load` would otherwise retry for minutes before failing.
"""

import dataclasses
import os
import socket
import warnings
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from vae_tf.images import tile

__all__ = [
    "DATASETS",
    "SOURCES",
    "DATA_DIR_ENV",
    "DatasetInfo",
    "load_arrays",
    "make_dataset",
    "load",
    "binarize",
    "resolve_source",
    "describe_source",
    "tile_batches",
]

DATA_DIR_ENV = "VAE_TF_DATA_DIR"
SOURCES = ("auto", "local", "tfds", "bundled")


class DataUnavailableError(RuntimeError):
    """No source can provide a dataset here: no local folder, no download, and
    (for CIFAR-10) no bundled copy. The message says what to do."""


SPLITS = ("train", "test")
BUNDLED_MNIST = Path(__file__).parent / "assets" / "mnist_subset.npz"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What vae_tf knows of a dataset: image shape, tfds download host
    (`host`, or `host:port`), title; `folder`: the dataset is a folder of
    the user's own image files (`--image-dir`), of any sizes, and
    `image_shape` is the size of the crops a model trains on."""

    image_shape: tuple
    num_classes: int
    download_host: str
    title: str = ""
    folder: bool = False


DATASETS = {
    "mnist": DatasetInfo((28, 28, 1), 10, "storage.googleapis.com", "MNIST"),
    "cifar10": DatasetInfo((32, 32, 3), 10, "www.cs.toronto.edu", "CIFAR-10"),
    "photos": DatasetInfo((128, 128, 3), 0, "", "photographs", folder=True),
}


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset. Expected one of {sorted(DATASETS)}. Received: "
            f"name={name!r}"
        )
    return DATASETS[name]


def _check_split(split: str):
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split. Expected one of {SPLITS}. Received: split={split!r}"
        )


def _host_answers(address: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to `address` (`host` for HTTPS's port 443, or
    `host:port`) opens within `timeout` seconds."""
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _tfds_prepared(name: str) -> bool:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name).is_prepared()
    except Exception:  # a broken tfds install means "not prepared", not a crash
        return False


def resolve_source(name: str, source: str = "auto", data_dir: str | None = None) -> str:
    """Decide, within a few seconds, which source `load` reads `name` from.

    Args:
        name: dataset name, `"mnist"` or `"cifar10"`.
        source: `"auto"`, `"local"`, `"tfds"` or `"bundled"`.
        data_dir: local folder of keras-layout `.npz` files; defaults to the
            `VAE_TF_DATA_DIR` environment variable.

    Returns:
        The concrete source: `"local"`, `"tfds"` or `"bundled"`.

    Raises:
        ValueError: for an unknown dataset or source, or `"bundled"` asked of a
            dataset other than MNIST.
        DataUnavailableError: (a `RuntimeError`) when `"auto"` finds no way
            to get the data, and for a folder dataset (`"photos"`), which
            only an image folder provides.
    """
    info = _info(name)
    if info.folder:
        raise DataUnavailableError(
            f"{name!r} is a folder of your own image files, not a dataset vae_tf "
            "downloads: pass it as --image-dir DIR (image_dir= in Python)."
        )
    if source not in SOURCES:
        raise ValueError(
            f"Unknown source. Expected one of {SOURCES}. Received: source={source!r}"
        )
    if source == "bundled" and name != "mnist":
        raise ValueError(
            f"Only MNIST is bundled with vae_tf. Received: name={name!r}, "
            "source='bundled'"
        )
    if source != "auto":
        return source
    if data_dir or os.environ.get(DATA_DIR_ENV):
        return "local"
    if _tfds_prepared(name) or _host_answers(info.download_host):
        return "tfds"
    if name == "mnist":
        return "bundled"
    raise DataUnavailableError(
        f"Cannot get {name!r}: no local folder was given (data_dir= or "
        f"${DATA_DIR_ENV}) "
        f"and tensorflow-datasets cannot reach {info.download_host}. Put a "
        "keras-layout "
        f"{name}.npz in a folder and set {DATA_DIR_ENV} to it."
    )


def _local_file(name: str, data_dir: str | None) -> Path:
    """The keras-layout file of `name` in `data_dir` (else `$VAE_TF_DATA_DIR`)."""
    folder = data_dir or os.environ.get(DATA_DIR_ENV)
    if not folder:
        raise ValueError(
            f"source='local' needs a folder: pass data_dir= or set {DATA_DIR_ENV}."
        )
    return Path(folder) / f"{name}.npz"


def describe_source(
    name: str, source: str = "auto", data_dir: str | None = None
) -> str:
    """Where `load_arrays(name, ..., data_dir, source)` reads the images, in words.

    Args:
        name: `"mnist"` or `"cifar10"`.
        source: `"auto"`, `"local"`, `"tfds"` or `"bundled"`; pass the source
            `resolve_source` chose, as `"auto"` decides again (which may take
            a few seconds).
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).

    Returns:
        The dataset's name and where it comes from, e.g.
        `"MNIST from /data/mnist.npz"`, `"MNIST from tensorflow-datasets"` or
        `"MNIST from the bundled subset"`.

    Raises:
        ValueError, DataUnavailableError: as `resolve_source`; `"local"` without a
            folder.

    Example:

    >>> vae_tf.data.describe_source("mnist", "bundled")
    'MNIST from the bundled subset'
    """
    chosen = resolve_source(name, source, data_dir)
    if chosen == "local":
        where = os.fspath(_local_file(name, data_dir))
    elif chosen == "tfds":
        where = "tensorflow-datasets"
    else:
        where = "the bundled subset"
    return f"{_info(name).title or name} from {where}"


def _as_nhwc(images: np.ndarray, name: str, where: str) -> np.ndarray:
    """Validate a uint8 image array of dataset `name` and give it a channel axis."""
    info = _info(name)
    if images.dtype != np.uint8:
        raise ValueError(
            f"{where}: images must be uint8 pixels in [0, 255]. "
            f"Received: dtype={images.dtype}"
        )
    if images.ndim == 3 and info.image_shape[-1] == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != info.image_shape:
        raise ValueError(
            f"{where}: {name} images must have shape (N, "
            f"{', '.join(map(str, info.image_shape))})"
            f" (a missing channel axis is allowed for grey images). "
            f"Received: shape={images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(
            f"{where}: the array holds no images. Received: shape={images.shape}"
        )
    return images


def _load_npz(path: Path, name: str, split: str):
    if not path.is_file():
        raise FileNotFoundError(
            f"No {name} data at {path}. Expected a keras-layout {path.name} with "
            f"x_{split} and y_{split} in that folder."
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable .npz file: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} is a single .npy array, not a keras-layout .npz archive."
        )
    with archive:
        missing = {f"x_{split}", f"y_{split}"} - set(archive.files)
        if missing:
            raise ValueError(
                f"{path}: missing arrays {sorted(missing)}; a keras-layout file has "
                f"x_train, y_train, x_test, y_test. Received: arrays={archive.files}"
            )
        try:
            images, labels = archive[f"x_{split}"], archive[f"y_{split}"]
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{path}: cannot read x_{split}/y_{split}: {error}"
            ) from error
    images = _as_nhwc(images, name, str(path))
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{path}: {images.shape[0]} images but {labels.shape[0]} labels in split "
            f"{split!r}."
        )
    return images, labels.astype(np.int64)


def _load_tfds(name: str, split: str):
    import tensorflow_datasets as tfds

    dataset = tfds.load(name, split=split, as_supervised=True).batch(10_000)
    batches = list(tfds.as_numpy(dataset))
    if not batches:
        raise ValueError(f"tfds {name}: split {split!r} holds no images.")
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return _as_nhwc(images, name, f"tfds {name}"), labels.astype(np.int64)


def load_arrays(
    name: str, split: str = "train", data_dir: str | None = None, source: str = "auto"
):
    """Load a whole split as numpy arrays.

    Args:
        name: `"mnist"` or `"cifar10"`.
        split: `"train"` or `"test"`.
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).
        source: `"auto"`, `"local"`, `"tfds"` or `"bundled"` (see the module doc).

    Returns:
        `(images, labels)`: uint8 `(N, height, width, channels)` and int64 `(N,)`.

    Raises:
        ValueError: unknown name, split or source; malformed arrays.
        FileNotFoundError: the local file is missing.
        DataUnavailableError: no source can provide the data.
    """
    _check_split(split)
    chosen = resolve_source(name, source, data_dir)
    if chosen == "local":
        return _load_npz(_local_file(name, data_dir), name, split)
    if chosen == "tfds":
        try:
            return _load_tfds(name, split)
        except Exception as error:
            if source == "tfds" or name != "mnist":
                raise
            warnings.warn(
                f"tensorflow-datasets could not load {name} ({error}); "
                "falling back to the bundled MNIST subset.",
                stacklevel=2,
            )
    elif source == "auto":
        warnings.warn(
            "No local data folder was given and tensorflow-datasets cannot download "
            f"MNIST from here: using the small MNIST subset bundled with vae_tf "
            f"(10,000 train / 2,000 test images). Set {DATA_DIR_ENV} to a folder with "
            "mnist.npz for the full dataset.",
            stacklevel=2,
        )
    return _load_npz(BUNDLED_MNIST, "mnist", split)


def binarize(images, seed: int = 0) -> np.ndarray:
    """One fixed Bernoulli sample of each pixel's intensity: `x_b ~ Bernoulli(x)`.

    Used for the test set of dynamically binarised MNIST, so that test
    likelihoods are computed on the same binary images every time.

    Args:
        images: uint8 pixels or floats in [0, 1].
        seed: seed of the sample.

    Returns:
        float32 array of 0s and 1s, the shape of `images`.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    uniform = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
    return (uniform < images).astype(np.float32)


def make_dataset(
    images,
    labels=None,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batch in-memory images into a `tf.data` pipeline of float32 in [0, 1].

    Batches are gathered from the whole array by index (one vectorised gather
    per batch instead of one op per image), reshuffled every epoch when
    `shuffle`, converted to float after batching, and two batches are
    prefetched (with tf.data's autotuner off: it costs more than it gains here).

    Args:
        images: uint8 pixels `(N, height, width, channels)`, or floats in [0, 1].
        labels: optional `(N,)` labels; batches are then `(images, labels)`.
        batch_size: images per batch.
        shuffle: reshuffle the order every epoch.
        seed: shuffle seed.
        drop_remainder: drop the last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `images` or `(images, labels)` batches.

    Raises:
        ValueError: for an empty array, a wrong rank, non-finite or out-of-range
            floats, a bad batch size or a labels/images length mismatch.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "images must have shape (N, height, width, channels). "
            f"Received: shape={images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty: a dataset needs at least one image.")
    if images.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise ValueError("images contains NaN or infinite values.")
        if images.min() < 0.0 or images.max() > 1.0:
            raise ValueError(
                "Float images must hold values in [0, 1]. "
                f"Received: values in [{images.min():g}, {images.max():g}]"
            )
        images, scale = images.astype(np.float32), 1.0
    else:
        raise ValueError(
            f"images must be uint8 or floats in [0, 1]. Received: dtype={images.dtype}"
        )
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(
            "batch_size must be a positive integer. Received: "
            f"batch_size={batch_size!r}"
        )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{images.shape[0]} images but {labels.shape[0]} labels: they must "
                "match."
            )
    num_images = images.shape[0]
    images_t = tf.constant(images)
    labels_t = None if labels is None else tf.constant(labels.astype(np.int64))

    def gather(indices):
        x = (
            tf.cast(tf.gather(images_t, indices), tf.float32) * scale
        )  # (batch, h, w, c)
        return x if labels_t is None else (x, tf.gather(labels_t, indices))

    indices = tf.data.Dataset.range(num_images)
    if shuffle:
        indices = indices.shuffle(num_images, seed=seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size, drop_remainder=drop_remainder).map(gather)
    # One gather per batch is cheap; what costs is tf.data's autotuner, whose
    # background work halved the training speed of whole epochs at random on
    # 2 cores (measured: epochs at ~11.7k or ~22k images/s). A fixed prefetch
    # of two batches keeps the step fed without it.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def tile_batches(dataset: tf.data.Dataset, grid: int) -> tf.data.Dataset:
    """Turn each batch of `B * grid**2` images into `B` mosaics of `grid x grid`.

    A fully convolutional model trained on small images sees mostly their
    borders; trained on mosaics, it also sees image interiors, as it will on
    large images. With a shuffled `dataset`, every epoch makes new mosaics.

    Args:
        dataset: batches of images `(B * grid**2, h, w, c)` (drop the remainder).
        grid: images per side of a mosaic.

    Returns:
        A dataset of `(B, grid * h, grid * w, c)` batches.
    """

    def to_mosaics(x):
        return tile(tf.reshape(x, (-1, grid * grid, *x.shape[1:])), grid)

    return dataset.map(to_mosaics)


def load(
    name: str,
    split: str = "train",
    batch_size: int = 128,
    data_dir: str | None = None,
    source: str = "auto",
    shuffle: bool | None = None,
    with_labels: bool = False,
    binarized: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Load a dataset split as a batched `tf.data` pipeline of floats in [0, 1].

    Args:
        name: `"mnist"` or `"cifar10"`.
        split: `"train"` or `"test"`.
        batch_size: images per batch.
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).
        source: `"auto"`, `"local"`, `"tfds"` or `"bundled"`.
        shuffle: reshuffle every epoch; defaults to `split == "train"`.
        with_labels: yield `(images, labels)` instead of images.
        binarized: replace each image by one fixed Bernoulli sample (`binarize`
            with `seed`, 0 if `None`): the standard binarised test set.
        seed: shuffle and binarisation seed.
        drop_remainder: drop the last, smaller batch.

    Returns:
        A `tf.data.Dataset`.

    Example:

    >>> train = vae_tf.data.load("mnist", "train", batch_size=128)
    >>> test = vae_tf.data.load("mnist", "test", binarized=True)
    """
    images, labels = load_arrays(name, split, data_dir=data_dir, source=source)
    if binarized:
        images = binarize(images, seed=0 if seed is None else seed)
    return make_dataset(
        images,
        labels if with_labels else None,
        batch_size=batch_size,
        shuffle=split == "train" if shuffle is None else shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
    )
