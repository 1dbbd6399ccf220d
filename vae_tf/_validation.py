"""Argument checks with Keras-style messages: constructors' arguments, and
model inputs checked in graph mode as well as eagerly."""

import collections.abc
import inspect
import warnings

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "positive_int",
    "non_negative_int",
    "positive_ints",
    "float_images",
    "assert_images",
    "check_images",
    "check_sampling",
    "class_ids",
    "assert_positive",
    "one_label_each",
    "CheckedData",
]


def positive_int(name: str, value) -> int:
    """Return `value` if it is a positive int, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}"
        )
    return value


def non_negative_int(name: str, value) -> int:
    """Return `value` if it is an int >= 0, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{name} must be a non-negative integer. Received: {name}={value!r}"
        )
    return value


def positive_ints(name: str, values, example: str = "(512, 256)", min_length=0):
    """Return `values` as a tuple if it holds positive ints, else raise a ValueError."""
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) < min_length
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values)
    ):
        raise ValueError(
            f"{name} must be a tuple of positive integers such as {example}. "
            f"Received: {name}={values!r}"
        )
    return values


def decoder_param_shape(
    param_shape, output_channels=None, image_size=None, owner="ConvDecoder"
) -> tuple:
    """`(image_size, params_per_pixel)` of a convolutional decoder.

    `param_shape` is `(height, width, params_per_pixel)`, height and width
    `None` for a decoder of any size, as every decoder takes it. The 0.1
    arguments `output_channels` (also an int in `param_shape`'s place) and
    `image_size` still work until 0.3, with a `DeprecationWarning`.

    Raises:
        ValueError: for a malformed shape, or both forms at once.
    """
    if isinstance(param_shape, int) and not isinstance(param_shape, bool):
        param_shape, output_channels = None, param_shape  # 0.1's positional form
    if output_channels is not None or image_size is not None:
        if param_shape is not None:
            raise ValueError(
                f"Give {owner} param_shape=(height, width, params_per_pixel) only. "
                f"Received: param_shape={param_shape!r} and the 0.1 arguments "
                f"output_channels={output_channels!r}, image_size={image_size!r}"
            )
        warnings.warn(
            f"{owner}(output_channels, image_size) is now {owner}(param_shape="
            "(height, width, params_per_pixel)), with None for the sizes of a "
            "decoder of any size, as every decoder takes it. The old arguments "
            "go in 0.3.",
            DeprecationWarning,
            stacklevel=3,
        )
        height, width = (None, None) if image_size is None else tuple(image_size)
        param_shape = (height, width, output_channels)
    example = "(28, 28, 1), or (None, None, 100) for any size"
    try:
        height, width, channels = param_shape
    except (TypeError, ValueError):
        raise ValueError(
            f"param_shape must be (height, width, params_per_pixel) such as "
            f"{example}. Received: param_shape={param_shape!r}"
        ) from None
    channels = positive_int("param_shape's params_per_pixel", channels)
    if height is None and width is None:
        return None, channels
    return positive_ints("param_shape's (height, width)", (height, width), example), (
        channels
    )


# Input checks that hold in graph mode too: the public methods check their
# inputs eagerly with clear errors; these make the same checks inside a traced
# step (fit, evaluate), a tf.data pipeline or an exported SavedModel, as
# assertions whose messages carry the same text. (XLA drops assertions, which
# is why fit's data are checked in their tf.data pipeline.)


