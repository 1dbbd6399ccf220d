"""A hierarchical VAE: several levels of latent maps with top-down inference.

A single Gaussian latent layer cannot reach the likelihoods users compare
against: the per-pixel likelihood has to model whatever the one latent misses.
Here `L` latent maps sit at decreasing resolutions, and both the prior and the
posterior are factorised top-down, as in the ladder VAE (Sønderby et al. 2016,
arXiv:1602.02282) and NVAE (Vahdat & Kautz 2020, arXiv:2007.03898):

```
p(x, z) = p(z_L) prod_{i<L} p(z_i | z_{>i}) p(x | z_{1..L})
q(z | x) = q(z_L | x) prod_{i<L} q(z_i | x, z_{>i})
ELBO = E_q[log p(x | z)] - KL(q(z_L | x) || N(0, I))
       - sum_{i<L} E_q[KL(q(z_i | x, z_{>i}) || p(z_i | z_{>i}))]
```

Each KL is the closed form between two diagonal Gaussians given the sampled
levels above it, so every term is non-negative and they sum to the total KL.
`HierarchicalVAE` is a `vae_tf.VAE`: the same `train_step`, `fit`,
evaluation, `.keras` saving and SavedModel export.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from vae_tf._random import derive, normal
from vae_tf._validation import (
    decoder_param_shape,
    non_negative_int,
    positive_ints,
)
from vae_tf.bounds import (
    gaussian_kl,
    gaussian_kl_between,
    gaussian_log_prob,
    standard_normal_log_prob,
    sum_per_example,
)
from vae_tf.encoders import ResidualBlock, bound_log_var, resolution_stages
from vae_tf.models.base import NotSupportedError
from vae_tf.models.vae import VAE, float32

__all__ = ["HierarchicalEncoder", "HierarchicalDecoder", "HierarchicalVAE"]


def _check_levels(filters, latent_channels, residual_blocks):
    filters = positive_ints("filters", filters, "(32, 64)", 1)
    latent_channels = positive_ints("latent_channels", latent_channels, "(8, 8)", 1)
    if len(filters) != len(latent_channels):
        raise ValueError(
            "filters and latent_channels need one entry per latent level. "
            f"Received: filters={filters}, latent_channels={latent_channels}"
        )
    non_negative_int("residual_blocks", residual_blocks)
    return filters, latent_channels


@keras.saving.register_keras_serializable(package="vae_tf")
class HierarchicalEncoder(keras.Model):
    """Bottom-up path of a hierarchical VAE: one feature map per latent level.

    A 3x3 stem, then per level a stride-2 convolution to `filters[i]` and
    `residual_blocks` residual blocks; level `i` is at `1 / 2**(i+1)` of the
    image size. The top level's posterior head maps the last features to
    `q(z_L | x)`.

    Args:
        filters: feature widths per level, bottom (finest) level first.
        latent_channels: latent channels per level, bottom level first.
        residual_blocks: residual blocks per level.
        activation: hidden activation.
        log_var_bound: log-variances are kept in `(-bound, bound)`.

    Returns:
        `(features, z_mean, z_log_var)`: the list of feature maps, bottom
        first, and the top level's posterior parameters.
    """

    def __init__(
        self,
        filters: tuple = (32, 64),
        latent_channels: tuple = (8, 8),
        residual_blocks: int = 1,
        activation: str = "gelu",
        log_var_bound: float = 10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.latent_channels = _check_levels(
            filters, latent_channels, residual_blocks
        )
        self.residual_blocks = residual_blocks
        self.activation = activation
        self.log_var_bound = float(log_var_bound)
        self.factor = 2 ** len(self.filters)
        self.stem = layers.Conv2D(self.filters[0], 3, padding="same", name="stem")
        self.stages = resolution_stages(self.filters, residual_blocks, activation)
        self.head_activation = layers.Activation(activation)
        self.top_posterior = layers.Conv2D(
            2 * self.latent_channels[-1], 3, padding="same", name="top_posterior"
        )

    def latent_shapes(self, image_shape) -> list:
        """Shapes of `z_1 .. z_L` (bottom first) for one image of `image_shape`."""
        height, width = image_shape[0], image_shape[1]
        if height % self.factor or width % self.factor:
            raise ValueError(
                f"A hierarchical VAE with {len(self.filters)} levels needs image "
                f"sizes divisible by {self.factor}; pad or crop the images. "
                f"Received: image_shape={tuple(image_shape)}"
            )
        return [
            (height // 2 ** (i + 1), width // 2 ** (i + 1), channels)
            for i, channels in enumerate(self.latent_channels)
        ]

    def latent_shape(self, image_shape) -> tuple:
        """Shape of the top latent `z_L`, the one `encode` and `decode` use."""
        return self.latent_shapes(image_shape)[-1]

    def call(self, inputs, training=False):
        h = self.stem(inputs)
        features = []
        for stage in self.stages:
            for layer in stage:
                h = layer(h)  # (batch, h / 2^(i+1), w / 2^(i+1), filters[i])
            features.append(h)
        top = self.top_posterior(self.head_activation(h))
        z_mean, raw_log_var = ops.split(top, 2, axis=-1)
        return features, z_mean, bound_log_var(raw_log_var, self.log_var_bound)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=list(self.filters),
            latent_channels=list(self.latent_channels),
            residual_blocks=self.residual_blocks,
            activation=self.activation,
            log_var_bound=self.log_var_bound,
        )
        return config


@keras.saving.register_keras_serializable(package="vae_tf")
class HierarchicalDecoder(keras.Model):
    """Top-down path of a hierarchical VAE: priors, posteriors and the output.

    From the top latent map down, each level's features are upsampled
    (stride-2 transposed convolution); a head gives the prior
    `p(z_i | z_{>i})`, another, seeing the encoder's features too, the
    posterior `q(z_i | x, z_{>i})`; the sampled `z_i` is projected and added to
    the features, then residual blocks. A last upsampling and a 3x3
    convolution give the likelihood's parameters.

    Calling it on the top latent `z_L` decodes with every lower level at its
    prior mean (`decode`); `infer` and `generate` are the two full passes.

    Args:
        param_shape: `(None, None, params_per_pixel)`: fully convolutional,
            any size (given sizes are checked, not needed). (0.1's
            `output_channels` works until 0.3.)
        filters: feature widths per level, bottom level first (as the encoder).
        latent_channels: latent channels per level, bottom level first.
        residual_blocks: residual blocks per level.
        activation: hidden activation.
        log_var_bound: log-variances are kept in `(-bound, bound)`.
    """

    def __init__(
        self,
        param_shape: tuple | None = None,
        filters: tuple = (32, 64),
        latent_channels: tuple = (8, 8),
        residual_blocks: int = 1,
        activation: str = "gelu",
        log_var_bound: float = 10.0,
        output_channels: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _, self.output_channels = decoder_param_shape(
            param_shape, output_channels, None, "HierarchicalDecoder"
        )
        self.filters, self.latent_channels = _check_levels(
            filters, latent_channels, residual_blocks
        )
        self.residual_blocks = residual_blocks
        self.activation = activation
        self.log_var_bound = float(log_var_bound)
        levels = len(self.filters)
        self.project = [
            layers.Conv2D(self.filters[i], 3, padding="same", name=f"project_{i}")
            for i in range(levels)
        ]
        self.res = [
            [
                ResidualBlock(self.filters[i], activation, name=f"res_{i}_{j}")
                for j in range(residual_blocks)
            ]
            for i in range(levels)
        ]
        # Level i < L-1 is reached from level i+1 by one upsampling.
        self.up = [
            layers.Conv2DTranspose(
                self.filters[i],
                3,
                strides=2,
                padding="same",
                activation=activation,
                name=f"up_{i}",
            )
            for i in range(levels - 1)
        ]
        self.prior = [
            layers.Conv2D(
                2 * self.latent_channels[i], 3, padding="same", name=f"prior_{i}"
            )
            for i in range(levels - 1)
        ]
        self.posterior = [
            layers.Conv2D(
                2 * self.latent_channels[i], 3, padding="same", name=f"posterior_{i}"
            )
            for i in range(levels - 1)
        ]
        self.up_out = layers.Conv2DTranspose(
            self.filters[0],
            3,
            strides=2,
            padding="same",
            activation=activation,
            name="up_out",
        )
        self.head_activation = layers.Activation(activation)
        self.params = layers.Conv2D(
            self.output_channels, 3, padding="same", name="params"
        )

    @property
    def param_shape(self) -> tuple:
        return (None, None, self.output_channels)

    def build(self, input_shape):
        """Build every head from the channel counts (the sizes do not matter)."""

        def channels(n):
            return (None, None, None, n)

        for i, width in enumerate(self.filters):
            self.project[i].build(channels(self.latent_channels[i]))
            for block in self.res[i]:
                block.build(channels(width))
        for i in range(len(self.filters) - 1):
            self.up[i].build(channels(self.filters[i + 1]))
            self.prior[i].build(channels(self.filters[i]))
            self.posterior[i].build(channels(2 * self.filters[i]))  # decoder + encoder
        self.up_out.build(channels(self.filters[0]))
        self.params.build(channels(self.filters[0]))

    def _gaussian(self, head, h):
        params = ops.cast(head(self.head_activation(h)), "float32")  # mixed precision
        mean, raw_log_var = ops.split(params, 2, axis=-1)
        return mean, bound_log_var(raw_log_var, self.log_var_bound)

    def _merge(self, i, d, z):
        d = d + self.project[i](z)  # (batch, h_i, w_i, filters[i])
        for block in self.res[i]:
            d = block(d)
        return d

    def _output(self, d):
        return self.params(self.head_activation(self.up_out(d)))

    def _top_down(self, z_top, features=None, temperature=1.0, seed=None, sample=True):
        """One top-down pass. Each level below the top is drawn from the
        posterior `q(z_i | x, z_{>i})` when the encoder's `features` are given
        (inference), else from the prior `p(z_i | z_{>i})` with its scale
        times `temperature` (generation); `sample=False` takes the means.
        Level `i`'s noise is draw `i + 1` of `seed` (see `_random.derive`).

        Returns:
            `(x_params, levels)` where `levels[i]` is `(z, q_mean, q_log_var,
            p_mean, p_log_var)`, bottom first (`q_*` is `None` when
            generating).
        """
        top = len(self.filters) - 1
        d = self._merge(top, ops.zeros_like(self.project[top](z_top)), z_top)
        levels = [None] * top
        for i in reversed(range(top)):
            d = self.up[i](d)  # (batch, h_i, w_i, filters[i])
            p_mean, p_log_var = self._gaussian(self.prior[i], d)
            if features is None:
                q_mean = q_log_var = None
                mean, scale = p_mean, temperature * ops.exp(0.5 * p_log_var)
            else:
                q_mean, q_log_var = self._gaussian(
                    self.posterior[i], ops.concatenate([d, features[i]], axis=-1)
                )
                mean, scale = q_mean, ops.exp(0.5 * q_log_var)
            z = mean
            if sample:
                z = mean + scale * normal(ops.shape(mean), derive(seed, i + 1))
            levels[i] = (z, q_mean, q_log_var, p_mean, p_log_var)
            d = self._merge(i, d, z)
        return self._output(d), levels

    def infer(self, features, z_top, seed=None, sample=True):
        """The inference pass: each level from `q(z_i | x, z_{>i})`.

        Args:
            features: the encoder's feature maps, bottom first.
            z_top: the top latent (sampled, or its posterior mean).
            seed: seed of the lower levels' samples.
            sample: draw the lower levels; else take their posterior means.

        Returns:
            `(x_params, levels)` where `levels[i]` is `(z, q_mean, q_log_var,
            p_mean, p_log_var)` for each level below the top, bottom first.
        """
        return self._top_down(z_top, features, seed=seed, sample=sample)

    def generate(self, z_top, temperature=1.0, seed=None, sample=True):
        """The generative pass: each level below the top from its prior.

        With `sample=False` every lower level takes its prior mean.
        """
        return self._top_down(z_top, None, temperature, seed, sample)[0]

    def call(self, inputs, training=False):
        return self.generate(inputs, sample=False)

    def get_config(self):
        config = super().get_config()
        config.update(
            param_shape=list(self.param_shape),
            filters=list(self.filters),
            latent_channels=list(self.latent_channels),
            residual_blocks=self.residual_blocks,
            activation=self.activation,
            log_var_bound=self.log_var_bound,
        )
        return config


@keras.saving.register_keras_serializable(package="vae_tf")
class HierarchicalVAE(VAE):
    """A VAE with `L` levels of latent maps and top-down inference.

    Takes a `HierarchicalEncoder` and a `HierarchicalDecoder` with the same
    `filters` and `latent_channels`. `encode`, `decode` and the SavedModel's
    endpoints work on the top latent `z_L` (the lower levels at their
    posterior or prior means); `sample` draws every level from the prior;
    `kl_terms` returns each level's KL.

    Example:

    >>> levels = dict(filters=(32, 64), latent_channels=(8, 8))
    >>> vae = vae_tf.HierarchicalVAE(
    ...     vae_tf.HierarchicalEncoder(**levels),
    ...     vae_tf.HierarchicalDecoder(
    ...         (None, None, likelihood.param_channels(3)), **levels
    ...     ),
    ...     likelihood,
    ... )
    """

    def __init__(
        self, encoder, decoder, likelihood=None, beta=1.0, seed=None, **kwargs
    ):
        super().__init__(encoder, decoder, likelihood, beta=beta, seed=seed, **kwargs)
        if self.autoregressive:
            raise ValueError(
                "HierarchicalVAE does not support an autoregressive decoder."
            )
        if self.corruption is not None:
            raise ValueError(
                "HierarchicalVAE does not support corruption (a denoising VAE); use "
                f"vae_tf.VAE. Received: corruption={self.corruption!r}"
            )
        for arg, value in (("encoder", self.encoder), ("decoder", self.decoder)):
            expected = HierarchicalEncoder if arg == "encoder" else HierarchicalDecoder
            if not isinstance(value, expected):
                raise TypeError(
                    f"HierarchicalVAE needs a {expected.__name__} as {arg}. "
                    f"Received: {arg}={value!r}"
                )
        if (
            self.encoder.filters != self.decoder.filters
            or self.encoder.latent_channels != self.decoder.latent_channels
        ):
            raise ValueError(
                "The encoder and decoder must have the same filters and "
                f"latent_channels. Received: encoder {self.encoder.filters}, "
                f"{self.encoder.latent_channels}; decoder {self.decoder.filters}, "
                f"{self.decoder.latent_channels}"
            )

    def posterior(self, x, training=False, labels=None):
        _, z_mean, z_log_var = self.encoder(x, training=training)
        return float32(z_mean, z_log_var)

    def reconstruct_params(self, x, training=False, labels=None):
        features, z_mean, _ = self.encoder(x, training=training)
        x_params, _ = self.decoder.infer(features, z_mean, sample=False)
        return x_params

    def tflite_networks(self, images=None) -> dict:
        """Raises `NotSupportedError`: inference is top-down, so there is no
        encoder/decoder pair to convert (export a SavedModel instead)."""
        raise NotSupportedError(
            "TFLite export covers VAEs whose encoder and decoder are separate "
            f"networks; a {type(self).__name__} infers top-down (each level's "
            "posterior needs the decoder's state). Export a SavedModel instead."
        )

    def generate_params(self, num_samples, temperature=1.0, seed=None, labels=None):
        seed = self.seed_generator if seed is None else seed
        shape = tf.concat([tf.reshape(num_samples, (1,)), self.latent_shape], axis=0)
        z_top = temperature * normal(shape, seed=derive(seed, 0))
        return self.decoder.generate(z_top, temperature, seed=seed)

    def _inference_pass(self, x, training, seed):
        """Sample every level from `q`; return `x_params` and per-level terms."""
        features, z_mean, z_log_var = self.encoder(x, training=training)
        z_mean, z_log_var = float32(z_mean, z_log_var)
        z_top = self.reparameterize(z_mean, z_log_var, seed=derive(seed, 0))
        x_params, levels = self.decoder.infer(features, z_top, seed=seed)
        levels = [float32(*level) for level in levels]  # the KLs in float32
        return float32(x_params), (z_top, z_mean, z_log_var), levels

    def _level_kls(self, x, training, seed):
        """The reconstruction term and each level's KL per element, bottom first."""
        seed = self.seed_generator if seed is None else seed
        x = self.likelihood.prepare_targets(
            x, seed=derive(seed, len(self.decoder.filters) + 1)
        )
        x_params, (_, z_mean, z_log_var), levels = self._inference_pass(
            x, training, seed
        )
        kls = [
            gaussian_kl_between(q_mean, q_log_var, p_mean, p_log_var)
            for _, q_mean, q_log_var, p_mean, p_log_var in levels
        ]
        kls.append(gaussian_kl(z_mean, z_log_var))
        return -self.likelihood.log_prob(x, x_params), kls

    def kl_terms(self, x, training=False, seed=None):
        """KL of each level in nats, bottom level first: a list of `(batch,)`.

        The top level's is `KL(q(z_L | x) || N(0, I))`; each lower level's is
        `KL(q(z_i | x, z_{>i}) || p(z_i | z_{>i}))` at the sampled levels above.
        Also returns the reconstruction term: `(reconstruction_loss, kls)`.
        """
        reconstruction_loss, kls = self._level_kls(x, training, seed)
        return reconstruction_loss, [sum_per_example(kl) for kl in kls]

    def compute_terms_per_dim(self, x, training=False, seed=None, labels=None):
        """As `VAE.compute_terms_per_dim`; every level's latent map flattened,
        bottom first."""
        reconstruction_loss, kls = self._level_kls(x, training, seed)
        batch = ops.shape(x)[0]
        return reconstruction_loss, ops.concatenate(
            [ops.reshape(kl, (batch, -1)) for kl in kls], axis=-1
        )

    def log_importance_weights(self, x, num_samples: int, seed=None, labels=None):
        batch = ops.shape(x)[0]
        x_tiled = ops.reshape(
            ops.tile(x[None], (num_samples, 1, 1, 1, 1)), (-1, *x.shape[1:])
        )  # (k * batch, height, width, channels)
        x_params, (z_top, z_mean, z_log_var), levels = self._inference_pass(
            x_tiled, False, seed
        )
        log_w = self.likelihood.log_prob(x_tiled, x_params)
        log_w += sum_per_example(standard_normal_log_prob(z_top))
        log_w -= sum_per_example(gaussian_log_prob(z_top, z_mean, z_log_var))
        for z, q_mean, q_log_var, p_mean, p_log_var in levels:
            log_w += sum_per_example(gaussian_log_prob(z, p_mean, p_log_var))
            log_w -= sum_per_example(gaussian_log_prob(z, q_mean, q_log_var))
        return ops.reshape(log_w, (num_samples, batch))
