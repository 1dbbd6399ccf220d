"""Keras callbacks for VAE training."""

import time

import keras

__all__ = ["EpochTimer"]


@keras.saving.register_keras_serializable(package="vae_tf")
class EpochTimer(keras.callbacks.Callback):
    """Measure the wall time of each epoch's training part (validation excluded).

    After `fit`, `epoch_seconds[i]` is the time epoch `i` spent in training
    steps, and `images_per_second(num_images)` the throughput over the epochs
    after the first (which includes tracing and XLA compilation), or over the
    only epoch.

    Example:

    >>> timer = vae_tf.callbacks.EpochTimer()
    >>> vae.fit(train, epochs=5, callbacks=[timer])
    >>> timer.images_per_second(60_000)
    """

    def __init__(self):
        super().__init__()
        self.epoch_seconds = []
        self._start = None

    def get_config(self):
        return {}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _stop(self):
        if self._start is not None:
            self.epoch_seconds.append(time.perf_counter() - self._start)
            self._start = None

    def on_test_begin(self, logs=None):
        self._stop()  # validation inside fit: the epoch's training part has ended

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def steady_seconds(self) -> list:
        """Epoch times after warm-up: all but the first, or the only one."""
        return self.epoch_seconds[1:] or self.epoch_seconds

    def images_per_second(self, images_per_epoch: int) -> float:
        """Training images per second over the steady epochs."""
        seconds = self.steady_seconds()
        if not seconds:
            raise ValueError("No epoch was timed: call fit with this callback first.")
        return images_per_epoch * len(seconds) / sum(seconds)