def check_images(x, image_shape=None, name: str = "x"):
    """Check a batch of images eagerly and return it as a float32 tensor.

    Args:
        x: images, shape `(batch, height, width, channels)`, floats in [0, 1].
        image_shape: the expected `(height, width, channels)`, or `None`.
        name: the argument's name, used in error messages.

    Returns:
        `x` as a float32 `tf.Tensor`.

    Raises:
        ValueError: for a wrong rank or shape, an empty batch, non-finite
            values or values outside [0, 1].
        TypeError: for a non-floating dtype (e.g. uint8 pixels not yet
            scaled to [0, 1]).
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        hint = " Divide uint8 pixels by 255." if dtype == tf.uint8 else ""
        raise TypeError(
            f"{name} must hold floating-point pixels in [0, 1].{hint} "
            f"Received: {name}.dtype={dtype.name}"
        )
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4:
        raise ValueError(
            f"{name} must be a batch of images of shape (batch, height, width, "
            f"channels). Received: {name}.shape={tuple(x.shape)}"
        )
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{name} must hold images of shape {tuple(image_shape)}. "
            f"Received: {name}.shape={tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"{name} is an empty batch. Received: {name}.shape={tuple(x.shape)}"
        )
    if not tf.executing_eagerly():
        return assert_images(x, name)  # the same checks, as assertions
    if not bool(tf.reduce_all(tf.math.is_finite(x))):
        raise ValueError(f"{name} contains NaN or infinite values.")
    low, high = float(tf.reduce_min(x)), float(tf.reduce_max(x))
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} must hold pixel values in [0, 1]. "
            f"Received: values in [{low:g}, {high:g}]"
        )
    return x


def check_sampling(num_samples, temperature) -> tuple:
    """`(num_samples, temperature)` as an int and a float, checked eagerly.

    Raises:
        ValueError: `num_samples` not a positive integer, or `temperature`
            not a positive finite number.
    """
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, (int, np.integer))
        or num_samples <= 0
    ):
        raise ValueError(
            "num_samples must be a positive integer. Received: "
            f"num_samples={num_samples!r}"
        )
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(
            "temperature must be a positive number. Received: "
            f"temperature={temperature!r}"
        )
    return int(num_samples), float(temperature)


def float_images(x, name: str = "x"):
    """`x` as a float tensor, refusing integer pixels at trace time.

    Raises:
        TypeError: `x` is not floating point (e.g. uint8 pixels not yet
            divided by 255).
    """
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        hint = " Divide uint8 pixels by 255." if x.dtype == tf.uint8 else ""
        raise TypeError(
            f"{name} must hold floating-point pixels in [0, 1].{hint} "
            f"Received: {name}.dtype={x.dtype.name}"
        )
    return x


def assert_images(x, name: str = "x"):
    """`x` (float images) with assertions that it is finite and in [0, 1].

    Returns:
        `x`, to be used in place of the input so the assertions run.

    Raises:
        TypeError: as `float_images`.
        tf.errors.InvalidArgumentError: when run on non-finite values or
            values outside [0, 1] (eagerly: at once).
    """
    x = float_images(x, name)
    checks = [
        tf.debugging.assert_all_finite(x, f"{name} contains NaN or infinite values."),
        tf.debugging.assert_greater_equal(
            x,
            tf.zeros((), x.dtype),
            message=f"{name} must hold pixel values in [0, 1]",
        ),
        tf.debugging.assert_less_equal(
            x, tf.ones((), x.dtype), message=f"{name} must hold pixel values in [0, 1]"
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(x)


def class_ids(labels, num_classes: int, name: str = "labels"):
    """Int class ids `(batch,)` in `[0, num_classes)`, checked in any mode.

    Accepts int labels of shape `(batch,)` or `(batch, 1)`, and floats that
    hold whole numbers. Eagerly, a bad value raises a `ValueError`; in a
    graph, an assertion with the same message.

    Raises:
        ValueError: a shape other than `(batch,)` / `(batch, 1)` (one-hot
            labels included), or (eagerly) non-whole or out-of-range values.
        TypeError: labels that are neither integers nor floats.
        tf.errors.InvalidArgumentError: in a graph, non-whole or out-of-range
            values.
    """
    labels = tf.convert_to_tensor(labels)
    shape = labels.shape
    expected = f"{name} must be int class ids of shape (batch,), in [0, {num_classes})"
    if shape.rank is not None and (
        shape.rank > 2 or (shape.rank == 2 and shape[-1] not in (1, None))
    ):
        hint = (
            " These look like one-hot labels: pass their argmax."
            if shape.rank == 2 and shape[-1] == num_classes
            else ""
        )
        raise ValueError(f"{expected}. Received: {name}.shape={tuple(shape)}.{hint}")
    if not (labels.dtype.is_integer or labels.dtype.is_floating):
        raise TypeError(f"{expected}. Received: {name}.dtype={labels.dtype.name}")
    labels = tf.reshape(labels, (-1,))
    range_message = f"{name} must be in [0, {num_classes})"
    if tf.executing_eagerly():
        values = labels.numpy()
        if values.size and not np.all(values == np.round(values)):
            raise ValueError(f"{expected}. Received: non-integer values")
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{range_message}. Received: values in "
                f"[{values.min():g}, {values.max():g}]"
            )
        return tf.cast(labels, tf.int32)
    checks = [
        tf.debugging.assert_greater_equal(
            labels, tf.zeros((), labels.dtype), message=range_message
        ),
        tf.debugging.assert_less(
            labels, tf.cast(num_classes, labels.dtype), message=range_message
        ),
    ]
    if labels.dtype.is_floating:
        checks.append(
            tf.debugging.assert_equal(
                labels, tf.round(labels), message=f"{expected} (whole numbers)"
            )
        )
    with tf.control_dependencies(checks):
        return tf.cast(labels, tf.int32)


def one_label_each(labels, batch, what: str = "image"):
    """`labels` with an assertion that they number as many as `batch`'s rows."""
    same = tf.debugging.assert_equal(
        tf.shape(batch)[0],
        tf.shape(labels)[0],
        message=f"labels must hold one class id per {what}",
    )
    with tf.control_dependencies([same]):
        return tf.identity(labels)


