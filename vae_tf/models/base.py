"""The interface every model family implements, and the training step it shares.

A model family (a VAE, a lossy transform coder, a VQ-VAE, ...) is a
`GenerativeModel`. The rest of the package asks a model only through this
interface, never by testing its attributes:

- `per_image_terms(x, labels, training)`: the per-image terms of the loss;
  `objective(means)`: the loss, from the step's means of the terms;
  `step_metrics(means)`: what `fit` reports besides `loss`;
  `prepare_batch(x, y)`: images and labels as the model takes them. Asked by
  the shared `train_step` / `test_step` (here).
- `evaluate_dataset(dataset, seed, iwae_k)`: test figures, as `metrics.json`
  names them. Asked by `vae_tf.runs` and `vae-tf evaluate`.
- `reconstruct(x, labels)`; `can_generate`, `sample(...)` and
  `example_samples(...)`; `loss_curves` (history keys worth plotting, with
  units); `kl_per_dimension(x, labels)`. Asked by `vae-tf sample`, a run's
  figures and `callbacks.ImageLogger`.
- `has_latent_space`, `encode(x, labels)` and `decode(z, labels, seed)`: a
  Gaussian latent with prior N(0, I) that images map to and back from;
  `num_classes` (0 unless conditional); `autoregressive` (decoding draws
  pixel by pixel, so it is slow); `image_shape` (`None`: any size). Asked by
  `vae-tf explore`.
- `add_endpoints(archive)`: SavedModel signatures (`vae_tf.export`);
  `tflite_networks(images)`: the networks TFLite converts (`vae_tf.tflite`).
- `coding` (`"lossless"`, `"lossy"`: what the codecs can code with it) and
  `coding_networks()` (what fixes its codes). Asked by `vae_tf.compression`.

The shared step. Each family returns per-image terms, `(batch,)` or `(batch,
k)` tensors; the step sums them over the batch and over every replica of a
`tf.distribute` strategy (`vae_tf.distribute.replica_sum`) and divides by the
step's image count, giving the step's means `m`. The loss is the family's
`objective(m)`, any differentiable function of the means (a KL floored per
dimension, rate + lambda x distortion, ...). Its gradient is taken through
this replica's share, `sum_k dL/dm_k * local_sum_k / count`, with `dL/dm`
computed at the global means: summed over the replicas, that is exactly one
device's gradient, however unevenly the batch was split (a replica with no
image included). The metrics are updated with the step's global figures,
weighted by its image count.
"""

import keras
import tensorflow as tf
from keras import ops

from vae_tf._validation import CheckedData
from vae_tf.distribute import first_replica_batch, replica_sum, stand_in_for_empty

__all__ = ["GenerativeModel", "NotSupportedError"]


class NotSupportedError(ValueError):
    """What a model family cannot do (sample from a codec, code with a VQ-VAE, ...).

    A `ValueError`, so the CLI reports it in one line.
    """


