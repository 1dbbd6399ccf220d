"""A VAE for lossy compression: uniform-noise latents under a learned prior.

Ballé, Laparra & Simoncelli 2017 (arXiv:1611.01704) turn a transform coder
into a VAE: the encoder's output `y` is quantised to integers for coding, and
in training the rounding is replaced by additive uniform noise,

```
y_tilde = y + u,    u ~ U(-1/2, 1/2)^d
```

which is a posterior `q(y_tilde | x)` that is uniform on a unit box around `y`.
Its entropy is zero, so the KL term of the ELBO is just the cross-entropy
under the prior, the *rate*; the likelihood term is a Gaussian with a fixed
variance, i.e. a weighted squared error, the *distortion*:

```
loss = E[-log2 p(y_tilde)] / num_pixels + lambda * MSE(x, g(y_tilde))
```

One `lambda` gives one point of the rate-distortion curve. The prior here is
factorised over latents, one Gaussian per channel with a learned mean and
scale, convolved with the unit uniform so its density at `y_tilde` is the mass
it gives to `[y_tilde - 1/2, y_tilde + 1/2]`; at integers that is exactly the
probability the entropy coder uses (`constriction`'s `QuantizedGaussian`).
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf import evaluation
from vae_tf._validation import assert_images
from vae_tf.distributions import discretized_normal_log_mass
from vae_tf.models.base import GenerativeModel, NotSupportedError

__all__ = [
    "GDN",
    "AnalysisTransform",
    "SynthesisTransform",
    "ChannelGaussianPrior",
    "HyperAnalysis",
    "HyperSynthesis",
    "LossyVAE",
    "scale_table",
    "scale_indices",
]

register = keras.saving.register_keras_serializable(package="vae_tf")

LIKELIHOOD_FLOOR = 1e-9  # the smallest probability a latent is given (2^-30)


@register
class GDN(keras.layers.Layer):
    """Generalised divisive normalisation (Ballé et al. 2016, arXiv:1511.06281).

    ```
    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)      # GDN
    y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)      # inverse GDN
    ```

    `beta` and `gamma` are kept non-negative by storing their square roots.
    A GDN after each convolution makes a few layers a good transform for
    images (it Gaussianises local responses); the synthesis side uses the
    inverse.

    Args:
        inverse: the inverse GDN (for the decoder).
    """

    def __init__(self, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = bool(inverse)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.beta_root = self.add_weight(
            name="beta_root", shape=(channels,), initializer="ones"
        )
        self.gamma_root = self.add_weight(
            name="gamma_root",
            shape=(channels, channels),
            initializer=keras.initializers.Identity(gain=0.1**0.5),
        )

    def call(self, x):
        beta = ops.square(self.beta_root) + 1e-6  # (C,)
        gamma = ops.square(self.gamma_root)  # (C_in, C_out)
        # A 1x1 convolution: Keras's einsum ("...i,ij->...j") took 100 times
        # as long, forward and backward, on a batch of 8 128x128x64 maps
        # (measured: 3.9 s against 0.04 s); tensordot's reshape fails on an
        # empty batch (a replica with no image).
        norm = ops.sqrt(ops.conv(ops.square(x), gamma[None, None]) + beta)
        return x * norm if self.inverse else x / norm

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(
                f"{name} must be a positive integer. Received: {name}={value!r}"
            )


@register
class AnalysisTransform(keras.Model):
    """The encoder `y = g_a(x)`: strided 5x5 convolutions with GDN.

    Each of `num_layers` convolutions halves the height and width, so images
    must be padded to a multiple of `2 ** num_layers` (the codec does that).

    Args:
        filters: channels of the hidden layers.
        latent_channels: channels of `y`.
        num_layers: stride-2 layers (the downsampling factor is `2**num_layers`).
    """

    def __init__(
        self, filters: int = 96, latent_channels: int = 96, num_layers: int = 4, **kw
    ):
        super().__init__(**kw)
        _check_positive(
            filters=filters, latent_channels=latent_channels, num_layers=num_layers
        )
        self.filters = filters
        self.latent_channels = latent_channels
        self.num_layers = num_layers
        self.stages = []
        for i in range(num_layers):
            last = i == num_layers - 1
            self.stages.append(
                keras.layers.Conv2D(
                    latent_channels if last else filters,
                    5,
                    strides=2,
                    padding="same",
                    name=f"conv_{i}",
                )
            )
            if not last:
                self.stages.append(GDN(name=f"gdn_{i}"))

    def call(self, x, training=False):
        h = x * 2.0 - 1.0  # (batch, H, W, C) in [-1, 1]
        for stage in self.stages:
            h = stage(h)
        # float32 also under a mixed-precision policy: the rate and the
        # codecs read the latents in float32.
        return ops.cast(h, "float32")  # (batch, H / f, W / f, latent_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "latent_channels": self.latent_channels,
            "num_layers": self.num_layers,
        }


@register
class SynthesisTransform(keras.Model):
    """The decoder `x_hat = g_s(y_hat)`: transposed convolutions with inverse GDN.

    Args:
        filters: channels of the hidden layers.
        channels: image channels.
        num_layers: stride-2 layers (the upsampling factor is `2**num_layers`).
    """

    def __init__(self, filters: int = 96, channels: int = 3, num_layers: int = 4, **kw):
        super().__init__(**kw)
        _check_positive(filters=filters, channels=channels, num_layers=num_layers)
        self.filters = filters
        self.channels = channels
        self.num_layers = num_layers
        self.stages = []
        for i in range(num_layers):
            last = i == num_layers - 1
            self.stages.append(
                keras.layers.Conv2DTranspose(
                    channels if last else filters,
                    5,
                    strides=2,
                    padding="same",
                    name=f"deconv_{i}",
                )
            )
            if not last:
                self.stages.append(GDN(inverse=True, name=f"igdn_{i}"))

    def call(self, y, training=False):
        h = y
        for stage in self.stages:
            h = stage(h)
        # float32 also under a mixed-precision policy (the distortion, the
        # endpoints and the codecs read it).
        return ops.cast((h + 1.0) / 2.0, "float32")  # (batch, H, W, C), ~[0, 1]

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "channels": self.channels,
            "num_layers": self.num_layers,
        }


def latent_log_mass(y, mean, scale):
    """Log-mass (nats) of the unit bin around each latent `y` under
    `N(mean, scale^2)`, floored at `log LIKELIHOOD_FLOOR`: the density of the
    Gaussian convolved with the unit uniform (`vae_tf.distributions`)."""
    log_mass = discretized_normal_log_mass(y, mean, scale, bin_width=1.0)
    return ops.maximum(log_mass, math.log(LIKELIHOOD_FLOOR))


@register
class ChannelGaussianPrior(keras.layers.Layer):
    """A factorised prior: one learned Gaussian per latent channel, convolved with
    the unit uniform.

    ```
    p(y_tilde) = Phi((y_tilde - mu_c + 1/2) / sigma_c)
               - Phi((y_tilde - mu_c - 1/2) / sigma_c)
    ```

    At integers this is the probability of the quantised latent under a
    Gaussian discretised to unit bins, the model the entropy coder uses. The
    difference of CDFs is taken on the side of the mean where it does not
    cancel (both tails are small there), and floored at `LIKELIHOOD_FLOOR`.

    Args:
        channels: latent channels.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        _check_positive(channels=channels)
        self.channels = channels
        self.mean = self.add_weight(name="mean", shape=(channels,), initializer="zeros")
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(channels,),
            initializer="zeros",
        )

    @property
    def scale(self):
        """`sigma_c`, floored at 0.11 (below it every latent is 0 at any cost)."""
        return ops.maximum(ops.exp(self.log_scale), 0.11)

    def log_prob(self, y_tilde):
        """Log-probabilities (nats) of `y_tilde`, shape `(..., channels)` like it."""
        return latent_log_mass(y_tilde, self.mean, self.scale)

    def call(self, y_tilde):
        """Probabilities of `y_tilde`, shape `(..., channels)` like it."""
        return ops.exp(self.log_prob(y_tilde))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def _bits(log_probs):
    """`-sum log2 p` per image of a `(batch, h, w, c)` map of log-probabilities."""
    return -ops.sum(log_probs, axis=(1, 2, 3)) / math.log(2.0)