def assert_positive(value, name: str):
    """A scalar `value` with an assertion that it is finite and > 0."""
    value = tf.convert_to_tensor(value)
    check = tf.debugging.Assert(
        tf.logical_and(
            tf.math.is_finite(tf.cast(value, tf.float32)),
            value > tf.zeros((), value.dtype),
        ),
        [f"{name} must be a positive number. Received:", value],
    )
    with tf.control_dependencies([check]):
        return tf.identity(value)


class CheckedData:
    """Mixin for a `keras.Model`: `fit`, `evaluate` and `predict` check their data.

    The compiled step may run under XLA, which drops assertions, so the data
    are checked before it: arrays eagerly (a `ValueError` or `TypeError`
    naming the problem), a `tf.data.Dataset` by a `map` in its own pipeline,
    a generator or `keras.utils.PyDataset` batch by batch as it is read.
    `check_batch` says what is checked; a model overrides it to check more
    (a conditional model's labels).
    """

    def check_batch(self, *batch):
        """Check one batch `x` or `(x, y[, sample_weight])`; return it.

        Works eagerly and in a graph: `x` must be float images in [0, 1].
        """
        x = assert_images(batch[0], "x")
        return (x, *batch[1:]) if len(batch) > 1 else x

    def _check_arrays(self, *batch):
        batch = [b for b in batch if b is not None]
        try:
            self.check_batch(*batch)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(error.message.split("\n")[0]) from None

    def _checked_data(self, x, y=None):
        if x is None:
            return x, y
        if isinstance(x, tf.data.Dataset):
            return x.map(self.check_batch), y
        if isinstance(x, keras.utils.PyDataset):
            return _CheckedPyDataset(x, self), y
        if inspect.isgenerator(x) or isinstance(x, collections.abc.Iterator):
            return (self._checked_element(batch) for batch in x), y
        if isinstance(x, (tuple, list)) and y is None and len(x) == 2:
            self._check_arrays(*x)  # (images, labels) for predict
        else:
            self._check_arrays(x, y)
        return x, y

    def _checked_element(self, batch):
        parts = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        self._check_arrays(*parts)
        return batch

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        x, y = self._checked_data(x, y)
        if isinstance(validation_data, (tuple, list)):
            self._check_arrays(*validation_data[:2])
        elif validation_data is not None:
            validation_data, _ = self._checked_data(validation_data)
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = self._checked_data(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        x, _ = self._checked_data(x)
        return super().predict(x, *args, **kwargs)


class _CheckedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches a model checks as they are read."""

    def __init__(self, inner, model):
        super().__init__(
            workers=inner.workers,
            use_multiprocessing=inner.use_multiprocessing,
            max_queue_size=inner.max_queue_size,
        )
        self.inner, self.model = inner, model

    def __len__(self):
        return len(self.inner)

    @property
    def num_batches(self):
        return self.inner.num_batches

    def __getitem__(self, index):
        return self.model._checked_element(self.inner[index])

    def on_epoch_begin(self):
        self.inner.on_epoch_begin()

    def on_epoch_end(self):
        self.inner.on_epoch_end()
