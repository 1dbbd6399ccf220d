"""A VQ-VAE: a discrete latent map, a straight-through codebook and a learned prior.

van den Oord, Vinyals & Kavukcuoglu 2017 (arXiv:1711.00937). The encoder
maps an image to a map of vectors `z_e`; each is replaced by its nearest
codebook vector `e_k` (the posterior is one-hot, deterministic); the decoder
gives the likelihood's parameters from the quantised map `z_q`:

```
k_i = argmin_j ||z_e,i - e_j||,   z_q,i = e_{k_i}
loss = -log p(x | z_q) + ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2
```

The rounding has no gradient, so the decoder's gradient is copied to the
encoder ("straight-through": `z_e + sg[z_q - z_e]`); the codebook term moves
the codes towards the encoder's outputs, the commitment term (`beta`, 0.25 in
the paper) keeps the encoder near its codes.

The prior. With the posterior one-hot, `KL(q(k | x) || p(k)) = -log p(k)`:
under a uniform prior over `K` codes that is `log K` nats per position, and
the negative ELBO is `-log p(x | z_q) + positions * log K`; a learned prior
over code maps lowers it and is what samples come from. This module's prior
is a small PixelCNN over the code map (`CodePrior`, van den Oord et al. 2016,
arXiv:1606.05328), trained with the model on the codes it is given (their
gradient stopped, so it never moves the encoder), as the paper trains one
after the VQ-VAE. The reported `negative_elbo` is under the learned prior.

What a discrete latent buys: no posterior collapse (the decoder cannot ignore
a code it is given, and the rate is fixed by the map's size and `K`), sharp
reconstructions, a prior that can be as strong as an autoregressive model.
What it costs: no smooth latent space to interpolate in (neighbouring codes
need not mean neighbouring images), codebook collapse (codes that no encoder
output is near stop learning: `codebook_usage` and `perplexity` say how many
are in use), and a second model, the prior, to generate anything.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from vae_tf import likelihoods as likelihoods_lib
from vae_tf._random import uniform
from vae_tf._validation import (
    assert_images,
    assert_positive,
    check_images,
    check_sampling,
    positive_int,
)
from vae_tf.autoregressive import MaskedConv2D, generate_pixels
from vae_tf.encoders import resolution_stages
from vae_tf.evaluation import batch_seed, with_deprecated_keys
from vae_tf.models.base import GenerativeModel

__all__ = ["VectorQuantizer", "VQEncoder", "CodePrior", "VQVAE"]

register = keras.saving.register_keras_serializable(package="vae_tf")


@register
class VectorQuantizer(layers.Layer):
    """Nearest-neighbour quantisation to a learned codebook, straight through.

    Args:
        num_codes: `K`, the codebook's size.
        code_dim: `D`, the size of each code vector (the encoder's channels).

    Call: `z_e` `(batch, h, w, D)` -> `(z_q_st, codes, z_q)`: the quantised
    map with the straight-through gradient `z_e + sg[z_q - z_e]`, the int32
    code indices `(batch, h, w)` and the codebook vectors `z_q`.
    """

    def __init__(self, num_codes: int, code_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_codes = positive_int("num_codes", num_codes)
        self.code_dim = positive_int("code_dim", code_dim)

    def build(self, input_shape):
        if input_shape[-1] != self.code_dim:
            raise ValueError(
                f"The encoder gives {input_shape[-1]} channels; the codebook's "
                f"vectors have code_dim={self.code_dim}."
            )
        limit = 1.0 / self.num_codes  # as in the paper's code
        self.codebook = self.add_weight(
            shape=(self.num_codes, self.code_dim),
            initializer=keras.initializers.RandomUniform(-limit, limit),
            name="codebook",
        )

    def codes(self, z_e):
        """The index of the nearest code vector at each position, `(batch, h, w)`."""
        z_e = ops.cast(z_e, "float32")
        codebook = ops.cast(self.codebook, "float32")
        distances = (  # ||z||^2 - 2 z.e + ||e||^2, (batch, h, w, K)
            ops.sum(ops.square(z_e), axis=-1, keepdims=True)
            - 2.0 * ops.einsum("bhwd,kd->bhwk", z_e, codebook)
            + ops.sum(ops.square(codebook), axis=-1)
        )
        return ops.cast(ops.argmin(distances, axis=-1), "int32")

    def lookup(self, codes):
        """The code vectors of `codes` `(batch, h, w)`: `(batch, h, w, D)`."""
        return ops.take(ops.cast(self.codebook, "float32"), codes, axis=0)

    def call(self, z_e):
        z_e = ops.cast(z_e, "float32")
        codes = self.codes(z_e)
        z_q = self.lookup(codes)  # (batch, h, w, D)
        return z_e + ops.stop_gradient(z_q - z_e), codes, z_q

    def get_config(self):
        return {
            **super().get_config(),
            "num_codes": self.num_codes,
            "code_dim": self.code_dim,
        }


@register
class VQEncoder(keras.Model):
    """A convolutional encoder to a map of `code_dim`-vectors (no variance).

    A 3x3 stem, one stride-2 stage per entry of `filters` (each with
    `residual_blocks` residual blocks), then a 1x1 convolution to `code_dim`
    channels: `(batch, H, W, C) -> (batch, H / 2^s, W / 2^s, code_dim)`.

    Args:
        code_dim: channels of the output map.
        filters: widths of the stride-2 stages.
        residual_blocks: residual blocks per stage.
        activation: hidden activation.
    """

    def __init__(
        self,
        code_dim: int,
        filters=(32, 64),
        residual_blocks: int = 1,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.code_dim = positive_int("code_dim", code_dim)
        self.filters = tuple(filters)
        self.residual_blocks = residual_blocks
        self.activation = activation
        self.stem = layers.Conv2D(self.filters[0], 3, padding="same", name="stem")
        self.stages = resolution_stages(self.filters, residual_blocks, activation)
        self.head_activation = layers.Activation(activation)
        self.head = layers.Conv2D(code_dim, 1, name="head")

    def call(self, inputs, training=False):
        h = self.stem(inputs)  # (batch, H, W, filters[0])
        for stage in self.stages:
            for layer in stage:
                h = layer(h)  # (batch, H / 2^i, W / 2^i, width)
        return self.head(self.head_activation(h))  # (batch, h, w, code_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "code_dim": self.code_dim,
            "filters": list(self.filters),
            "residual_blocks": self.residual_blocks,
            "activation": self.activation,
        }


@register
class CodePrior(keras.Model):
    """A PixelCNN over code maps: `p(k) = prod_i p(k_i | k_<i)`, raster order.

    The codes enter one-hot; a mask-A convolution (the position itself
    hidden), mask-B convolutions, then a 1x1 convolution to `num_codes`
    logits per position.

    Args:
        num_codes: `K`.
        filters: hidden channels.
        num_layers: masked convolutions (the first of `kernel_size`, the rest
            3x3).
        kernel_size: the first layer's (odd) kernel size.

    Call: codes `(batch, h, w)` int -> logits `(batch, h, w, K)`.
    """

    def __init__(
        self,
        num_codes: int,
        filters: int = 64,
        num_layers: int = 4,
        kernel_size: int = 5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_codes = positive_int("num_codes", num_codes)
        self.filters = positive_int("filters", filters)
        self.num_layers = positive_int("num_layers", num_layers)
        self.kernel_size = kernel_size
        self.masked = [MaskedConv2D(filters, kernel_size, "A", name="masked_0")] + [
            MaskedConv2D(filters, 3, "B", name=f"masked_{i}")
            for i in range(1, num_layers)
        ]
        self.logits = layers.Conv2D(num_codes, 1, name="logits")

    def call(self, codes, training=False):
        h = ops.one_hot(codes, self.num_codes)  # (batch, h, w, K)
        for layer in self.masked:
            h = ops.relu(layer(h))
        return ops.cast(self.logits(h), "float32")  # (batch, h, w, K)

    def log_prob(self, codes):
        """`log p(k)` of each code map, nats, `(batch,)`."""
        logits = self(codes)
        log_p = ops.sum(
            ops.one_hot(codes, self.num_codes) * ops.log_softmax(logits, axis=-1),
            axis=-1,
        )  # (batch, h, w)
        return ops.sum(log_p, axis=(1, 2))

    def sample(self, num_samples, map_shape, temperature=1.0, seed=None):
        """Draw code maps position by position, `(num_samples, h, w)` int32.

        Gumbel-max on the logits divided by `temperature` (below 1: more
        typical maps). One prior call per position, in one compiled loop
        (`vae_tf.autoregressive.generate_pixels`).
        """
        height, width = map_shape

        def logits_of(codes):  # (n, h, w, 1) float codes -> (n, h, w, K)
            return self(tf.cast(codes[..., 0], tf.int32)) / temperature

        def draw(logits, position_seed):  # (n, 1, 1, K) -> (n, 1, 1, 1)
            u = uniform(tf.shape(logits), seed=position_seed)
            gumbel = -tf.math.log(-tf.math.log(u * (1 - 2e-6) + 1e-6))
            return tf.cast(tf.argmax(logits + gumbel, axis=-1), tf.float32)[..., None]

        codes, _ = generate_pixels(
            logits_of, num_samples, (height, width, 1), draw, seed, tf.float32
        )
        return tf.cast(codes[..., 0], tf.int32)

    def get_config(self):
        return {
            **super().get_config(),
            "num_codes": self.num_codes,
            "filters": self.filters,
            "num_layers": self.num_layers,
            "kernel_size": self.kernel_size,
        }


@register
class VQVAE(GenerativeModel):
    """A VQ-VAE with a learned PixelCNN prior over its code map.

    Args:
        encoder: images -> `(batch, h, w, code_dim)` (e.g. `VQEncoder`).
        decoder: `(batch, h, w, code_dim)` -> the likelihood's parameters
            (e.g. `vae_tf.ConvDecoder(..., latent_channels=code_dim)`).
        likelihood: a `vae_tf.likelihoods.Likelihood` or its name.
        num_codes: `K`, the codebook's size.
        code_dim: `D`, the codes' size (the encoder's output channels).
        commitment_cost: `beta` of the commitment term.
        prior: a `CodePrior` (default: `CodePrior(num_codes)`).
        seed: seed of the model's draws (binarisation, sampling).
        **kwargs: passed to `keras.Model`.

    Example:

    >>> vq = vae_tf.VQVAE(
    ...     vae_tf.models.vqvae.VQEncoder(16),
    ...     vae_tf.ConvDecoder((None, None, 1), latent_channels=16),
    ...     "bernoulli", num_codes=64, code_dim=16)
    >>> vq.compile(optimizer="adam")
    >>> vq.fit(train_images, epochs=5)
    >>> images = vq.sample(16, seed=0)
    """

    METRICS = ("reconstruction_loss", "prior_loss", "negative_elbo", "perplexity")
    can_generate = True
    loss_curves = {
        "reconstruction_loss": "reconstruction_loss (nats)",
        "negative_elbo": "negative ELBO (nats)",
        "perplexity": "perplexity (codes)",
    }

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        likelihood=None,
        num_codes: int = 64,
        code_dim: int = 16,
        commitment_cost: float = 0.25,
        prior=None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(decoder, dict):
            decoder = keras.saving.deserialize_keras_object(decoder)
        if isinstance(prior, dict):
            prior = keras.saving.deserialize_keras_object(prior)
        if not (
            isinstance(commitment_cost, (int, float))
            and math.isfinite(commitment_cost)
            and commitment_cost >= 0
        ):
            raise ValueError(
                "commitment_cost must be a finite number >= 0. Received: "
                f"commitment_cost={commitment_cost!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihoods_lib.get(
            "bernoulli" if likelihood is None else likelihood
        )
        self.quantizer = VectorQuantizer(num_codes, code_dim, name="quantizer")
        self.prior = CodePrior(num_codes, name="prior") if prior is None else prior
        if self.prior.num_codes != num_codes:
            raise ValueError(
                f"The prior models {self.prior.num_codes} codes; the codebook has "
                f"num_codes={num_codes}."
            )
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.commitment_cost = float(commitment_cost)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.image_shape = None
        self.map_shape = None

    # -- Building ---------------------------------------------------------------

    def build(self, input_shape):
        """Build every network for images of `input_shape[1:]`."""
        image_shape = tuple(int(d) for d in input_shape[1:])
        z_e = self.encoder.compute_output_spec(keras.KerasTensor((None, *image_shape)))
        self.map_shape = tuple(int(d) for d in z_e.shape[1:3])
        self.quantizer.build(z_e.shape)
        self.decoder(keras.KerasTensor((None, *self.map_shape, self.code_dim)))
        self.prior(keras.KerasTensor((None, *self.map_shape), dtype="int32"))
        self.image_shape = image_shape
        self.built = True

    def _ensure_built(self, image_shape=None):
        if not self.built:
            if image_shape is None:
                raise ValueError(
                    "The VQ-VAE is not built yet, so the image shape is unknown: "
                    "call `fit` or `build((None, height, width, channels))` first."
                )
            self.build((None, *image_shape))

    # -- Graph-level parts ------------------------------------------------------

    def encode_codes(self, x, training=False):
        """The code map of images `x`, int32 `(batch, h, w)`."""
        return self.quantizer.codes(self.encoder(x, training=training))

    def decode_params(self, codes, training=False):
        """The likelihood's parameters for code maps `(batch, h, w)`."""
        z_q = self.quantizer.lookup(codes)  # (batch, h, w, D)
        return ops.cast(self.decoder(z_q, training=training), "float32")

    def call(self, inputs, training=False):
        """Reconstruct `inputs`: the likelihood's mean decoded from their codes."""
        codes = self.encode_codes(inputs, training=training)
        return self.likelihood.mean(self.decode_params(codes, training=training))

    # -- The GenerativeModel interface ------------------------------------------

    def prepare_batch(self, x, y=None):
        self._ensure_built(tuple(x.shape[1:]))
        return x, None

    def per_image_terms(self, x, labels=None, training=False, seed=None) -> dict:
        """Per image: `reconstruction` `-log p(x | z_q)` and `prior` `-log p(k)`
        (nats), the `codebook` and `commitment` squared distances, and
        `usage`, the share of positions using each code, `(batch, K)`."""
        seed = self.seed_generator if seed is None else seed
        x = self.likelihood.prepare_targets(ops.cast(x, "float32"), seed=seed)
        z_e = ops.cast(self.encoder(x, training=training), "float32")
        z_st, codes, z_q = self.quantizer(z_e)  # (b, h, w, D), (b, h, w), ...
        params = ops.cast(self.decoder(z_st, training=training), "float32")
        codes = ops.stop_gradient(codes)
        usage = ops.mean(ops.one_hot(codes, self.num_codes), axis=(1, 2))
        return {
            "reconstruction": -self.likelihood.log_prob(x, params),  # (batch,)
            "codebook": ops.sum(
                ops.square(ops.stop_gradient(z_e) - z_q), axis=(1, 2, 3)
            ),
            "commitment": ops.sum(
                ops.square(z_e - ops.stop_gradient(z_q)), axis=(1, 2, 3)
            ),
            "prior": -self.prior.log_prob(codes),  # (batch,)
            "usage": usage,  # (batch, K)
        }

    def objective(self, means: dict):
        """`rec + codebook + beta * commitment + prior` (the prior's term trains
        only the prior: the codes it sees carry no gradient)."""
        return (
            means["reconstruction"]
            + means["codebook"]
            + self.commitment_cost * means["commitment"]
            + means["prior"]
        )

    def step_metrics(self, means: dict) -> dict:
        """`reconstruction_loss`, `prior_loss` (nats), `negative_elbo` (their
        sum: the bound under the learned prior) and `perplexity`, `exp` of the
        entropy of the step's code usage (1 to K: the codes in effective use)."""
        usage = means["usage"]
        entropy = -ops.sum(usage * ops.log(ops.maximum(usage, 1e-12)))
        return {
            "reconstruction_loss": means["reconstruction"],
            "prior_loss": means["prior"],
            "negative_elbo": means["reconstruction"] + means["prior"],
            "perplexity": ops.exp(entropy),
        }

    def evaluate_dataset(self, dataset, seed: int = 0, iwae_k: int | None = None):
        """Test figures (`iwae_k` does not apply: the posterior is one-hot).

        Returns:
            A dict with `test_reconstruction_nats`, `test_prior_nats`,
            `test_negative_elbo_nats` (the negative ELBO under the learned
            prior, nats per image; lower is better), `test_bits_per_dim`,
            `test_negative_elbo_uniform_prior_nats` (under a uniform prior:
            `log K` nats per position), `test_codebook_usage` (the share of
            codes used at least once), `test_perplexity` (of the test set's
            code usage) and `num_test_images`; and the 0.1 names of renamed
            keys (`vae_tf.evaluation.DEPRECATED_KEYS`) until 0.3.

        Raises:
            ValueError: for an empty dataset.
        """
        terms = tf.function(
            lambda x, s: self.per_image_terms(x, training=False, seed=s),
            reduce_retracing=True,
        )
        sums, count, dims = np.zeros(2), 0, None
        usage = np.zeros(self.num_codes)
        for index, batch in enumerate(dataset):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x, _ = self.prepare_batch(self.check_batch(x))  # as fit checks it
            values = terms(x, batch_seed(seed, index))
            sums += [
                float(ops.sum(values["reconstruction"])),
                float(ops.sum(values["prior"])),
            ]
            usage += np.asarray(ops.sum(values["usage"], axis=0), np.float64)
            count += int(x.shape[0])
            dims = math.prod(x.shape[1:])
        if count == 0:
            raise ValueError("The dataset is empty: there is nothing to evaluate.")
        reconstruction, prior = sums / count
        share = usage / usage.sum()
        positions = math.prod(self.map_shape)
        negative_elbo = reconstruction + prior
        return with_deprecated_keys(
            {
                "test_reconstruction_nats": reconstruction,
                "test_prior_nats": prior,
                "test_negative_elbo_nats": negative_elbo,
                "test_bits_per_dim": negative_elbo / (dims * math.log(2.0)),
                "test_negative_elbo_uniform_prior_nats": reconstruction
                + positions * math.log(self.num_codes),
                "test_codebook_usage": float(np.mean(usage > 0)),
                "test_perplexity": float(
                    np.exp(-np.sum(share[share > 0] * np.log(share[share > 0])))
                ),
                "num_test_images": count,
            }
        )

    def reconstruct(self, x, labels=None):
        """The likelihood's mean decoded from the code map of images `x`."""
        x = check_images(x, self.image_shape)
        self._ensure_built(tuple(x.shape[1:]))
        return self.likelihood.mean(self.decode_params(self.encode_codes(x)))

    def sample(
        self, num_samples: int, temperature: float = 1.0, seed=None, labels=None
    ):
        """Images decoded from code maps drawn from the learned prior.

        Args:
            num_samples: number of images.
            temperature: divides the prior's logits; below 1, more typical maps.
            seed: an int for reproducible samples, else the model's generator.
            labels: not taken (the model is unconditional).

        Returns:
            Mean images, `(num_samples, height, width, channels)`.
        """
        if labels is not None:
            raise ValueError("A VQVAE is unconditional: it takes no labels.")
        num_samples, temperature = check_sampling(num_samples, temperature)
        self._ensure_built()
        seed = self.seed_generator if seed is None else seed
        codes = self.prior.sample(int(num_samples), self.map_shape, temperature, seed)
        return self.likelihood.mean(self.decode_params(codes))

    def add_endpoints(self, archive):
        """`encode(x) -> codes`, `decode(codes) -> x_mean`, `reconstruct(x)` and
        `sample(num_samples, temperature, seed)`."""
        self._ensure_built()
        image_spec = tf.TensorSpec((None, *self.image_shape), tf.float32, name="x")
        code_spec = tf.TensorSpec((None, *self.map_shape), tf.int32, name="codes")

        def encode(x):
            return {"codes": self.encode_codes(assert_images(x))}

        def decode(codes):
            return {"x_mean": self.likelihood.mean(self.decode_params(codes))}

        def reconstruct(x):
            return decode(self.encode_codes(assert_images(x)))

        def sample(num_samples, temperature, seed):
            codes = self.prior.sample(
                assert_positive(num_samples, "num_samples"),
                self.map_shape,
                assert_positive(temperature, "temperature"),
                seed,
            )
            return decode(codes)

        archive.track(self)
        archive.add_endpoint("encode", encode, input_signature=[image_spec])
        archive.add_endpoint("decode", decode, input_signature=[code_spec])
        archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])
        archive.add_endpoint(
            "sample",
            sample,
            input_signature=[
                tf.TensorSpec((), tf.int32, name="num_samples"),
                tf.TensorSpec((), tf.float32, name="temperature"),
                tf.TensorSpec((), tf.int32, name="seed"),
            ],
        )

    def tflite_networks(self, images=None) -> dict:
        """The encoder (`x -> z_e`) and the decoder (`z_q -> x_params`); the
        nearest-code search and the lookup stay outside, in numpy or TF."""
        self._ensure_built()
        image_spec = tf.TensorSpec((None, *self.image_shape), tf.float32, name="x")
        map_spec = tf.TensorSpec(
            (None, *self.map_shape, self.code_dim), tf.float32, name="z_q"
        )
        z_q = None
        if images is not None:
            z_q = np.asarray(self.quantizer.lookup(self.encode_codes(images)))
        return {
            "encoder": {
                "function": lambda x: {"z_e": self.encoder(x)},
                "input_signature": [image_spec],
                "network": self.encoder,
                "representative": images,
            },
            "decoder": {
                "function": lambda z: {"x_params": self.decoder(z)},
                "input_signature": [map_spec],
                "network": self.decoder,
                "representative": z_q,
            },
        }

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": keras.saving.serialize_keras_object(self.likelihood),
            "num_codes": self.num_codes,
            "code_dim": self.code_dim,
            "commitment_cost": self.commitment_cost,
            "prior": keras.saving.serialize_keras_object(self.prior),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "likelihood", "prior"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
