"""Keras callbacks for VAE training."""

import math
import time
from collections.abc import Callable

import keras

from vae_tf.models.vae import VAE

__all__ = ["EpochTimer", "BetaSchedule", "StepProgbarLogger"]


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


@keras.saving.register_keras_serializable(package="vae_tf")
class BetaSchedule(keras.callbacks.Callback):
    """Schedule the KL weight `beta` of a `vae_tf.VAE`, epoch by epoch.

    A KL warm-up (Bowman et al. 2016, arXiv:1511.06349; Sønderby et al.
    2016, arXiv:1602.02282) starts training with little weight on the KL, so
    the decoder learns to use the latents before the KL can switch them off;
    the cyclical schedule (Fu et al. 2019, arXiv:1903.10145) repeats the
    ramp. At the start of epoch `e` (counting from 0):

    ```
    linear:     beta = max_beta * min(1, e / warmup_epochs)
    cyclical:   t = (e mod cycle_epochs) / cycle_epochs
                beta = max_beta * min(1, t / ramp_fraction)
    ```

    or `schedule(e)` for a callable. The value is logged as `beta` in each
    epoch's logs (and so in `History`). The ELBO that `fit` reports is the
    true one whatever `beta`.

    Args:
        schedule: `"linear"`, `"cyclical"`, or a callable `epoch -> beta`.
        warmup_epochs: epochs of the linear ramp from 0 to `max_beta`.
        max_beta: the final (or each cycle's top) value.
        cycle_epochs: length of a cycle for `"cyclical"`.
        ramp_fraction: fraction of each cycle spent ramping up.

    Example:

    >>> vae.fit(train, epochs=30, callbacks=[vae_tf.callbacks.BetaSchedule(
    ...     "linear", warmup_epochs=10)])
    """

    def __init__(
        self,
        schedule: str | Callable[[int], float] = "linear",
        warmup_epochs: int = 10,
        max_beta: float = 1.0,
        cycle_epochs: int = 10,
        ramp_fraction: float = 0.5,
    ):
        super().__init__()
        if not (callable(schedule) or schedule in ("linear", "cyclical")):
            raise ValueError(
                "schedule must be 'linear', 'cyclical' or a callable epoch -> beta. "
                f"Received: schedule={schedule!r}"
            )
        for name, value in (
            ("warmup_epochs", warmup_epochs),
            ("cycle_epochs", cycle_epochs),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a positive integer. Received: {name}={value!r}"
                )
        if not (isinstance(max_beta, (int, float)) and math.isfinite(max_beta)):
            raise ValueError(
                f"max_beta must be a finite number. Received: {max_beta!r}"
            )
        if max_beta < 0:
            raise ValueError(f"max_beta must be >= 0. Received: max_beta={max_beta!r}")
        if not 0 < ramp_fraction <= 1:
            raise ValueError(
                "ramp_fraction must be in (0, 1]. Received: "
                f"ramp_fraction={ramp_fraction!r}"
            )
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.max_beta = float(max_beta)
        self.cycle_epochs = cycle_epochs
        self.ramp_fraction = float(ramp_fraction)

    def beta_at(self, epoch: int) -> float:
        """The scheduled `beta` of epoch `epoch` (from 0)."""
        if callable(self.schedule):
            return float(self.schedule(epoch))
        if self.schedule == "linear":
            return self.max_beta * min(1.0, epoch / self.warmup_epochs)
        position = (epoch % self.cycle_epochs) / self.cycle_epochs
        return self.max_beta * min(1.0, position / self.ramp_fraction)

    def on_epoch_begin(self, epoch, logs=None):
        if not isinstance(self.model, VAE):
            raise TypeError(
                "BetaSchedule schedules a vae_tf.VAE's beta. Received a model of "
                f"type {type(self.model).__name__}."
            )
        self.model.beta = self.beta_at(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = self.model.beta

    def get_config(self):
        if callable(self.schedule):
            raise NotImplementedError(
                "A BetaSchedule with a callable schedule cannot be serialised."
            )
        return {
            "schedule": self.schedule,
            "warmup_epochs": self.warmup_epochs,
            "max_beta": self.max_beta,
            "cycle_epochs": self.cycle_epochs,
            "ramp_fraction": self.ramp_fraction,
        }


@keras.saving.register_keras_serializable(package="vae_tf")
class StepProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, ending at the number of steps the data really has.

    With `compile(steps_per_execution=k)`, Keras 3 reports each compiled
    call's end as `k` steps after the previous one, also for the last call of
    an epoch, which runs the remaining steps only. Over 157 steps with
    `k = 50`, `keras.callbacks.ProgbarLogger` then ends each epoch at
    `200/157` with a negative time left (and, when stdout is not a terminal,
    leaves that line in the log). This logger caps the reported step at the
    step count `fit` (or `evaluate`, `predict`) was given, so the bar ends at
    `157/157` and the time per step is the real one. Pass it in `callbacks`:
    `fit` then adds no progress bar of its own. With data of unknown length
    (no step count), it shows what Keras shows.

    Example:

    >>> vae.compile(optimizer="adam", steps_per_execution=50)
    >>> vae.fit(train, epochs=10, callbacks=[vae_tf.callbacks.StepProgbarLogger()])
    """

    def __init__(self):
        super().__init__()
        self._steps = None

    def get_config(self):
        return {}

    def set_params(self, params):
        super().set_params(params)
        self._steps = params.get("steps")

    def _real_step(self, batch: int) -> int:
        """The index of the last step run: `batch`, at most the last one."""
        return batch if self._steps is None else min(batch, self._steps - 1)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(self._real_step(batch), logs)

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._real_step(batch), logs)

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._real_step(batch), logs)