class GenerativeModel(CheckedData, keras.Model):
    """A model family: what it computes, and what the package may ask of it.

    Subclasses set `METRICS` (the names `step_metrics` returns, in the order
    `fit` shows them) and implement `per_image_terms`, `objective`,
    `step_metrics`, `evaluate_dataset` and `reconstruct`; the rest has
    defaults that say the family does not support it.

    Args:
        **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    METRICS: tuple = ()
    # What the family's codecs code: "lossless" (bits-back), "lossy".
    coding: tuple = ()
    # Whether `sample` draws new images.
    can_generate: bool = False
    # The history keys to plot, with their units (`vae_tf.plotting`).
    loss_curves: dict = {"loss": "loss"}
    # `(height, width, channels)` of the images the model takes, once built;
    # `None` before, or for a family that takes any size (a lossy codec).
    image_shape = None
    # Whether `encode` / `decode` map images to and from a Gaussian latent.
    has_latent_space: bool = False
    # The classes a conditional model takes labels of (0: unconditional).
    num_classes: int = 0
    # Whether decoding draws the image pixel by pixel (seconds, not milliseconds).
    autoregressive: bool = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.step_trackers = {
            name: keras.metrics.Mean(name=name) for name in self.METRICS
        }

    @property
    def metrics(self):
        return [self.loss_tracker, *self.step_trackers.values()]

    # -- What a family implements ------------------------------------------

    def per_image_terms(self, x, labels=None, training=False) -> dict:
        """The loss's per-image terms: name -> `(batch,)` or `(batch, k)`."""
        raise NotImplementedError

    def objective(self, means: dict):
        """The loss, a scalar, from the step's means of the terms.

        Must depend on the weights only through the terms (it is
        differentiated with respect to the means).
        """
        raise NotImplementedError

    def step_metrics(self, means: dict) -> dict:
        """The figures `fit` reports besides `loss`: name -> scalar."""
        raise NotImplementedError

    def prepare_batch(self, x, y=None):
        """`(x, labels)` as `per_image_terms` takes them (labels `None` here)."""
        return x, None

    def evaluate_dataset(self, dataset, seed: int = 0, iwae_k: int | None = None):
        """Test figures on `dataset`, as `metrics.json` names them."""
        raise NotImplementedError

    def reconstruct(self, x, labels=None):
        """Reconstructions of images `x` in [0, 1], same shape."""
        raise NotImplementedError

    def sample(
        self, num_samples: int, temperature: float = 1.0, seed=None, labels=None
    ):
        """New images from the model's prior.

        Raises:
            NotSupportedError: the family has no prior to sample from.
        """
        raise NotSupportedError(
            f"A {type(self).__name__} does not generate images: it has no prior "
            "to sample from."
        )

    def encode(self, x, labels=None):
        """`(z_mean, z_log_var)` of the posterior of images `x` in [0, 1].

        Raises:
            NotSupportedError: the family has no Gaussian latent.
        """
        raise NotSupportedError(
            f"A {type(self).__name__} has no Gaussian latent space to encode to."
        )

    def decode(self, z, labels=None, seed=None):
        """Images `(batch, height, width, channels)` in [0, 1] of latents `z`.

        Raises:
            NotSupportedError: the family has no Gaussian latent.
        """
        raise NotSupportedError(
            f"A {type(self).__name__} has no Gaussian latent space to decode from."
        )

    def kl_per_dimension(self, x, labels=None):
        """The mean KL (nats) of each latent dimension over images `x`,
        `(num_latent_dims,)` numpy, or `None` for a family whose latents have
        no per-dimension KL (a lossy codec, a VQ-VAE)."""
        return None

    def example_samples(self, count: int = 64, seed: int = 0):
        """`(images, title)` of samples for a run's figure, or `None`."""
        if not self.can_generate:
            return None
        return self.sample(count, seed=seed), "Samples from the prior"

    def add_endpoints(self, archive):
        """Add this model's SavedModel endpoints to a `keras.export.ExportArchive`."""
        raise NotSupportedError(f"A {type(self).__name__} has no SavedModel export.")

    def tflite_networks(self, images=None) -> dict:
        """`{name: {"function", "input_signature", "network", "representative"}}`:
        the networks `vae_tf.tflite` converts, each with its calibration
        inputs derived from `images` (or `None`).

        Raises:
            NotSupportedError: the family has no TFLite export.
        """
        raise NotSupportedError(f"A {type(self).__name__} has no TFLite export.")

    def check_coding(self, kind: str):
        """Raise a `NotSupportedError` saying why, unless this model codes `kind`.

        Args:
            kind: `"lossless"` or `"lossy"`.
        """
        if kind not in self.coding:
            can = " and ".join(self.coding) or "no"
            raise NotSupportedError(
                f"A {type(self).__name__} cannot code {kind} files; it codes {can} "
                "files."
            )

    def coding_networks(self) -> tuple:
        """The layers (and likelihood) whose configs and weights fix the codes."""
        raise NotSupportedError(f"A {type(self).__name__} codes no files.")

    # -- The shared step ------------------------------------------------------

    def step_loss(self, terms: dict):
        """`(loss, means, count)` of a step's per-image terms, over all replicas.

        `loss` has the value `objective(means)` and the gradient of this
        replica's share of it (see the module docstring); `count` is the
        step's image count.
        """
        names = sorted(terms)
        local = {k: ops.sum(terms[k], axis=0) for k in names}  # () or (k,)
        count = ops.cast(ops.shape(terms[names[0]])[0], "float32")
        flat = [ops.reshape(local[k], (-1,)) for k in names]
        sizes = tf.stack([tf.size(f) for f in flat])
        totals = replica_sum(ops.concatenate([*flat, count[None]], axis=0))
        images = ops.maximum(totals[-1], 1.0)  # over all replicas
        pieces = tf.split(totals[:-1] / images, sizes, num=len(flat))
        means = {k: ops.reshape(p, ops.shape(local[k])) for k, p in zip(names, pieces)}
        with tf.GradientTape() as inner:
            inner.watch(list(means.values()))
            value = ops.cast(self.objective(means), "float32")
        slopes = inner.gradient(value, means)
        share = (
            sum(
                ops.sum(ops.stop_gradient(slopes[k]) * local[k])
                for k in names
                if slopes[k] is not None
            )
            / images
        )
        return share + ops.stop_gradient(value - share), means, totals[-1]

    def _update_metrics(self, loss, means, count):
        self.loss_tracker.update_state(loss, sample_weight=count)
        for name, value in self.step_metrics(means).items():
            self.step_trackers[name].update_state(value, sample_weight=count)
        return {m.name: m.result() for m in self.metrics}

    def _step_terms(self, data, training):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x, labels = self.prepare_batch(x, y)
        (x, labels), count = stand_in_for_empty(x, labels)
        terms = self.per_image_terms(x, labels, training=training)
        return {k: v[:count] for k, v in terms.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, means, count = self.step_loss(self._step_terms(data, training=True))
            total_loss = loss
            if self.losses:  # the same on every replica, whose gradients add up
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                total_loss = loss + ops.sum(self.losses) / replicas
            # Under mixed_float16, the LossScaleOptimizer's scale (else a no-op).
            scaled_loss = self.optimizer.scale_loss(total_loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_metrics(loss, means, count)

    def test_step(self, data):
        loss, means, count = self.step_loss(self._step_terms(data, training=False))
        return self._update_metrics(loss, means, count)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras averages the first batch over the replicas to learn its shapes,
        # which fails on an uneven split; one replica's share has them.
        if iterator is not None and self._distribute_strategy is not None:
            data_batch = first_replica_batch(self.distribute_strategy, iterator)
            iterator = None
        if data_batch is not None and not self.built:
            # A model builds itself from a batch (`prepare_batch`), labels
            # included; Keras would call it on the images alone.
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data_batch)
            with self.distribute_strategy.scope():
                self.prepare_batch(x, y)
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