# The scales the hyperprior may predict, log-spaced. The codec codes each
# latent under the nearest of these (the index is an integer, so encoder and
# decoder agree on it exactly); training uses the unrounded scale.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64


def scale_table():
    """The `SCALE_LEVELS` scales the codec uses, float64, ascending."""
    return np.exp(np.linspace(np.log(SCALE_MIN), np.log(SCALE_MAX), SCALE_LEVELS))


def scale_indices(scales):
    """The index of the nearest (in log) table scale to each of `scales` (numpy)."""
    step = (np.log(SCALE_MAX) - np.log(SCALE_MIN)) / (SCALE_LEVELS - 1)
    t = (np.log(np.asarray(scales, np.float64)) - np.log(SCALE_MIN)) / step
    return np.clip(np.round(t), 0, SCALE_LEVELS - 1).astype(np.int64)


@register
class HyperAnalysis(keras.Model):
    """`z = h_a(|y|)`: the side information, at half the latents' resolution.

    A 3x3 convolution, a stride-2 5x5 one and a 5x5 one, ReLU between
    (Ballé et al. 2018, arXiv:1802.01436, with one stride 2 instead of two so
    that small images pad less).
    """

    def __init__(self, filters: int = 64, channels: int = 64, **kw):
        super().__init__(**kw)
        _check_positive(filters=filters, channels=channels)
        self.filters = filters
        self.channels = channels
        # Sub-layers take the model's dtype (float32 in LossyVAE, also under
        # a mixed-precision policy), which Keras does not pass down itself.
        conv = functools.partial(keras.layers.Conv2D, dtype=self.dtype_policy)
        self.stages = [
            conv(filters, 3, padding="same", activation="relu"),
            conv(filters, 5, strides=2, padding="same", activation="relu"),
            conv(channels, 5, padding="same"),
        ]

    def call(self, y):
        h = ops.abs(y)
        for stage in self.stages:
            h = stage(h)
        return h

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "channels": self.channels,
        }


