"""The variational autoencoder: a `keras.Model` whose training maximises the
ELBO (Kingma & Welling 2014, arXiv:1312.6114)."""

import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf import corruption as corruption_lib
from vae_tf import evaluation
from vae_tf import likelihoods as likelihoods_lib
from vae_tf._random import derive, normal
from vae_tf._validation import (
    assert_images,
    assert_positive,
    check_images,
    check_sampling,
)
from vae_tf.bounds import (
    gaussian_kl,
    gaussian_log_prob,
    standard_normal_log_prob,
    sum_per_example,
)
from vae_tf.generation import gaussian_grid, interpolate_latents
from vae_tf.models.base import GenerativeModel, NotSupportedError

__all__ = ["VAE", "check_images"]


def float32(*tensors):
    """Cast network outputs to float32 (a no-op unless the policy is mixed).

    Under `mixed_float16` / `mixed_bfloat16` the networks compute in half
    precision; the ELBO, the KL and the log-likelihoods are computed in float32
    from these casts.
    """
    cast = [ops.cast(t, "float32") for t in tensors]
    return cast[0] if len(cast) == 1 else tuple(cast)


@keras.saving.register_keras_serializable(package="vae_tf")
class VAE(GenerativeModel):
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

    def compute_terms_per_dim(self, x, training=False, seed=None, labels=None):
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

    def kl_per_dimension(self, x, labels=None):
        """The closed-form KL (nats) of each latent dimension, averaged over
        images `x` (`(batch, h, w, c)` in [0, 1]); `(num_latent_dims,)` numpy
        (a latent map flattened). `labels`: class ids of a conditional model."""
        x, labels = self.prepare_batch(ops.cast(x, "float32"), labels)
        _, kl = self.compute_terms_per_dim(x, seed=0, labels=labels)
        return np.mean(np.asarray(kl), axis=0)

    def kl_per_dim(self, x, training=False, seed=None, labels=None):
        """Deprecated: the 0.1 name of `compute_terms_per_dim` (until 0.3)."""
        warnings.warn(
            "VAE.kl_per_dim is now VAE.compute_terms_per_dim (it returns the "
            "reconstruction term too); the old name goes in 0.3.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.compute_terms_per_dim(x, training, seed=seed, labels=labels)

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
        reconstruction_loss, kl = self.compute_terms_per_dim(
            x, training=training, seed=seed, labels=labels
        )
        return reconstruction_loss, ops.sum(kl, axis=-1)

    # -- The GenerativeModel interface: the loss and what fit reports --------

    METRICS = ("reconstruction_loss", "kl_loss", "elbo")
    can_generate = True
    has_latent_space = True
    loss_curves = {
        "loss": "loss (nats)",
        "reconstruction_loss": "reconstruction_loss (nats)",
        "kl_loss": "kl_loss (nats)",
    }

    @property
    def coding(self) -> tuple:
        """`("lossless",)` when bits-back can code with this model's likelihood."""
        codes = self.likelihood.can_code and not self.autoregressive
        return ("lossless",) if codes else ()

    def check_coding(self, kind: str):
        """Bits-back codes losslessly with a factorised decoder and a likelihood
        that can code (`Bernoulli`, `LocalAutoregressiveGaussian`)."""
        if kind == "lossless" and kind not in self.coding:
            reason = (
                f"its decoder, a {type(self.decoder).__name__}, is autoregressive"
                if self.autoregressive
                else f"its likelihood is {self.likelihood!r}"
            )
            raise NotSupportedError(
                "Lossless coding supports a Bernoulli likelihood (binary images) or "
                "a LocalAutoregressiveGaussian (8-bit images, e.g. the mnist-8bit "
                f"preset) with a factorised decoder; this {type(self).__name__} "
                f"cannot: {reason}."
            )
        if kind == "lossy":
            also = (
                ", which only codes losslessly (bits-back, --lossless)"
                if self.coding
                else ""
            )
            raise NotSupportedError(
                "Lossy coding needs a model trained for it (a vae_tf.LossyVAE, e.g. "
                f"the cifar10-lossy preset). Received: a {type(self).__name__}{also}."
            )
        super().check_coding(kind)

    def prepare_batch(self, x, y=None):
        self._ensure_built(tuple(x.shape[1:]))
        return x, self.prepare_labels(y)

    def per_image_terms(self, x, labels=None, training=False) -> dict:
        """`{"reconstruction": (batch,), "kl": (batch, num_latent_dims)}`, nats.

        One posterior sample per image (`compute_terms_per_dim`).
        """
        reconstruction_loss, kl = self.compute_terms_per_dim(
            x, training=training, labels=labels
        )
        return {"reconstruction": reconstruction_loss, "kl": kl}

    def objective(self, means: dict):
        """`mean rec + beta * sum_d max(free_bits, mean kl_d)` (free bits floor
        each dimension's KL; 0 is the beta-weighted negative ELBO)."""
        kl_dims = means["kl"]  # (num_latent_dims,)
        if self.free_bits > 0:
            kl_dims = ops.maximum(kl_dims, self.free_bits)
        return means["reconstruction"] + self.beta_variable * ops.sum(kl_dims)

    def step_metrics(self, means: dict) -> dict:
        """The true terms whatever `beta` and `free_bits`: `reconstruction_loss`,
        `kl_loss` and `elbo`, nats per image."""
        kl = ops.sum(means["kl"])
        return {
            "reconstruction_loss": means["reconstruction"],
            "kl_loss": kl,
            "elbo": -(means["reconstruction"] + kl),
        }

    def evaluate_dataset(self, dataset, seed: int = 0, iwae_k: int | None = None):
        """`vae_tf.evaluation.evaluate`: test ELBO, active units, KL per
        dimension and, with `iwae_k`, the importance-weighted NLL."""
        return evaluation.evaluate(self, dataset, iwae_k=iwae_k, seed=seed)

    def coding_networks(self) -> tuple:
        return (self.likelihood, self.encoder, self.decoder)

    def tflite_networks(self, images=None) -> dict:
        """The encoder (`x -> z_mean, z_log_var`) and the decoder (`z ->
        x_params`), for `vae_tf.tflite.export_tflite`.

        Args:
            images: calibration images, or `None`; the decoder is calibrated
                on their posterior means.

        Returns:
            `{name: {"function", "input_signature", "network",
            "representative"}}`.

        Raises:
            NotSupportedError: an autoregressive decoder (it needs the pixels
                drawn so far, one network call per pixel).
            ValueError: the model is not built.
        """
        if self.autoregressive:
            raise NotSupportedError(
                "TFLite export covers VAEs with a factorised decoder (z in, "
                f"x_params out); this {type(self).__name__} has a "
                f"{type(self.decoder).__name__}."
            )
        image_spec, latent_spec, _, _ = self._endpoint_specs()
        z_mean = None if images is None else np.asarray(self.encoder(images)[0])
        return {
            "encoder": {
                "function": lambda x: dict(
                    zip(("z_mean", "z_log_var"), self.encoder(x))
                ),
                "input_signature": [image_spec],
                "network": self.encoder,
                "representative": images,
            },
            "decoder": {
                "function": lambda z: {"x_params": self.decoder(z)},
                "input_signature": [latent_spec],
                "network": self.decoder,
                "representative": z_mean,
            },
        }

    def _endpoint_specs(self):
        """`(image, latent, temperature, seed)` `tf.TensorSpec`s of the endpoints.

        Raises:
            ValueError: the model is not built (its image shape is unknown).
        """
        if not self.built or self.image_shape is None:
            raise ValueError(
                "The VAE is not built, so its image shape is unknown: train it or "
                "call `build((None, height, width, channels))` before exporting."
            )
        return (
            tf.TensorSpec((None, *self.image_shape), tf.float32, name="x"),
            tf.TensorSpec((None, *self.latent_shape), tf.float32, name="z"),
            tf.TensorSpec((), tf.float32, name="temperature"),
            tf.TensorSpec((), tf.int32, name="seed"),
        )

    def add_endpoints(self, archive):
        """`encode(x)`, `decode(z)`, `sample(num_samples, temperature, seed)` and
        `reconstruct(x)`; inputs are checked in the graph as in Python."""
        image_spec, latent_spec, temperature_spec, seed_spec = self._endpoint_specs()

        def encode(x):
            z_mean, z_log_var = self.posterior(assert_images(x))
            return {"z_mean": z_mean, "z_log_var": z_log_var}

        def decode(z):
            return {"x_mean": self.likelihood.mean(self.decode_params(z))}

        def sample(num_samples, temperature, seed):
            x_params = self.generate_params(
                assert_positive(num_samples, "num_samples"),
                assert_positive(temperature, "temperature"),
                seed=seed,
            )
            return {"x_mean": self.likelihood.mean(x_params)}

        def reconstruct(x):
            x_params = self.reconstruct_params(assert_images(x))
            return {"x_mean": self.likelihood.mean(x_params)}

        count_spec = tf.TensorSpec((), tf.int32, name="num_samples")
        archive.track(self)
        archive.add_endpoint("encode", encode, input_signature=[image_spec])
        archive.add_endpoint("decode", decode, input_signature=[latent_spec])
        archive.add_endpoint(
            "sample", sample, input_signature=[count_spec, temperature_spec, seed_spec]
        )
        archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])

    def training_loss(self, reconstruction_loss, kl):
        """The minimised loss: mean reconstruction + beta * (floored) KL.

        ```
        loss = mean_i rec_i + beta * sum_d max(free_bits, mean_i kl_id)
        ```

        The means run over every image of the step: under a `tf.distribute`
        strategy, over all replicas, so the value is the global batch's loss
        on every replica and its gradient this replica's share of the global
        gradient (`GenerativeModel.step_loss`).

        Args:
            reconstruction_loss: `(batch,)` nats.
            kl: `(batch, num_latent_dims)` nats, as from `compute_terms_per_dim`.

        Returns:
            A scalar; with `free_bits=0` the batch mean of the beta-weighted
            negative ELBO.
        """
        return self.step_loss({"reconstruction": reconstruction_loss, "kl": kl})[0]

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

    def decode(self, z, labels=None, seed=None):
        """Mean images of `p(x | z)`, shape `(batch, height, width, channels)`.

        Args:
            z: latents, shape `(batch, *latent_shape)`.
            labels: int class labels `(batch,)` for a conditional model.
            seed: an int fixing an autoregressive decoder's pixel draws (the
                same `z` and seed give the same image); `None` draws from the
                model's seed generator. A factorised decoder ignores it.
        """
        z = self._check_latents(z)
        labels = self.check_labels(labels, z.shape[0])
        return self.likelihood.mean(self.decode_params(z, labels=labels, seed=seed))

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
        num_samples, temperature = check_sampling(num_samples, temperature)
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
