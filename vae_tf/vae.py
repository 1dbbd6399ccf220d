"""The variational autoencoder: a `keras.Model` whose `train_step` maximises the "
"ELBO."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf import corruption as corruption_lib
from vae_tf import likelihoods as likelihoods_lib
from vae_tf._random import derive, normal
from vae_tf._validation import CheckedData, assert_images
from vae_tf.bounds import (
    gaussian_kl,
    gaussian_log_prob,
    standard_normal_log_prob,
    sum_per_example,
)
from vae_tf.distribute import first_replica_batch, replica_sum, stand_in_for_empty
from vae_tf.generation import gaussian_grid, interpolate_latents

__all__ = ["VAE", "check_images"]


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


def float32(*tensors):
    """Cast network outputs to float32 (a no-op unless the policy is mixed).

    Under `mixed_float16` / `mixed_bfloat16` the networks compute in half
    precision; the ELBO, the KL and the log-likelihoods are computed in float32
    from these casts.
    """
    cast = [ops.cast(t, "float32") for t in tensors]
    return cast[0] if len(cast) == 1 else tuple(cast)


@keras.saving.register_keras_serializable(package="vae_tf")
class VAE(CheckedData, keras.Model):
    """A variational autoencoder trained by maximising the ELBO.

    The encoder maps an image `x` to a diagonal Gaussian `q(z | x)`, a latent
    is drawn with the reparameterisation trick, `z = mu + sigma * eps` with
    `eps ~ N(0, I)`, and the decoder gives the parameters of the likelihood
    `p(x | z)`. The per-example loss is the negative ELBO (Kingma & Welling
    2014, arXiv:1312.6114), in nats:

    ```
    loss(x) = -E_q[log p(x | z)] + beta * KL(q(z | x) || N(0, I))
            = reconstruction_loss + beta * kl_loss
    ```

    `fit` reports the batch means of `loss`, `reconstruction_loss`, `kl_loss`
    and `elbo` (the true bound, `-(reconstruction_loss + kl_loss)`, whatever
    `beta`), each the mean over every image of the step. Under a
    `tf.distribute` strategy each replica divides its images' terms by the
    step's image count over all replicas (`training_loss`), so the summed
    gradients and the reported metrics are one device's for any split of
    the batch; under `mixed_float16` the loss is also scaled by the optimizer's loss
    scale (`compile` wraps the optimizer in a `LossScaleOptimizer`). With a
    mixed-precision policy the networks run in half precision and the loss
    terms in float32.

    Args:
        encoder: a `keras.Model` mapping images to `(z_mean, z_log_var)`,
            with a `latent_shape(image_shape)` method or a `latent_dim`
            attribute (e.g. `vae_tf.DenseEncoder`, `vae_tf.ConvEncoder`).
        decoder: a `keras.Model` mapping `z` to the likelihood's parameters
            (e.g. `vae_tf.DenseDecoder`).
        likelihood: a `vae_tf.likelihoods.Likelihood` or its name.
        beta: weight of the KL term (1 is the ELBO; beta-VAE otherwise).
        free_bits: a floor, in nats, on each latent dimension's KL in the
            training loss ("free bits", Kingma et al. 2016, arXiv:1606.04934):
            the loss uses `sum_d max(free_bits, mean_batch KL_d)`, so the
            optimiser gains nothing by pushing a dimension's KL below the floor
            and stops switching dimensions off. 0 (the default) is the ELBO.
            The reported `kl_loss` and `elbo` are always the true ones.
        corruption: a `vae_tf.corruption.Corruption` (e.g.
            `GaussianNoise(0.3)`, `Masking(0.5)`) makes a denoising VAE: in
            training steps the encoder sees the corrupted image and the
            decoder is scored on the clean one, so `reconstruct(noisy)`
            estimates the clean image. Evaluation uses clean inputs.
        seed: seed of the model's random draws (binarisation, `eps`,
            sampling), for reproducible training.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    >>> vae = vae_tf.VAE(
    ...     vae_tf.DenseEncoder(latent_dim=32),
    ...     vae_tf.DenseDecoder(param_shape=(28, 28, 1)),
    ...     vae_tf.Bernoulli("dynamic"),
    ... )
    >>> vae.compile(optimizer="adam")
    >>> vae.fit(train_images, epochs=10, validation_data=test_images)
    >>> images = vae.sample(16, temperature=0.8, seed=1)
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        likelihood=None,
        beta: float = 1.0,
        seed: int | None = None,
        free_bits: float = 0.0,
        corruption=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(decoder, dict):
            decoder = keras.saving.deserialize_keras_object(decoder)
        for arg, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, keras.layers.Layer):
                raise TypeError(
                    f"{arg} must be a keras.Model. Received: {arg}={value!r}"
                )
        if not (
            hasattr(encoder, "latent_shape")
            or isinstance(getattr(encoder, "latent_dim", None), int)
        ):
            raise ValueError(
                "encoder must have a `latent_shape(image_shape)` method or an integer "
                f"`latent_dim` attribute (the size of z). Received: encoder={encoder!r}"
            )
        if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta >= 0):
            raise ValueError(
                f"beta must be a finite number >= 0. Received: beta={beta!r}"
            )
        if not (
            isinstance(free_bits, (int, float))
            and np.isfinite(free_bits)
            and free_bits >= 0
        ):
            raise ValueError(
                "free_bits must be a finite number of nats >= 0. Received: "
                f"free_bits={free_bits!r}"
            )
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None. Received: seed={seed!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihoods_lib.get(
            "bernoulli" if likelihood is None else likelihood
        )
        self.latent_dim = getattr(encoder, "latent_dim", None)
        self.latent_shape = (self.latent_dim,) if self.latent_dim else None
        self.seed = seed
        self.free_bits = float(free_bits)
        self.corruption = corruption_lib.get(corruption)
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.beta_variable = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(beta)),
            trainable=False,
            name="beta",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.image_shape = None

    @property
    def beta(self) -> float:
        """The current KL weight (a variable, so callbacks can schedule it)."""
        return float(ops.convert_to_numpy(self.beta_variable))

    @beta.setter
    def beta(self, value: float):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(
                f"beta must be a finite number >= 0. Received: beta={value!r}"
            )
        self.beta_variable.assign(float(value))

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.reconstruction_loss_tracker,
            self.kl_loss_tracker,
            self.elbo_tracker,
        ]

    def build(self, input_shape):
        """Build the encoder and decoder for images of `input_shape[1:]`.

        Building the VAE itself (not only its sub-models) matters: a model that
        was never built reloads from `.keras` without its weights.
        """
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                "The VAE expects batches of images of shape (batch, height, width, "
                f"channels). Received: input_shape={input_shape}"
            )
        image_shape = tuple(int(d) for d in input_shape[1:])
        channels = self.likelihood.param_channels(image_shape[-1])
        expected = (*image_shape[:-1], channels)
        param_shape = getattr(self.decoder, "param_shape", None)
        if param_shape is not None and any(
            p is not None and p != e for p, e in zip(param_shape, expected)
        ):
            raise ValueError(
                f"The decoder outputs parameters of shape {tuple(param_shape)}, but "
                f"{self.likelihood!r} on images of shape {image_shape} needs "
                f"{expected}. Received: input_shape={input_shape}"
            )
        if hasattr(self.encoder, "latent_shape"):
            self.latent_shape = tuple(self.encoder.latent_shape(image_shape))
        self.image_shape = image_shape
        self._build_networks(image_shape)
        self.built = True

    def _build_networks(self, image_shape):
        """Build the encoder and decoder on symbolic inputs of their shapes."""
        self.encoder(keras.KerasTensor((None, *image_shape)))
        z = keras.KerasTensor((None, *self.latent_shape))
        if self.autoregressive:
            self.decoder((z, keras.KerasTensor((None, *image_shape))))
        else:
            self.decoder(z)

    @property
    def autoregressive(self) -> bool:
        """Whether the decoder sees earlier pixels (`vae_tf.PixelCNNDecoder`)."""
        return bool(getattr(self.decoder, "autoregressive", False))

    def call(self, inputs, training=False):
        """Reconstruct `inputs`: the likelihood's mean of `p(x | z)` at `z = z_mean`."""
        return self.likelihood.mean(self.reconstruct_params(inputs, training=training))

    # Graph-level building blocks: tensors in, tensors out, no input checks.
    # The public methods below and the SavedModel export are written with
    # them, and a model with another latent structure overrides them.

    #
    # `labels` is `None` for an unconditional model and one-hot float labels
    # `(batch, num_classes)` for a conditional one (`ConditionalVAE`).

    def posterior(self, x, training=False, labels=None):
        """`(z_mean, z_log_var)` of `q(z | x)`, each `(batch, *latent_shape)`.

        Always float32, also under a mixed-precision policy, so that the KL
        and everything after it is computed in float32.
        """
        return float32(*self.encoder(x, training=training))

    def decode_params(self, z, training=False, labels=None, seed=None):
        """The likelihood's parameters `x_params` for latents `z`.

        An autoregressive decoder draws an image pixel by pixel (with `seed`,
        else the model's generator) and returns each pixel's parameters given
        the pixels drawn before it.
        """
        if self.autoregressive:
            _, x_params = self.decoder.generate(
                z,
                self.likelihood.sample,
                self.image_shape,
                seed=self.seed_generator if seed is None else seed,
            )
            return float32(x_params)
        return float32(self.decoder(z, training=training))

    def score_params(self, z, x, training=False, labels=None):
        """The parameters that score the images `x` given latents `z`.

        The same as `decode_params(z)` for a factorised decoder; an
        autoregressive one computes each pixel's parameters from the pixels
        of `x` before it (teacher forcing), in one pass.
        """
        if self.autoregressive:
            return float32(self.decoder((z, x), training=training))
        return self.decode_params(z, training=training, labels=labels)

    def reconstruct_params(self, x, training=False, labels=None):
        """`x_params` at the posterior mean of each image."""
        z_mean, _ = self.posterior(x, training=training, labels=labels)
        return self.decode_params(z_mean, training=training, labels=labels)

    def generate_params(self, num_samples, temperature=1.0, seed=None, labels=None):
        """`x_params` of `num_samples` prior draws `z ~ N(0, temperature^2 I)`.

        `num_samples` may be a Python int or a scalar tensor (as in an exported
        graph); `seed` an int, an int tensor or a `SeedGenerator`.
        """
        shape = tf.concat([tf.reshape(num_samples, (1,)), self.latent_shape], axis=0)
        seed = self.seed_generator if seed is None else seed
        eps = normal(shape, seed=seed)
        return self.decode_params(
            temperature * eps, labels=labels, seed=derive(seed, 1)
        )

    def prepare_labels(self, labels):
        """Labels as the graph-level methods take them: `None` for this model.

        A conditional model returns one-hot float labels; this one ignores the
        labels a dataset may carry.
        """
        return None

    def log_importance_weights(self, x, num_samples: int, seed=None, labels=None):
        """Log importance weights of `num_samples` posterior samples per image.

        ```
        log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x),  z_i ~ q(z | x)
        ```

        Args:
            x: targets (already binarised for a binarising likelihood),
                `(batch, height, width, channels)`.
            num_samples: `k`.
            seed: an int or a `keras.random.SeedGenerator`.
            labels: one-hot labels of a conditional model, else `None`.

        Returns:
            `(num_samples, batch)` log-weights.
        """
        batch = ops.shape(x)[0]
        z_mean, z_log_var = self.posterior(x, labels=labels)  # (batch, *latent)
        eps = normal((num_samples, batch, *self.latent_shape), seed=seed)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps  # (k, batch, *latent)
        log_qz = gaussian_log_prob(z, z_mean, z_log_var)  # (k, batch, *latent)
        z = ops.reshape(z, (-1, *self.latent_shape))  # (k * batch, *latent)
        log_qz = sum_per_example(ops.reshape(log_qz, ops.shape(z)))  # (k * batch,)
        log_pz = sum_per_example(standard_normal_log_prob(z))  # (k * batch,)
        x_tiled = ops.reshape(
            ops.tile(x[None], (num_samples, 1, 1, 1, 1)), (-1, *x.shape[1:])
        )  # (k * batch, height, width, channels)
        if labels is not None:
            labels = ops.reshape(
                ops.tile(labels[None], (num_samples, 1, 1)), (-1, labels.shape[-1])
            )  # (k * batch, num_classes)
        log_px = self.likelihood.log_prob(
            x_tiled, self.score_params(z, x_tiled, labels=labels)
        )
        return ops.reshape(log_px + log_pz - log_qz, (num_samples, batch))

    def reparameterize(self, z_mean, z_log_var, seed=None):
        """Draw `z = mu + sigma * eps`, `eps ~ N(0, I)`, differentiably in mu, sigma."""
        eps = normal(
            ops.shape(z_mean), seed=self.seed_generator if seed is None else seed
        )
        return z_mean + ops.exp(0.5 * z_log_var) * eps  # (batch, *latent_shape)

    def kl_per_dim(self, x, training=False, seed=None, labels=None):
        """One-sample terms of the negative ELBO with the KL kept per dimension.

        Args:
            x: images in [0, 1], shape `(batch, height, width, channels)`.
            training: passed to the encoder and decoder.
            seed: an int or `keras.random.SeedGenerator` for the binarisation
                and `eps`; defaults to the model's own generator.
            labels: one-hot labels of a conditional model, else `None`.

        Returns:
            `(reconstruction_loss, kl)`: `-log p(x | z)` with `z ~ q(z | x)`,
            shape `(batch,)`, and the closed-form `KL(q(z | x) || p(z))` of each
            latent dimension, shape `(batch, num_latent_dims)` (a latent map is
            flattened), both in nats.
        """
        seed = self.seed_generator if seed is None else seed
        x = self.likelihood.prepare_targets(x, seed=derive(seed, 0))
        inputs = x
        if training and self.corruption is not None:
            inputs = self.corruption(x, seed=derive(seed, 2))
        z_mean, z_log_var = self.posterior(inputs, training=training, labels=labels)
        z = self.reparameterize(z_mean, z_log_var, seed=derive(seed, 1))
        x_params = self.score_params(z, x, training=training, labels=labels)
        reconstruction_loss = -self.likelihood.log_prob(x, x_params)  # (batch,)
        kl = gaussian_kl(z_mean, z_log_var)  # (batch, *latent)
        return reconstruction_loss, ops.reshape(kl, (ops.shape(kl)[0], -1))

    def compute_terms(self, x, training=False, seed=None, labels=None):
        """One-sample estimates of the two terms of the negative ELBO.

        Args:
            x: images in [0, 1], shape `(batch, height, width, channels)`.
            training: passed to the encoder and decoder.
            seed: an int or `keras.random.SeedGenerator` for the binarisation
                and `eps`; defaults to the model's own generator.
            labels: one-hot labels of a conditional model, else `None`.

        Returns:
            `(reconstruction_loss, kl_loss)`, each of shape `(batch,)`, in nats:
            `-log p(x | z)` with `z ~ q(z | x)` and `KL(q(z | x) || p(z))`.
        """
        reconstruction_loss, kl = self.kl_per_dim(
            x, training=training, seed=seed, labels=labels
        )
        return reconstruction_loss, ops.sum(kl, axis=-1)

    def training_loss(self, reconstruction_loss, kl):
        """The minimised loss: mean reconstruction + beta * (floored) KL.

        ```
        loss = mean_i rec_i + beta * sum_d max(free_bits, mean_i kl_id)
        ```

        The means run over every image of the step: under a `tf.distribute`
        strategy, over all replicas (`vae_tf.distribute.replica_sum`), so
        the value is the global batch's loss on every replica. Its gradient is
        this replica's share of the global gradient (its images' terms
        divided by the global count): the strategy sums the replicas'
        gradients into exactly one device's, however unevenly the batch was
        split, a replica with no image included.

        Args:
            reconstruction_loss: `(batch,)` nats.
            kl: `(batch, num_latent_dims)` nats, as from `kl_per_dim`.

        Returns:
            A scalar; with `free_bits=0` the batch mean of the beta-weighted
            negative ELBO.
        """
        local_kl = ops.sum(kl, axis=0)  # (num_latent_dims,)
        local_reconstruction = ops.sum(reconstruction_loss)
        count = ops.cast(ops.shape(kl)[0], "float32")
        totals = replica_sum(
            ops.concatenate([local_reconstruction[None], local_kl, count[None]])
        )  # (num_latent_dims + 2,)
        images = ops.maximum(totals[-1], 1.0)  # over all replicas
        kl_dims = totals[1:-1] / images  # (num_latent_dims,) global means
        weights = ops.ones_like(kl_dims)
        if self.free_bits > 0:
            # d max(f, m) / d m is 1 where m >= f (as tf.maximum's gradient).
            weights = ops.cast(kl_dims >= self.free_bits, "float32")
            kl_dims = ops.maximum(kl_dims, self.free_bits)
        value = totals[0] / images + self.beta_variable * ops.sum(kl_dims)
        share = (
            local_reconstruction + self.beta_variable * ops.sum(local_kl * weights)
        ) / images
        return share + ops.stop_gradient(value - share)

    def _update_metrics(self, loss, reconstruction_loss, kl_loss):
        """Update the trackers with the step's totals over all replicas."""
        totals = replica_sum(
            ops.stack(
                [
                    ops.sum(reconstruction_loss),
                    ops.sum(kl_loss),
                    ops.cast(ops.shape(kl_loss)[0], "float32"),
                ]
            )
        )
        images = totals[2]
        reconstruction = totals[0] / ops.maximum(images, 1.0)
        kl = totals[1] / ops.maximum(images, 1.0)
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(
            reconstruction, sample_weight=images
        )
        self.kl_loss_tracker.update_state(kl, sample_weight=images)
        self.elbo_tracker.update_state(-(reconstruction + kl), sample_weight=images)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._ensure_built(tuple(x.shape[1:]))
        (x, labels), count = stand_in_for_empty(x, self.prepare_labels(y))
        with tf.GradientTape() as tape:
            reconstruction_loss, kl = self.kl_per_dim(x, training=True, labels=labels)
            reconstruction_loss, kl = reconstruction_loss[:count], kl[:count]
            # The global batch's loss; its gradient is this replica's share.
            loss = self.training_loss(reconstruction_loss, kl)
            total_loss = loss
            if self.losses:  # the same on every replica, whose gradients add up
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                total_loss = loss + ops.sum(self.losses) / replicas
            # Under mixed_float16, the LossScaleOptimizer's scale (else a no-op).
            scaled_loss = self.optimizer.scale_loss(total_loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_metrics(loss, reconstruction_loss, ops.sum(kl, axis=-1))

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._ensure_built(tuple(x.shape[1:]))
        (x, labels), count = stand_in_for_empty(x, self.prepare_labels(y))
        reconstruction_loss, kl = self.kl_per_dim(x, training=False, labels=labels)
        reconstruction_loss, kl = reconstruction_loss[:count], kl[:count]
        loss = self.training_loss(reconstruction_loss, kl)
        return self._update_metrics(loss, reconstruction_loss, ops.sum(kl, axis=-1))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras averages the first batch over the replicas to learn its shapes,
        # which fails on an uneven split; one replica's share has them.
        if iterator is not None and self._distribute_strategy is not None:
            data_batch = first_replica_batch(self.distribute_strategy, iterator)
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _ensure_built(self, image_shape=None):
        if not self.built:
            if image_shape is None:
                raise ValueError(
                    "The VAE is not built yet, so the image shape is unknown: call "
                    "`fit`, `build((None, height, width, channels))` or `encode` first."
                )
            self.build((None, *image_shape))

    def check_labels(self, labels, batch: int, name: str = "labels"):
        """Check user labels against this model and return them for the graph.

        An unconditional model takes no labels; a `ConditionalVAE` needs one
        int label in `[0, num_classes)` per image.

        Raises:
            ValueError: labels given to an unconditional model.
        """
        if labels is not None:
            raise ValueError(
                f"This VAE is unconditional: it takes no {name}. Train a "
                f"vae_tf.ConditionalVAE to choose classes. Received: {name}="
                f"{np.asarray(labels).tolist()!r}"
            )
        return None

    def encode(self, x, labels=None):
        """Posterior parameters of images.

        Args:
            x: images in [0, 1], shape `(batch, height, width, channels)`.
            labels: int class labels `(batch,)` for a conditional model.

        Returns:
            `(z_mean, z_log_var)`, each of shape `(batch, *latent_shape)`.
        """
        x = check_images(x, self.image_shape)
        self._ensure_built(tuple(x.shape[1:]))
        return self.posterior(x, labels=self.check_labels(labels, x.shape[0]))

    def _check_latents(self, z, name: str = "z"):
        z = tf.convert_to_tensor(z, tf.float32)
        if self.latent_shape is None:
            self._ensure_built()  # a spatial latent's size follows the image size
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(
                f"{name} must have shape (batch, "
                f"{', '.join(map(str, self.latent_shape))}). Received: "
                f"{name}.shape={tuple(z.shape)}"
            )
        return z

    def decode(self, z, labels=None):
        """Mean images of `p(x | z)`, shape `(batch, height, width, channels)`.

        Args:
            z: latents, shape `(batch, *latent_shape)`.
            labels: int class labels `(batch,)` for a conditional model.
        """
        z = self._check_latents(z)
        return self.likelihood.mean(
            self.decode_params(z, labels=self.check_labels(labels, z.shape[0]))
        )

    def sample(
        self,
        num_samples: int,
        temperature: float = 1.0,
        seed: int | None = None,
        labels=None,
    ):
        """Generate images from the prior: `z ~ N(0, temperature^2 I)`, then decode.

        Args:
            num_samples: number of images.
            temperature: scale of the prior's standard deviation; below 1 gives
                more typical, less varied images.
            seed: an int for reproducible samples; `None` draws from the
                model's seed generator.
            labels: for a conditional model, the class of each image: `num_samples`
                int labels, or one label for all.

        Returns:
            Mean images, shape `(num_samples, height, width, channels)`.
        """
        if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
            raise ValueError(
                "num_samples must be a positive integer. Received: "
                f"num_samples={num_samples!r}"
            )
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(
                "temperature must be a positive number. Received: "
                f"temperature={temperature!r}"
            )
        labels = self.check_labels(labels, int(num_samples))
        if self.latent_shape is None:
            self._ensure_built()
        return self.likelihood.mean(
            self.generate_params(
                int(num_samples),
                temperature=float(temperature),
                seed=self.seed_generator if seed is None else seed,
                labels=labels,
            )
        )

    def reconstruct(self, x, labels=None):
        """Deterministic reconstructions: the decoded mean at `z = z_mean`."""
        x = check_images(x, self.image_shape)
        self._ensure_built(tuple(x.shape[1:]))
        labels = self.check_labels(labels, x.shape[0])
        return self.likelihood.mean(self.reconstruct_params(x, labels=labels))

    def interpolate(
        self, x_start, x_end, num_steps: int = 8, method: str = "linear", labels=None
    ):
        """Decode a path between the posterior means of two batches of images.

        The path starts at `z_a = E[q(z | x_start)]` and ends at `z_b`; its
        `num_steps` points are decoded in one batch, so the endpoints are
        exactly the two images' reconstructions. `"spherical"` follows the
        great circle (slerp, `vae_tf.generation.interpolate_latents`), which
        keeps the norm typical of Gaussian latents.

        Args:
            x_start: images `(batch, height, width, channels)` in [0, 1].
            x_end: images of the same shape.
            num_steps: points on each path, endpoints included (>= 2).
            method: `"linear"` or `"spherical"`.
            labels: int labels `(batch,)` of a conditional model (one class per
                path).

        Returns:
            Mean images, shape `(batch, num_steps, height, width, channels)`.
        """
        x_start = check_images(x_start, self.image_shape, "x_start")
        x_end = check_images(x_end, tuple(x_start.shape[1:]), "x_end")
        if x_start.shape[0] != x_end.shape[0]:
            raise ValueError(
                "x_start and x_end must hold the same number of images. Received: "
                f"{x_start.shape[0]} and {x_end.shape[0]}"
            )
        self._ensure_built(tuple(x_start.shape[1:]))
        batch = x_start.shape[0]
        labels = self.check_labels(labels, batch)
        z_start, _ = self.posterior(x_start, labels=labels)
        z_end, _ = self.posterior(x_end, labels=labels)
        path = interpolate_latents(z_start, z_end, num_steps, method)
        z = ops.reshape(path, (-1, *self.latent_shape))  # (batch * steps, *latent)
        if labels is not None:
            labels = ops.repeat(labels, num_steps, axis=0)
        images = self.likelihood.mean(self.decode_params(z, labels=labels))
        return ops.reshape(images, (batch, num_steps, *images.shape[1:]))

    def latent_manifold(
        self, grid_size: int = 15, quantile_range=(0.05, 0.95), labels=None
    ):
        """Decode a grid over a 2-D latent space, in one batch.

        Grid points are the Gaussian quantiles `Phi^-1(p)` of `grid_size`
        evenly spaced probabilities `p` in `quantile_range`, so each cell holds
        the same prior mass (Kingma & Welling 2014, figure 4).

        Args:
            grid_size: points per axis.
            quantile_range: the first and last probability.
            labels: one int label for every cell of a conditional model.

        Returns:
            Mean images, shape `(grid_size, grid_size, height, width, channels)`;
            row `i` has the second latent coordinate decreasing down the grid.

        Raises:
            ValueError: if the latent is not a 2-D vector.
        """
        if self.latent_shape is None:
            self._ensure_built()
        if tuple(self.latent_shape) != (2,):
            raise ValueError(
                "latent_manifold needs a 2-D latent vector. Received: latent_shape="
                f"{tuple(self.latent_shape)} (plot a PCA of the latents instead)."
            )
        z = gaussian_grid(grid_size, quantile_range)  # (grid * grid, 2)
        labels = self.check_labels(labels, len(z))
        images = self.likelihood.mean(self.decode_params(z, labels=labels))
        return ops.reshape(images, (grid_size, grid_size, *images.shape[1:]))

    # Keras saves variables, not the seed generator's state; without it a
    # reloaded model would replay the random draws of its first steps.
    _SEED_STATE_KEY = "seed_generator_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_STATE_KEY] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        own = self._trainable_variables + self._non_trainable_variables
        keys = [key for key in store.keys() if key != self._SEED_STATE_KEY]
        if len(keys) != len(own):
            raise ValueError(
                f"The saved VAE has {len(keys)} variables of its own, this one "
                f"{len(own)}: the file was written by a different model."
            )
        for i, variable in enumerate(own):
            variable.assign(store[f"{i}"])
        if self._SEED_STATE_KEY in store.keys():
            self.seed_generator.state.assign(store[self._SEED_STATE_KEY])

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            likelihood=keras.saving.serialize_keras_object(self.likelihood),
            beta=self.beta,
            seed=self.seed,
            free_bits=self.free_bits,
            corruption=None
            if self.corruption is None
            else keras.saving.serialize_keras_object(self.corruption),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