@register
class HyperSynthesis(keras.Model):
    """`log sigma = h_s(z_hat)`: the scale of every latent of `y`, from `z`;
    with `means`, `(mu, log sigma) = h_s(z_hat)`, the means in the first
    `latent_channels` outputs (Minnen, Ballé & Toderici 2018,
    arXiv:1809.02736).

    The mirror of `HyperAnalysis` (a stride-2 transposed convolution).
    """

    def __init__(self, filters: int = 64, latent_channels: int = 96, means=False, **kw):
        super().__init__(**kw)
        _check_positive(filters=filters, latent_channels=latent_channels)
        self.filters = filters
        self.latent_channels = latent_channels
        self.means = bool(means)
        conv = functools.partial(keras.layers.Conv2D, dtype=self.dtype_policy)
        self.stages = [
            conv(filters, 5, padding="same", activation="relu"),
            keras.layers.Conv2DTranspose(
                filters,
                5,
                strides=2,
                padding="same",
                activation="relu",
                dtype=self.dtype_policy,
            ),
            conv(latent_channels * (2 if self.means else 1), 3, padding="same"),
        ]

    def call(self, z_hat):
        h = z_hat
        for stage in self.stages:
            h = stage(h)
        return h

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "latent_channels": self.latent_channels,
            "means": self.means,
        }


