"""Keras callbacks for VAE training."""

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae_tf._files import write_atomically
from vae_tf.models.vae import VAE

__all__ = [
    "EpochTimer",
    "BetaSchedule",
    "StepProgbarLogger",
    "ImageLogger",
    "EpochBackup",
]


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


class ImageLogger(keras.callbacks.Callback):
    """What the model makes of fixed images, and its loss terms per step, for
    TensorBoard.

    Writes to `log_dir/vae_tf` (next to the `train` and `validation` folders
    of a `keras.callbacks.TensorBoard` with the same `log_dir`):

    - scalars `step/NAME` for every term `fit` reports (`loss`,
      `reconstruction_loss`, `kl_loss`, ...), at step = the optimizer's
      step count: each compiled call's figures (with
      `compile(steps_per_execution=k)`, a point every `k` steps, where it
      belongs on the step axis);

    and at the end of every `every`-th epoch (and of the last), at step =
    the epoch (from 0):

    - image `reconstructions`: `images` (top row) over their
      reconstructions (bottom row), one picture (unless not
      `reconstructions`: an autoregressive decoder draws pixel by pixel);
    - image `samples`: `num_samples` images from the same latent draws every
      epoch (seed `seed`), for a model that generates (a conditional model
      draws one class per row);
    - histogram `kl_per_dimension`: the KL (nats) of each latent dimension,
      averaged over `images`, for a model with a per-dimension KL (a VAE):
      dimensions near 0 nats are inactive.

    Writing needs the `tensorboard` package (`pip install
    'vae_tf[tensorboard]'`); view with `tensorboard --logdir LOG_DIR`.

    Args:
        log_dir: the TensorBoard log directory.
        images: 1 to 64 test images, `(N, height, width, channels)`, uint8 or
            floats in [0, 1].
        labels: their class ids, for a conditional model (else `None`).
        num_samples: samples per epoch (0 for none).
        every: epochs between image logs.
        seed: the seed of the samples' latent draws.
        log_steps: write the per-step scalars.
        reconstructions: write the reconstructions.

    Raises:
        ValueError: `images` not 1 to 64 images of shape `(N, h, w, c)` with
            values in [0, 1] (or uint8), `labels` not one per image,
            `num_samples` or `every` out of range.

    Example:

    >>> vae.fit(train, epochs=10, callbacks=[
    ...     keras.callbacks.TensorBoard("logs"),
    ...     vae_tf.callbacks.ImageLogger("logs", test_images[:8])])
    """

    def __init__(
        self,
        log_dir,
        images,
        labels=None,
        num_samples: int = 16,
        every: int = 1,
        seed: int = 0,
        log_steps: bool = True,
        reconstructions: bool = True,
    ):
        super().__init__()
        images = np.asarray(images)
        if images.ndim != 4 or not 1 <= len(images) <= 64:
            raise ValueError(
                "images must be 1 to 64 images shaped (N, height, width, channels). "
                f"Received: shape {images.shape}"
            )
        if images.dtype == np.uint8:
            images = images.astype("float32") / 255.0
        images = images.astype("float32")
        if not (np.all(np.isfinite(images)) and 0 <= images.min() <= images.max() <= 1):
            raise ValueError(
                "images must be uint8 or floats in [0, 1]. Received values from "
                f"{images.min()} to {images.max()}."
            )
        if labels is not None and np.shape(labels) != (len(images),):
            raise ValueError(
                f"labels must hold one class id per image ({len(images)}). "
                f"Received: shape {np.shape(labels)}"
            )
        if not isinstance(num_samples, int) or not 0 <= num_samples <= 256:
            raise ValueError(
                f"num_samples must be an integer from 0 to 256. Received: "
                f"num_samples={num_samples!r}"
            )
        if not isinstance(every, int) or every < 1:
            raise ValueError(
                f"every must be a positive integer. Received: every={every!r}"
            )
        self.log_dir = Path(log_dir)
        self.images = images
        self.labels = None if labels is None else np.asarray(labels)
        self.num_samples = num_samples
        self.every = every
        self.seed = seed
        self.log_steps = log_steps
        self.reconstructions = reconstructions
        self._writer = None

    def _writing(self, step: int):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "vae_tf"))
        return self._writer.as_default(step=step)

    def on_train_batch_end(self, batch, logs=None):
        if not self.log_steps or not isinstance(logs, dict):
            return
        with self._writing(int(self.model.optimizer.iterations.numpy())):
            for name, value in logs.items():
                tf.summary.scalar(f"step/{name}", float(value))

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") == epoch + 1
        if (epoch + 1) % self.every and not last:
            return
        self.log(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def log(self, step: int):
        """Write this step's summaries now."""
        from vae_tf.plotting import image_grid

        model = self.model
        with self._writing(step):
            if self.reconstructions:
                decoded = np.asarray(model.reconstruct(self.images, self.labels))
                grid = image_grid(np.concatenate([self.images, decoded]), rows=2)
                tf.summary.image("reconstructions", grid[None])
            examples = (
                model.example_samples(self.num_samples, seed=self.seed)
                if self.num_samples and model.can_generate
                else None
            )
            if examples is not None:
                samples, title = examples
                grid = image_grid(np.asarray(samples))
                tf.summary.image("samples", grid[None], description=title)
            kl = model.kl_per_dimension(self.images, self.labels)
            if kl is not None:
                tf.summary.histogram("kl_per_dimension", kl)
        self._writer.flush()


class EpochBackup(keras.callbacks.Callback):
    """Back up the model and its optimizer after every epoch, whole or not at
    all, and resume from the backup when `fit` starts again.

    What `keras.callbacks.BackupAndRestore` does, without its window: it
    writes the weights and then, separately, the epoch they belong to, so a
    process killed between the two resumes with one epoch's weights and the
    previous epoch's number and trains that epoch again (measured: 9 epochs
    of optimizer steps in a run of 8), and a kill inside the second write
    leaves a file that cannot be read. Here each epoch's weights go to a file
    of their own (`epoch-E.weights.h5`, written through a temporary name),
    and `training_metadata.json` (the epoch and the weights' file name) is
    replaced in one rename after them; the older weights file is removed
    only then. Whenever the process dies, the metadata names a complete file
    of the epoch it states.

    A backup written by `BackupAndRestore` (`latest.weights.h5` beside a
    metadata file without a weights name) is resumed from too. The folder
    is deleted when training ends normally.

    Args:
        directory: the backup folder (created when the first epoch ends).

    Raises:
        ValueError: at the start of `fit`, for a metadata file that is not
            this callback's (or `BackupAndRestore`'s) JSON, or for a model
            that is not built.
    """

    METADATA = "training_metadata.json"

    def __init__(self, directory):
        super().__init__()
        self.directory = Path(directory)

    def on_train_begin(self, logs=None):
        path = self.directory / self.METADATA
        if not path.exists():
            return
        try:
            metadata = json.loads(path.read_text())
            epoch = int(metadata["epoch"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"The training backup's {path} is not a backup's metadata "
                f"({error}); delete {self.directory} to start afresh."
            ) from error
        weights = self.directory / metadata.get("weights", "latest.weights.h5")
        if not self.model.built:
            raise ValueError("Build the model before fit to resume from a backup.")
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        self.model._initial_epoch = epoch  # where fit starts (as Keras's own)

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        write_atomically(
            self.directory / name,
            lambda tmp: self.model.save_weights(tmp, overwrite=True),
            suffix=".weights.h5",
        )
        metadata = json.dumps({"epoch": epoch + 1, "weights": name})
        write_atomically(
            self.directory / self.METADATA, lambda tmp: tmp.write_text(metadata)
        )
        for old in self.directory.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def on_train_end(self, logs=None):
        shutil.rmtree(self.directory, ignore_errors=True)