@register
class LossyVAE(GenerativeModel):
    """A transform-coding VAE trained on rate + lambda * distortion.

    ```
    y = g_a(x),  y_tilde = y + u,  u ~ U(-1/2, 1/2)     (training)
    y_hat = round(y)                                    (evaluation, coding)
    rate = -sum log2 p(y_tilde) / (H * W)               bits per pixel
    distortion = mean((255 x - 255 g_s(y_tilde))^2)     MSE in 8-bit units
    loss = rate + lmbda * distortion
    ```

    With `hyperprior_channels > 0` the prior of `y` is the scale hyperprior
    of Ballé et al. 2018 (arXiv:1802.01436): side information
    `z = h_a(|y|)` is quantised and coded under the factorised prior, and
    each latent of `y` under a zero-mean Gaussian whose scale `h_s(z_hat)`
    predicts, so the model spends bits where the image has detail:

    ```
    rate = -(sum log2 p(y_tilde | z_tilde) + sum log2 p(z_tilde)) / (H * W)
    ```

    With `mean_scale=True` the hyperprior predicts each latent's mean too
    (the mean-scale hyperprior of Minnen, Ballé & Toderici 2018,
    arXiv:1809.02736), and the latents are rounded around it, `y_hat =
    round(y - mu) + mu`, so the coder codes `round(y - mu)` under `N(0,
    sigma)`.

    `prior` is the factorised prior: of `y`, or of `z` with a hyperprior.

    `fit` shows `loss`, `bpp` (the rate), `mse` and `psnr` (dB, the mean of
    each image's PSNR, as `evaluate` and the benchmarks average it).
    `evaluate` rounds the latents, so its `bpp` is the rate the entropy coder
    achieves up to a few bytes per file (`vae_tf.compression.LossyCodec`).

    Args:
        lmbda: the weight of the distortion; larger means higher quality and
            rate (about 0.003 to 0.1 spans 0.3 to 3 bits per pixel on CIFAR-10).
        filters: hidden channels of both transforms.
        latent_channels: channels of `y`.
        num_layers: stride-2 layers of each transform.
        channels: image channels.
        hyperprior_channels: channels of the side information `z`; 0 for a
            factorised prior on `y` (Ballé et al. 2017).
        mean_scale: the hyperprior predicts means as well as scales (needs
            `hyperprior_channels > 0`).
        seed: seed of the uniform noise.

    Example:

    ```python
    model = vae_tf.LossyVAE(lmbda=0.01)
    model.compile(optimizer="adam")
    model.fit(train_images, epochs=10)  # images in [0, 1], (N, H, W, 3)
    ```
    """

    def __init__(
        self,
        lmbda: float = 0.01,
        filters: int = 96,
        latent_channels: int = 96,
        num_layers: int = 4,
        channels: int = 3,
        hyperprior_channels: int = 0,
        mean_scale: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(lmbda, (int, float)) or not lmbda > 0:
            raise ValueError(f"lmbda must be a positive number. Received: {lmbda=}")
        self.lmbda = float(lmbda)
        self.seed = seed
        self.analysis = AnalysisTransform(filters, latent_channels, num_layers)
        self.synthesis = SynthesisTransform(filters, channels, num_layers)
        if hyperprior_channels != 0:
            _check_positive(hyperprior_channels=hyperprior_channels)
        if mean_scale and not hyperprior_channels:
            raise ValueError(
                "mean_scale=True needs a hyperprior to predict the means: give "
                f"hyperprior_channels > 0. Received: {hyperprior_channels=}"
            )
        self.hyperprior_channels = hyperprior_channels
        self.mean_scale = bool(mean_scale)
        # The rate is computed in float32, also under a mixed-precision policy.
        if hyperprior_channels:
            self.hyper_analysis = HyperAnalysis(
                filters, hyperprior_channels, dtype="float32"
            )
            self.hyper_synthesis = HyperSynthesis(
                filters, latent_channels, self.mean_scale, dtype="float32"
            )
        self.prior = ChannelGaussianPrior(
            hyperprior_channels or latent_channels, dtype="float32"
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Fully convolutional: every weight's shape is known now, so the model
        # is built at once (for any image size) and loads like any Keras model.
        self.build((None, None, None, channels))

    @property
    def downsampling(self) -> int:
        """Images are padded to a multiple of this (`2 ** num_layers`, twice that
        with a hyperprior)."""
        return 2**self.analysis.num_layers * (2 if self.hyperprior_channels else 1)

    def pad(self, images) -> np.ndarray:
        """Images padded on the bottom and right to a multiple of `downsampling`,
        by repeating the edge pixels (as the codec pads them).

        Args:
            images: `(batch, height, width, channels)`.

        Returns:
            float32 `(batch, padded_height, padded_width, channels)`.
        """
        images = np.asarray(images, np.float32)
        height, width = images.shape[1:3]
        f = self.downsampling
        padding = ((0, 0), (0, -height % f), (0, -width % f), (0, 0))
        return np.pad(images, padding, mode="edge")

    @property
    def channels(self) -> int:
        return self.synthesis.channels

    @property
    def latent_channels(self) -> int:
        return self.analysis.latent_channels

    def build(self, input_shape):
        x = ops.zeros((1, self.downsampling, self.downsampling, input_shape[-1]))
        y = self.analysis(x)
        self.synthesis(y)
        self.rate_bits(ops.cast(y, "float32"))
        self.built = True

    def call(self, x, training=False):
        """The reconstruction from rounded latents (noisy ones if `training`)."""
        y = self.analysis(x, training=training)
        if self.mean_scale:  # rounded around the means the hyperprior predicts
            y_hat, _ = self.rate_bits(ops.cast(y, "float32"), training)
        else:
            y_hat = self.quantize_latents(y, training)
        return self.synthesis(y_hat, training=training)

    def quantize_latents(self, y, training=False):
        """`y + u` with uniform noise when training, else `round(y)`."""
        if training:
            noise = keras.random.uniform(
                ops.shape(y), -0.5, 0.5, seed=self.seed_generator
            )
            return y + noise
        return ops.round(y)

    def latent_scales(self, z_hat):
        """The scale of each latent of `y` that the hyperprior predicts from
        `z_hat`, in `[SCALE_MIN, SCALE_MAX]`."""
        return self.latent_distribution(z_hat)[1]

    def latent_distribution(self, z_hat):
        """`(mean, scale)` of each latent of `y` that the hyperprior predicts
        from `z_hat`: the means (0 without `mean_scale`) and the scales, in
        `[SCALE_MIN, SCALE_MAX]`."""
        out = self.hyper_synthesis(z_hat)
        if self.mean_scale:
            mean, log_scale = (
                out[..., : self.latent_channels],
                out[..., self.latent_channels :],
            )
        else:
            mean, log_scale = ops.zeros_like(out), out
        bounds = (math.log(SCALE_MIN), math.log(SCALE_MAX))
        return mean, ops.exp(ops.clip(log_scale, *bounds))

    def rate_bits(self, y, training=False):
        """`(y_hat, bits)`: the quantised latents and each image's bits.

        `y` is the analysis transform's (float32) output; it is rounded, or
        given uniform noise if `training`, and so is the side information.
        """
        if not self.hyperprior_channels:
            y_hat = self.quantize_latents(y, training)
            return y_hat, _bits(self.prior.log_prob(y_hat))
        z_hat = self.quantize_latents(self.hyper_analysis(y), training)
        # An odd-sized latent map (an image not padded to `downsampling`) gets
        # one row or column of scales too many: drop it.
        height, width = ops.shape(y)[1], ops.shape(y)[2]
        mean, scales = self.latent_distribution(z_hat)
        mean, scales = mean[:, :height, :width], scales[:, :height, :width]
        if training or not self.mean_scale:
            y_hat = self.quantize_latents(y, training)
        else:  # round(y - mu) + mu: what the coder codes is round(y - mu)
            y_hat = ops.round(y - mean) + mean
        log_p_y = latent_log_mass(y_hat, mean, scales)
        return y_hat, _bits(log_p_y) + _bits(self.prior.log_prob(z_hat))

    def terms(self, x, training=False):
        """`(bits, x_hat)`: each image's rate in bits, `(batch,)`, and its
        reconstruction (float32, shaped like `x`, not clipped)."""
        x = ops.cast(x, "float32")
        # float32 latents and outputs, also under a mixed-precision policy.
        y = ops.cast(self.analysis(x, training=training), "float32")  # (b, h, w, M)
        y_hat, bits = self.rate_bits(y, training)
        return bits, ops.cast(self.synthesis(y_hat, training=training), "float32")

    # -- The GenerativeModel interface ----------------------------------------

    METRICS = ("bpp", "mse", "psnr")
    coding = ("lossy",)
    loss_curves = {"loss": "bpp + lmbda MSE", "bpp": "bits/pixel", "psnr": "dB"}

    def per_image_terms(self, x, labels=None, training=False) -> dict:
        """`{"bpp", "mse", "psnr"}`, each `(batch,)`: each image's rate in bits
        per pixel, squared error per value (8-bit units) and PSNR (dB,
        `vae_tf.evaluation.psnr_per_image`)."""
        x = ops.cast(x, "float32")
        bits, x_hat = self.terms(x, training)
        squared_error = ops.sum(ops.square(255.0 * (x - x_hat)), axis=(1, 2, 3))
        pixels = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], "float32")
        values = pixels * ops.cast(ops.shape(x)[3], "float32")
        return {
            "bpp": bits / pixels,
            "mse": squared_error / values,
            "psnr": evaluation.psnr_per_image(x_hat, x),
        }

    def objective(self, means: dict):
        """Rate + lambda x distortion: `bpp + lmbda * mse`."""
        return means["bpp"] + self.lmbda * means["mse"]

    def step_metrics(self, means: dict) -> dict:
        """The means of the per-image terms: `bpp`, `mse` and `psnr`."""
        return {name: means[name] for name in self.METRICS}

    def evaluate_dataset(self, dataset, seed: int = 0, iwae_k: int | None = None):
        """`vae_tf.evaluation.evaluate_rate_distortion` (`test_bpp`,
        `test_psnr_db`, ...) and `lmbda`; `seed` and `iwae_k` do not apply."""
        return {
            **evaluation.evaluate_rate_distortion(self, dataset),
            "lmbda": self.lmbda,
        }

    def reconstruct(self, x, labels=None):
        """Decoded images `(batch, height, width, channels)` in [0, 1], latents
        rounded as the codec codes them (any size: padded like the codec pads,
        edges repeated, and cropped back)."""
        x = assert_images(x)
        height, width = int(x.shape[1]), int(x.shape[2])
        y_hat, _ = self.rate_bits(ops.cast(self.analysis(self.pad(x)), "float32"))
        x_hat = self.synthesis(y_hat)[:, :height, :width]
        return ops.clip(ops.cast(x_hat, "float32"), 0.0, 1.0)

    def check_coding(self, kind: str):
        if kind == "lossless":
            raise NotSupportedError(
                "This model is a lossy codec (a LossyVAE): it has no likelihood of "
                "the pixels to code them losslessly. Drop --lossless, or use a VAE "
                "run such as mnist-8bit."
            )
        super().check_coding(kind)

    def coding_networks(self) -> tuple:
        networks = (self.analysis, self.synthesis, self.prior)
        if self.hyperprior_channels:
            networks += (self.hyper_analysis, self.hyper_synthesis)
        return networks

    def add_endpoints(self, archive):
        """`analysis(x) -> y`, `synthesis(y_hat) -> x_hat` and `reconstruct(x)
        -> x_hat` (latents rounded), for images whose height and width are
        multiples of `downsampling` (checked in the graph)."""
        image_spec = tf.TensorSpec((None, None, None, self.channels), tf.float32, "x")
        latent_spec = tf.TensorSpec(
            (None, None, None, self.latent_channels), tf.float32, name="y_hat"
        )
        factor = self.downsampling

        def checked(x):  # images in [0, 1], sized a multiple of the downsampling
            sized = tf.debugging.assert_equal(
                tf.shape(x)[1:3] % factor,
                0,
                message=f"x's height and width must be multiples of {factor}",
            )
            with tf.control_dependencies([sized]):
                return assert_images(x)

        def analysis(x):
            return {"y": self.analysis(checked(x))}

        def synthesis(y_hat):
            return {"x_hat": tf.clip_by_value(self.synthesis(y_hat), 0.0, 1.0)}

        def reconstruct(x):
            y = tf.cast(self.analysis(checked(x)), tf.float32)
            return synthesis(self.rate_bits(y)[0])

        archive.track(self)
        archive.add_endpoint("analysis", analysis, input_signature=[image_spec])
        archive.add_endpoint("synthesis", synthesis, input_signature=[latent_spec])
        archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])

    def tflite_networks(self, images=None) -> dict:
        """The analysis (`x -> y`) and synthesis (`y_hat -> x_hat`) transforms,
        for `vae_tf.tflite.export_tflite`; with `images`, the synthesis is
        calibrated on their rounded latents."""
        image_spec = tf.TensorSpec((None, None, None, self.channels), tf.float32, "x")
        latent_spec = tf.TensorSpec(
            (None, None, None, self.latent_channels), tf.float32, name="y_hat"
        )
        if images is not None:
            images = self.pad(images)
        y_hat = None
        if images is not None:
            y = ops.cast(self.analysis(images), "float32")
            y_hat = np.asarray(self.rate_bits(y)[0])
        return {
            "analysis": {
                "function": lambda x: {"y": self.analysis(x)},
                "input_signature": [image_spec],
                "network": self.analysis,
                "representative": images,
            },
            "synthesis": {
                "function": lambda y: {"x_hat": self.synthesis(y)},
                "input_signature": [latent_spec],
                "network": self.synthesis,
                "representative": y_hat,
            },
        }

    def get_config(self):
        return {
            **super().get_config(),
            "lmbda": self.lmbda,
            "filters": self.analysis.filters,
            "latent_channels": self.analysis.latent_channels,
            "num_layers": self.analysis.num_layers,
            "channels": self.synthesis.channels,
            "hyperprior_channels": self.hyperprior_channels,
            "mean_scale": self.mean_scale,
            "seed": self.seed,
        }
