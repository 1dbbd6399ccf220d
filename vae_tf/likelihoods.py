"""Observation models `p(x | z)`: what the decoder's output means.

A likelihood turns the decoder's raw output (`x_params`, e.g. logits) into a
log-probability of the data, a mean image to show, and samples. The VAE never
hard-codes a loss: it asks its likelihood.
"""

import functools
import math
import warnings

import constriction
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf import exact
from vae_tf._random import normal, uniform
from vae_tf.bounds import sum_per_example
from vae_tf.distributions import (
    discretized_log_mass,
    discretized_normal_log_mass,
    logistic_log_cdf,
    logistic_log_sf,
)

__all__ = [
    "Likelihood",
    "Bernoulli",
    "DiscretizedLogisticMixture",
    "DiscretizedGaussian",
    "LocalAutoregressiveGaussian",
    "get",
]


class Likelihood:
    """Base class of observation models.

    Subclasses define how many decoder outputs each image channel needs
    (`param_channels`), the log-probability of a batch, the mean image and
    samples. They are plain serialisable objects, not layers: they own no
    weights.
    """

    # Whether bits-back coding (`vae_tf.compression.BitsBackCodec`) can code
    # images under this likelihood: then it implements the three coding
    # methods below, and the codec holds no likelihood maths of its own.
    can_code = False

    def param_channels(self, channels: int) -> int:
        """Number of decoder output channels for an image with `channels`."""
        raise NotImplementedError

    def prepare_targets(self, x, seed=None):
        """Map a batch of images in [0, 1] to the values the model is fit to."""
        return x

    def log_prob(self, x, x_params):
        """Log-probability of each image in nats, shape `(batch,)`."""
        raise NotImplementedError

    def mean(self, x_params):
        """Mean image in [0, 1], shape of the image."""
        raise NotImplementedError

    def sample(self, x_params, seed=None):
        """A sample image, shape of the image."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- Coding: the distributions an entropy coder codes pixels with --------
    #
    # `coder` is a `constriction.stream.stack.AnsCoder` (a stack: the last
    # pushed is the first popped); `x_params` is the decoder's output as a
    # numpy array `(batch, h, w, P)`; images are uint8 `(batch, h, w, C)`.
    # `push_images` then `pop_images` with the same `x_params` must give the
    # images back and leave the coder as it was, on any machine: the
    # distributions are computed in float64, elementwise, in one fixed order.
    # `sizes`, int `(batch, 2)` or `None` (all), is the region `(height,
    # width)` at the top left of each image that is coded: the rest (a tile's
    # padding past an image's edge) is 0 in the images pushed, is not coded,
    # and pops as 0.

    def check_codable(self, images):
        """Raise a `ValueError` naming the problem if `images` (uint8) cannot be
        coded under this likelihood."""
        if not self.can_code:
            raise ValueError(f"{self!r} cannot code images.")

    def push_images(self, coder, images, x_params, sizes=None):
        """Push `images` onto `coder`'s stack under `p(x | x_params)`."""
        raise NotImplementedError(f"{self!r} cannot code images.")

    def pop_images(self, coder, x_params, sizes=None):
        """Pop the images `push_images` pushed with the same `x_params`."""
        raise NotImplementedError(f"{self!r} cannot code images.")


def coded_region(shape, sizes) -> np.ndarray | None:
    """Which pixels of images `shape` `(batch, h, w, ...)` are coded: a bool
    `(batch, h, w)` mask of each image's `sizes` region, or `None` for all."""
    if sizes is None:
        return None
    sizes = np.asarray(sizes).reshape(-1, 2)
    rows = np.arange(shape[1])[None, :, None] < sizes[:, 0, None, None]
    cols = np.arange(shape[2])[None, None, :] < sizes[:, 1, None, None]
    return rows & cols


def _region_of(images, sizes) -> np.ndarray | None:
    """`coded_region` of uint8 `images`, checking that what is not coded is 0
    (the decoder has only 0 there, and the pixels after it lean on it)."""
    region = coded_region(images.shape, sizes)
    if region is not None and images[~region].any():
        raise ValueError(
            "Pixels outside the coded region (sizes) must be 0: the decoder fills "
            "them with 0."
        )
    return region


@keras.saving.register_keras_serializable(package="vae_tf")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels parameterised by logits.

    The log-probability of binary pixels `x` in {0, 1} under logits `l` is
    computed from the logits, never from probabilities, so it stays finite for
    any logit:

    ```
    log p(x | l) = x * log sigmoid(l) + (1 - x) * log(1 - sigmoid(l))
                 = x * l - softplus(l)
    ```

    Grey-level images are turned into binary targets by `binarization`:

    - `"dynamic"` (the standard setting for reported MNIST likelihoods): a
      fresh sample `x ~ Bernoulli(intensity)` at every training step, so the
      model sees a new binarisation of each image every epoch. Images that are
      already binary are left unchanged.
    - `"threshold"`: a fixed, deterministic binarisation,
      `x = 1[intensity > 0.5]`.
    - `None`: the intensities are used as targets as they are: for data that
      is already binary, e.g. *statically binarised* MNIST as the literature
      means it (one fixed random draw per image, Salakhutdinov & Murray 2008;
      `vae_tf.data.binarize`). On grey values this is the "binary
      cross-entropy on grey values" of many tutorials: the Bernoulli mass
      evaluated at non-binary points is not a normalised likelihood, so the
      number it gives is not a log-likelihood.

    `"static"`, the 0.1 name of `"threshold"`, is accepted until 0.3 with a
    `DeprecationWarning` (it is not static binarisation as the literature
    uses the term).

    Args:
        binarization: `"dynamic"`, `"threshold"` or `None`.

    Raises:
        ValueError: for any other `binarization`.

    Example:

    >>> likelihood = vae_tf.likelihoods.Bernoulli("dynamic")
    >>> likelihood.log_prob(x, x_logits)  # (batch,)
    """

    BINARIZATIONS = ("dynamic", "threshold", None)

    can_code = True  # binary images, one bit each

    def __init__(self, binarization: str | None = "dynamic"):
        if binarization == "static":
            warnings.warn(
                'Bernoulli("static") is now Bernoulli("threshold"): it thresholds at '
                "0.5. Static binarisation as the literature means it is one fixed "
                "random draw: binarise the data once (vae_tf.data.binarize) and use "
                "Bernoulli(None). The old name goes in 0.3.",
                DeprecationWarning,
                stacklevel=2,
            )
            binarization = "threshold"
        if binarization not in self.BINARIZATIONS:
            raise ValueError(
                "binarization must be one of 'dynamic', 'threshold' or None. "
                f"Received: binarization={binarization!r}"
            )
        self.binarization = binarization

    def param_channels(self, channels: int) -> int:
        return channels

    def prepare_targets(self, x, seed=None):
        if self.binarization == "dynamic":
            return ops.cast(uniform(ops.shape(x), seed) < x, x.dtype)
        if self.binarization == "threshold":
            return ops.cast(x > 0.5, x.dtype)
        return x

    def log_prob(self, x, x_params):
        x_logits = ops.cast(x_params, "float32")
        x = ops.cast(x, "float32")
        return sum_per_example(x * x_logits - ops.softplus(x_logits))  # (batch,)

    def mean(self, x_params):
        return ops.sigmoid(x_params)

    def sample(self, x_params, seed=None):
        probs = ops.sigmoid(x_params)
        return ops.cast(uniform(ops.shape(probs), seed) < probs, probs.dtype)

    def check_codable(self, images):
        values = np.unique(images)
        if not set(values.tolist()) <= {0, 255}:
            raise ValueError(
                f"This model's likelihood is {self!r}: it codes binary images, "
                f"pixels 0 or 255. These images have {len(values)} distinct values, "
                f"e.g. {values[:5].tolist()}."
            )

    @staticmethod
    def _probabilities(x_params):
        return exact.sigmoid(x_params)

    def push_images(self, coder, images, x_params, sizes=None):
        """One `Bernoulli` symbol per coded pixel (255 is 1), the whole batch
        at once."""
        bits = (images > 127).astype(np.int32)
        probabilities = self._probabilities(x_params)
        region = _region_of(images, sizes)
        if region is not None:
            bits, probabilities = bits[region], probabilities[region]
        coder.encode_reverse(bits.ravel(), _BIT_MODEL, probabilities.ravel())

    def pop_images(self, coder, x_params, sizes=None):
        probabilities = self._probabilities(x_params)
        region = coded_region(probabilities.shape, sizes)
        bits = np.zeros(probabilities.shape, np.int32)
        if region is None:
            bits[...] = coder.decode(_BIT_MODEL, probabilities.ravel()).reshape(
                bits.shape
            )
        else:
            bits[region] = coder.decode(
                _BIT_MODEL, probabilities[region].ravel()
            ).reshape(bits[region].shape)
        return (bits * 255).astype(np.uint8)

    def get_config(self) -> dict:
        return {"binarization": self.binarization}

    def __repr__(self) -> str:
        return f"Bernoulli(binarization={self.binarization!r})"


# The entropy coder's models: one bit, and a Gaussian over the 256 levels
# whose mean and scale are given per symbol.
_BIT_MODEL = constriction.stream.model.Bernoulli(perfect=False)
_PIXEL_MODEL = constriction.stream.model.QuantizedGaussian(0, 255)


@functools.lru_cache(maxsize=8)
def _pixel_scale_table(low: int, high: int, steps: int) -> np.ndarray:
    """Pixel-unit scales `127.5 exp(i / steps)` for `i` from `low` to `high`."""
    table = 127.5 * exact.exp(np.arange(low, high + 1) / steps)
    table.flags.writeable = False
    return table


# 8-bit pixels k in {0, ..., 255} are modelled on the centred scale
# x = 2k/255 - 1 in [-1, 1], where each value owns a bin of half-width 1/255.
_HALF_BIN = 1.0 / 255.0


def _centred_pixels(x):
    """Images in [0, 1] (k / 255) to `2k/255 - 1`, with `k` rounded."""
    return ops.round(ops.cast(x, "float32") * 255.0) * (2.0 / 255.0) - 1.0


def _discretized_normal_log_prob(centred, mean, log_scale):
    """Per-value log-mass of `N(mean, exp(log_scale))` over the 256 8-bit bins,
    the edge bins taking the tails; `centred` are the values `2k/255 - 1`."""
    return discretized_normal_log_mass(
        centred, mean, ops.exp(log_scale), 2 * _HALF_BIN, low=-1.0, high=1.0
    )


@keras.saving.register_keras_serializable(package="vae_tf")
class DiscretizedLogisticMixture(Likelihood):
    """Discretised mixture of logistics over 8-bit pixels (PixelCNN++, IAF-VAE).

    Each pixel has `num_components` mixture weights shared by its channels;
    each component has a mean and log-scale per channel, and channel `c`'s
    mean moves linearly with the values of channels `j < c` (coefficients in
    (-1, 1)), so colours are modelled jointly (Salimans et al. 2017,
    arXiv:1701.05517; Kingma et al. 2016, arXiv:1606.04934). With pixel value
    `k` at `x = 2k/255 - 1` and `sigma(t)` the logistic CDF:

    ```
    P(k | mu, s) = sigma((x + 1/255 - mu) / s) - sigma((x - 1/255 - mu) / s)
    mu_c = mean_c + sum_{j<c} coeff_cj * x_j
    p(pixel) = sum_m pi_m prod_c P(k_c | mu_mc, s_mc)
    ```

    with the edge bins taking the tails (`k = 0`: all mass below, `k = 255`:
    all mass above), so the 256 probabilities sum to exactly 1.

    Decoder outputs per pixel: `K` mixture logits, then `K*C` means, `K*C`
    log-scales and `K*C(C-1)/2` coefficients: `K * (1 + 2C + C(C-1)/2)`
    channels (100 for RGB with `K = 10`).

    Args:
        num_components: mixture components `K`.
        min_log_scale: log-scales are clipped below at this value.
    """

    def __init__(self, num_components: int = 10, min_log_scale: float = -7.0):
        if not isinstance(num_components, int) or num_components <= 0:
            raise ValueError(
                "num_components must be a positive integer. "
                f"Received: num_components={num_components!r}"
            )
        self.num_components = num_components
        self.min_log_scale = float(min_log_scale)

    def param_channels(self, channels: int) -> int:
        return self.num_components * (1 + 2 * channels + channels * (channels - 1) // 2)

    def _channels(self, num_params: int) -> int:
        for channels in range(1, 17):
            if self.param_channels(channels) == num_params:
                return channels
        raise ValueError(
            f"{num_params} decoder outputs per pixel fit no channel count of "
            f"{self!r}: expected {self.param_channels(1)} (grey) or "
            f"{self.param_channels(3)} (RGB)."
        )

    def _split(self, x_params):
        """`(batch, h, w, P)` to logits `(..., K)` and `(..., C, K)` parts."""
        x_params = ops.cast(x_params, "float32")
        K = self.num_components
        P = x_params.shape[-1]
        C = self._channels(P)
        n_coeffs = C * (C - 1) // 2
        logits = x_params[..., :K]  # (batch, h, w, K)
        rest = x_params[..., K:]
        shape = ops.shape(x_params)[:-1]
        means = ops.reshape(rest[..., : K * C], (*shape, C, K))
        log_scales = ops.maximum(
            ops.reshape(rest[..., K * C : 2 * K * C], (*shape, C, K)),
            self.min_log_scale,
        )
        coeffs = ops.tanh(ops.reshape(rest[..., 2 * K * C :], (*shape, n_coeffs, K)))
        return logits, means, log_scales, coeffs, C

    @staticmethod
    def _conditioned_means(means, coeffs, values, channels):
        """`mu_c = mean_c + sum_{j<c} coeff_cj * values_j`, channel by channel."""
        out, index = [means[..., 0, :]], 0
        for c in range(1, channels):
            mu = means[..., c, :]
            for j in range(c):
                mu = mu + coeffs[..., index, :] * values[..., j : j + 1]
                index += 1
            out.append(mu)
        return ops.stack(out, axis=-2)  # (batch, h, w, C, K)

    def log_prob(self, x, x_params):
        logits, means, log_scales, coeffs, C = self._split(x_params)
        centred = _centred_pixels(x)  # (batch, h, w, C)
        mu = self._conditioned_means(means, coeffs, centred, C)  # (batch, h, w, C, K)
        log_p = discretized_log_mass(
            centred[..., None],
            mu,
            ops.exp(-log_scales),
            2 * _HALF_BIN,
            logistic_log_cdf,
            logistic_log_sf,
            low=-1.0,
            high=1.0,
        )  # (batch, h, w, C, K)
        log_mix = ops.sum(log_p, axis=-2) + ops.log_softmax(logits, axis=-1)
        return sum_per_example(ops.logsumexp(log_mix, axis=-1))  # (batch,)

    def mean(self, x_params):
        """Mixture mean per channel, channel `c` given the means of channels `j < c`."""
        logits, means, _, coeffs, C = self._split(x_params)
        weights = ops.softmax(logits, axis=-1)  # (batch, h, w, K)
        values, index = [], 0
        for c in range(C):
            mu = means[..., c, :]  # (batch, h, w, K)
            for j in range(c):
                mu = mu + coeffs[..., index, :] * values[j][..., None]
                index += 1
            values.append(ops.clip(ops.sum(weights * mu, axis=-1), -1.0, 1.0))
        return (ops.stack(values, axis=-1) + 1.0) / 2.0  # (batch, h, w, C)

    def sample(self, x_params, seed=None):
        logits, means, log_scales, coeffs, C = self._split(x_params)
        gumbel = -ops.log(
            -ops.log(uniform(ops.shape(logits), seed) * (1 - 2e-5) + 1e-5)
        )
        one_hot = ops.one_hot(ops.argmax(logits + gumbel, axis=-1), self.num_components)
        u = uniform(ops.shape(means)[:-1], seed) * (1 - 2e-5) + 1e-5  # (batch, h, w, C)
        scale = ops.exp(ops.sum(log_scales * one_hot[..., None, :], axis=-1))
        values, index = [], 0
        for c in range(C):
            mu = ops.sum(means[..., c, :] * one_hot, axis=-1)
            for j in range(c):
                mu = mu + ops.sum(coeffs[..., index, :] * one_hot, axis=-1) * values[j]
                index += 1
            logistic = mu + scale[..., c] * (
                ops.log(u[..., c]) - ops.log(1.0 - u[..., c])
            )
            values.append(ops.clip(logistic, -1.0, 1.0))
        k = ops.round((ops.stack(values, axis=-1) + 1.0) * 127.5)
        return k / 255.0

    def get_config(self) -> dict:
        return {
            "num_components": self.num_components,
            "min_log_scale": self.min_log_scale,
        }

    def __repr__(self) -> str:
        return f"DiscretizedLogisticMixture(num_components={self.num_components})"


@keras.saving.register_keras_serializable(package="vae_tf")
class DiscretizedGaussian(Likelihood):
    """A Gaussian per channel, discretised to 8 bits; learned or fixed scale.

    With pixel value `k` at `x = 2k/255 - 1` and `Phi` the standard normal CDF:

    ```
    P(k | mu, sigma) = Phi((x + 1/255 - mu) / sigma) - Phi((x - 1/255 - mu) / sigma)
    ```

    with the edge bins taking the tails, so the 256 probabilities sum to 1.
    By default the decoder outputs, per pixel, `C` means then `C` log-scales
    (a learned, per-pixel scale). With `scale` set, `sigma` is that constant
    and the decoder outputs only the `C` means: the "fixed-variance Gaussian",
    whose log-likelihood is, up to the discretisation, a constant minus
    `MSE / (2 sigma^2)` (an MSE autoencoder with a KL term). Scales are in the
    units of `x`, which spans [-1, 1] (255 levels over a width of 2).

    Args:
        min_log_scale: learned log-scales are clipped below at this value.
        scale: a fixed `sigma` (> 0), or `None` to learn it.
    """

    def __init__(self, min_log_scale: float = -7.0, scale: float | None = None):
        if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(
                f"scale must be a positive number or None. Received: scale={scale!r}"
            )
        self.min_log_scale = float(min_log_scale)
        self.scale = None if scale is None else float(scale)

    def param_channels(self, channels: int) -> int:
        return channels if self.scale is not None else 2 * channels

    def _split(self, x_params):
        x_params = ops.cast(x_params, "float32")
        if self.scale is not None:
            return x_params, ops.full_like(x_params, math.log(self.scale))
        mean, log_scale = ops.split(x_params, 2, axis=-1)
        return mean, ops.maximum(log_scale, self.min_log_scale)

    def log_prob(self, x, x_params):
        mean, log_scale = self._split(x_params)
        centred = _centred_pixels(x)
        return sum_per_example(_discretized_normal_log_prob(centred, mean, log_scale))

    def mean(self, x_params):
        mean, _ = self._split(x_params)
        return (ops.clip(mean, -1.0, 1.0) + 1.0) / 2.0

    def sample(self, x_params, seed=None):
        mean, log_scale = self._split(x_params)
        value = ops.clip(
            mean + ops.exp(log_scale) * normal(ops.shape(mean), seed), -1.0, 1.0
        )
        return ops.round((value + 1.0) * 127.5) / 255.0

    def get_config(self) -> dict:
        return {"min_log_scale": self.min_log_scale, "scale": self.scale}

    def __repr__(self) -> str:
        if self.scale is not None:
            return f"DiscretizedGaussian(scale={self.scale:g})"
        return "DiscretizedGaussian()"


# The causal neighbourhood of `LocalAutoregressiveGaussian`: (row, column)
# offsets of pixels that come before a pixel in raster order. The rows above
# come first and the same row last, so a decoder can sum the rows above for
# a whole row at once and add the pixels to the left one by one.
CAUSAL_NEIGHBOURS = (
    (-1, 0),
    (-1, -1),
    (-1, 1),
    (-2, 0),
    (-1, -2),
    (-1, 2),
    (-2, -1),
    (-2, 1),
    (0, -1),
    (0, -2),
)
# How far the neighbourhood reaches: the padding around an image it needs.
NEIGHBOURHOOD_PAD = max(max(abs(dy), abs(dx)) for dy, dx in CAUSAL_NEIGHBOURS)


def shifted_neighbours(centred, offsets=CAUSAL_NEIGHBOURS, fill=-1.0):
    """Each pixel's value at each of `offsets`, `fill` outside the image.

    Returns a list of `len(offsets)` tensors shaped like `centred`.
    """
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    height, width = centred.shape[1], centred.shape[2]
    padded = tf.pad(
        centred, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=fill
    )
    return [
        padded[:, pad + dy : pad + dy + height, pad + dx : pad + dx + width, :]
        for dy, dx in offsets
    ]


@keras.saving.register_keras_serializable(package="vae_tf")
class LocalAutoregressiveGaussian(Likelihood):
    """An 8-bit Gaussian per pixel whose mean and scale see its causal neighbours.

    A factorised likelihood cannot say "this pixel is bright because its left
    neighbour is": every pixel is guessed from `z` alone, and the stroke edges
    of a digit cost many bits. Here the decoder outputs, per pixel and
    channel, a base mean `m`, a base log-scale `s` and two coefficients per
    causal neighbour (the `N` pixels before it in raster order, see
    `CAUSAL_NEIGHBOURS`); with `x_n` the neighbours' values on the centred
    scale `x = 2k/255 - 1` (pixels outside the image count as black):

    ```
    mu        = m + sum_n a_n * x_n
    log sigma = s + sum_n b_n * x_n
    P(k)      = Phi((x + 1/255 - mu)/sigma) - Phi((x - 1/255 - mu)/sigma)
    ```

    the Gaussian integrated over each value's bin, with the edge bins taking
    the tails (as in `DiscretizedGaussian`). The coefficients come from the
    decoder, so `z` decides how each pixel leans on its neighbours: a
    locally linear autoregressive model (in the spirit of PixelVAE, Gulrajani
    et al. 2017, with a one-layer autoregression). Scoring is one pass (the
    neighbours are known); sampling goes pixel by pixel, but each step is a
    few multiply-adds, not a network, so the bits-back codec
    (`vae_tf.compression`) decodes hundreds of images a second. `P(k)` is
    exactly the `QuantizedGaussian` of the entropy coder `constriction`
    (edge bins included), in pixel units `(mu + 1) * 127.5` and
    `sigma * 127.5`.

    With `channel_autoregressive=True` (colour), each channel also leans on
    the channels before it at the same pixel (green on red, blue on red and
    green), as the means of PixelCNN++ do (Salimans et al. 2017,
    arXiv:1701.05517): `C - 1` more neighbours per channel, those of later
    channels counted as 0. A pixel is then coded channel by channel.

    Decoder outputs per pixel: `C * (2 + 2N)` channels, per channel `m`, `s`,
    the `a_n` and the `b_n` (`N` counts the earlier channels too).

    Args:
        min_log_scale: log-scales are clipped to `[min_log_scale, 1]`. The
            default, -6, is a fifth of a pixel level.
        channel_autoregressive: each channel also leans on the earlier
            channels of its own pixel.
    """

    MAX_LOG_SCALE = 1.0

    can_code = True  # 8-bit images, pixel by pixel

    def __init__(self, min_log_scale: float = -6.0, channel_autoregressive=False):
        if not -10.0 <= min_log_scale < self.MAX_LOG_SCALE:
            raise ValueError(
                "min_log_scale must be in [-10, 1). "
                f"Received: min_log_scale={min_log_scale!r}"
            )
        self.min_log_scale = float(min_log_scale)
        self.channel_autoregressive = bool(channel_autoregressive)

    @property
    def num_neighbours(self) -> int:
        """Spatial neighbours per channel (`CAUSAL_NEIGHBOURS`)."""
        return len(CAUSAL_NEIGHBOURS)

    def _earlier_channels(self, channels: int) -> int:
        return channels - 1 if self.channel_autoregressive else 0

    def param_channels(self, channels: int) -> int:
        per_channel = self.num_neighbours + self._earlier_channels(channels)
        return channels * (2 + 2 * per_channel)

    def _channel_neighbours(self, centred):
        """The earlier channels of each pixel: `C - 1` arrays shaped like
        `centred`, slot `j` holding channel `j` for the channels after it and
        0 elsewhere (tensors or numpy arrays alike)."""
        channels = centred.shape[-1]
        slots = []
        for j in range(self._earlier_channels(channels)):
            mask = np.array([1.0 if c > j else 0.0 for c in range(channels)])
            slots.append(centred[..., j : j + 1] * mask.astype(_dtype_of(centred)))
        return slots

    def split(self, x_params):
        """`(m, s, a, b)`: `m` and `s` `(batch, h, w, C)`, `a` and `b` lists of N.

        The decoder's outputs are grouped by role: `C` means, `C` log-scales,
        then `C` values of `a_n` for each neighbour `n`, then the same of `b_n`.
        """
        return self._groups(ops.cast(x_params, "float32"))

    def _groups(self, x_params):
        """`split` of a tensor or numpy array, by slicing the last axis."""
        total = x_params.shape[-1]
        fits = [c for c in range(1, 5) if self.param_channels(c) == total]
        if not fits:
            raise ValueError(
                f"{total} decoder outputs per pixel fit no channel count of "
                f"{self!r}: expected one of "
                f"{[self.param_channels(c) for c in range(1, 5)]} (1 to 4 channels)."
            )
        c = fits[0]
        per_channel = self.param_channels(c) // c
        groups = [x_params[..., i * c : (i + 1) * c] for i in range(per_channel)]
        n = (per_channel - 2) // 2
        return groups[0], groups[1], groups[2 : 2 + n], groups[2 + n :]

    @staticmethod
    def _accumulate(m, s, a, b, neighbours):
        """`(m + sum_n a_n x_n, s + sum_n b_n x_n)`, summed in the order of the
        neighbours; plain `+` and `*`, so the same code serves tensors (scoring,
        sampling) and float64 numpy arrays (coding)."""
        mu, log_scale = m, s
        for a_n, b_n, x_n in zip(a, b, neighbours):
            mu = mu + a_n * x_n
            log_scale = log_scale + b_n * x_n
        return mu, log_scale

    def _mean_and_log_scale(self, m, s, a, b, neighbours):
        mu, log_scale = self._accumulate(m, s, a, b, neighbours)
        log_scale = ops.clip(log_scale, self.min_log_scale, self.MAX_LOG_SCALE)
        return mu, log_scale

    def log_prob(self, x, x_params):
        m, s, a, b = self.split(x_params)
        centred = _centred_pixels(x)
        neighbours = shifted_neighbours(centred) + self._channel_neighbours(centred)
        mu, log_scale = self._mean_and_log_scale(m, s, a, b, neighbours)
        return sum_per_example(_discretized_normal_log_prob(centred, mu, log_scale))

    def _raster_scan(self, x_params, noise=None):
        """Fill an image pixel by pixel: each value is its mean's level, or with
        `noise` `(batch, h, w, C)`, the level of `mu + sigma * noise`.

        The scan is one compiled `tf.while_loop` (`_raster_scan_graph`), so
        eager callers (`vae-tf sample`, a run's figures) pay one trace, not
        an op dispatch per pixel.
        """
        m, s, a, b = self.split(x_params)
        return _raster_scan_graph(
            m, s, a, b, noise, self.min_log_scale, self.MAX_LOG_SCALE
        )

    def mean(self, x_params):
        """Each pixel's mean, rounded to a level, given the pixels before it."""
        return self._raster_scan(x_params)

    def sample(self, x_params, seed=None):
        """A draw, pixel by pixel: a Gaussian draw, clipped and rounded to a level."""
        noise = normal(ops.shape(self.split(x_params)[0]), seed)
        return self._raster_scan(x_params, noise)

    # -- Coding: one `QuantizedGaussian` symbol per pixel ---------------------
    #
    # Each pixel is coded under the discretised Gaussian of the class
    # docstring, in pixel units: mean `(mu + 1) * 127.5`, scale
    # `sigma * 127.5`. The log-scale is rounded to 1/64 and the scale looked
    # up in a table, so no transcendental function is evaluated on arrays
    # whose shape differs between the two directions (the encoder has all
    # pixels at once, the decoder one position at a time).

    _LOG_SCALE_STEPS = 64

    def _coding_split(self, x_params):
        """`split` on float64 numpy arrays (the codec's fixed-point parameters
        keep every bit)."""
        return self._groups(np.asarray(x_params, np.float64))

    def _coding_distribution(self, mu, log_scale):
        """Pixel-unit mean and scale of the coder's `QuantizedGaussian`."""
        low = math.floor(self.min_log_scale * self._LOG_SCALE_STEPS)
        high = math.ceil(self.MAX_LOG_SCALE * self._LOG_SCALE_STEPS)
        table = _pixel_scale_table(low, high, self._LOG_SCALE_STEPS)
        # np.maximum and np.minimum: np.clip's values, with less overhead
        # per call (the decoder calls this once per pixel and channel).
        log_scale = np.minimum(
            np.maximum(log_scale, self.min_log_scale), self.MAX_LOG_SCALE
        )
        steps = np.rint(log_scale * self._LOG_SCALE_STEPS).astype(np.int64)
        mean = np.minimum(np.maximum((mu + 1.0) * 127.5, -1e4), 1e4)
        return mean, table[steps - low]

    @staticmethod
    def _centred_levels(images):
        return images.astype(np.float64) * (2.0 / 255.0) - 1.0

    def push_images(self, coder, images, x_params, sizes=None):
        """Every coded pixel at once (its neighbours are known), in
        position-major order (row, column, image, channel; or row, column,
        channel, image when channels lean on each other)."""
        m, s, a, b = self._coding_split(x_params)
        height, width = images.shape[1:3]
        pad = NEIGHBOURHOOD_PAD
        padded = np.pad(
            self._centred_levels(images),
            ((0, 0), (pad, pad), (pad, pad), (0, 0)),
            constant_values=-1.0,
        )
        neighbours = [
            padded[:, pad + dy : pad + dy + height, pad + dx : pad + dx + width]
            for dy, dx in CAUSAL_NEIGHBOURS
        ]
        neighbours += self._channel_neighbours(self._centred_levels(images))
        mean, scale = self._coding_distribution(
            *self._accumulate(m, s, a, b, neighbours)
        )
        # Position-major: (h, w, batch, C), or (h, w, C, batch) when a pixel
        # is decoded channel by channel.
        order = (1, 2, 3, 0) if self.channel_autoregressive else (1, 2, 0, 3)

        region = _region_of(images, sizes)
        if region is not None:
            region = np.broadcast_to(region[..., None], images.shape)
            region = np.ascontiguousarray(region.transpose(order)).ravel()

        def position_major(array):
            array = np.ascontiguousarray(array.transpose(order)).ravel()
            return array if region is None else array[region]

        coder.encode_reverse(
            position_major(images.astype(np.int32)),
            _PIXEL_MODEL,
            position_major(mean),
            position_major(scale),
        )

    def pop_images(self, coder, x_params, sizes=None):
        """Pixel by pixel in raster order, the batch at once.

        The neighbours in the rows above come first in `CAUSAL_NEIGHBOURS`:
        their terms are summed for a whole row at once, then the pixels to the
        left are added one at a time, in the same order as `push_images`.
        """
        m, s, a, b = self._coding_split(x_params)
        count, height, width, channels = m.shape
        pad = NEIGHBOURHOOD_PAD
        above = [i for i, (dy, _) in enumerate(CAUSAL_NEIGHBOURS) if dy < 0]
        left = [i for i, (dy, _) in enumerate(CAUSAL_NEIGHBOURS) if dy == 0]
        earlier = list(range(self.num_neighbours, len(a)))  # channel slots
        sizes = None if sizes is None else np.asarray(sizes).reshape(-1, 2)
        if above != list(range(len(above))):
            raise AssertionError("CAUSAL_NEIGHBOURS must list the rows above first.")
        canvas = np.full((count, height + 2 * pad, width + 2 * pad, channels), -1.0)
        levels = np.empty((height, width, count, channels), np.int32)

        def column_major(t):  # (batch, w, C) -> (w, batch, C)
            return np.ascontiguousarray(t.transpose(1, 0, 2))

        def paired(first, second):  # (w, batch, 2, C): a mean and a scale term
            return np.stack([column_major(first), column_major(second)], axis=2)

        left_offsets = [CAUSAL_NEIGHBOURS[i][1] for i in left]
        for row in range(height):
            neighbours = [
                canvas[:, pad + row + dy, pad + dx : pad + dx + width]
                for dy, dx in (CAUSAL_NEIGHBOURS[i] for i in above)
            ]
            mu_row, log_scale_row = self._accumulate(
                m[:, row],
                s[:, row],
                [a[i][:, row] for i in above],
                [b[i][:, row] for i in above],
                neighbours,
            )  # (batch, w, C)
            # The mean and the log-scale side by side, so each neighbour's two
            # terms are one product and one sum (the same arithmetic).
            terms_row = paired(mu_row, log_scale_row)
            left_row = [paired(a[i][:, row], b[i][:, row]) for i in left]
            earlier_row = [paired(a[i][:, row], b[i][:, row]) for i in earlier]
            decoded = np.full((width + pad, count, 1, channels), -1.0)
            for col in range(width):
                terms = terms_row[col]  # (batch, 2, C)
                for weights, dx in zip(left_row, left_offsets):
                    terms = terms + weights[col] * decoded[pad + col + dx]
                inside = slice(None)  # the images this position is coded in
                if sizes is not None:
                    inside = np.flatnonzero((sizes[:, 0] > row) & (sizes[:, 1] > col))
                    terms = terms[inside]
                value = np.zeros((count, channels), np.int32)
                if earlier:
                    value[inside] = self._pop_channels(
                        coder, terms, [w[col][inside] for w in earlier_row]
                    )
                else:
                    mean, scale = self._coding_distribution(terms[:, 0], terms[:, 1])
                    decoded_here = coder.decode(
                        _PIXEL_MODEL, mean.ravel(), scale.ravel()
                    )
                    value[inside] = decoded_here.reshape(-1, channels)
                levels[row, col] = value
                decoded[pad + col, :, 0] = self._centred_levels(value)
            canvas[:, pad + row, pad : pad + width] = decoded[pad:, :, 0].transpose(
                1, 0, 2
            )
        return levels.transpose(2, 0, 1, 3).astype(np.uint8)

    def _pop_channels(self, coder, terms, earlier):
        """One position's levels `(batch, C)`, channel by channel: `terms`
        `(batch, 2, C)` are the mean and log-scale with the spatial
        neighbours' terms, `earlier` the weights `(batch, 2, C)` of each
        earlier-channel slot. Each channel adds the earlier channels' terms
        in the order `push_images` adds them; the terms of later channels,
        which `push_images` adds as products with 0, change no value (a
        centred level is never 0) and are left out."""
        count, _, channels = terms.shape
        values = np.zeros((count, channels), np.int32)
        centred = np.zeros((count, 1, channels))
        for c in range(channels):
            terms_c = terms[:, :, c]
            for j in range(c):
                terms_c = terms_c + earlier[j][:, :, c] * centred[:, :, j]
            mean, scale = self._coding_distribution(terms_c[:, 0], terms_c[:, 1])
            values[:, c] = coder.decode(_PIXEL_MODEL, mean, scale)
            centred[:, 0, c] = self._centred_levels(values[:, c])
        return values

    def get_config(self) -> dict:
        return {
            "min_log_scale": self.min_log_scale,
            "channel_autoregressive": self.channel_autoregressive,
        }

    def __repr__(self) -> str:
        if self.channel_autoregressive:
            return "LocalAutoregressiveGaussian(channel_autoregressive=True)"
        return "LocalAutoregressiveGaussian()"


def _dtype_of(array) -> np.dtype:
    """The numpy dtype of a numpy array or a tensor."""
    dtype = array.dtype
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def _to_level(value):
    """A centred value to the nearest of the 256 levels, still centred."""
    return tf.round((tf.clip_by_value(value, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


@tf.function(reduce_retracing=True)
def _raster_scan_graph(m, s, a, b, noise, min_log_scale, max_log_scale):
    """`LocalAutoregressiveGaussian._raster_scan`, compiled: `m`, `s` `(batch,
    h, w, C)`, `a`, `b` lists of those, `noise` like `m` or `None` (the mean).

    The canvas is kept as `(h + 2p, w + 2p, batch, C)`, padded with black, so
    a pixel's neighbours are one `gather_nd`.
    """
    shape = tf.shape(m)  # dynamic: one trace serves every size
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    offsets = tf.constant(CAUSAL_NEIGHBOURS, dtype="int32")
    pad = NEIGHBOURHOOD_PAD
    canvas = tf.fill([height + 2 * pad, width + 2 * pad, batch, channels], -1.0)

    n = len(CAUSAL_NEIGHBOURS)
    earlier = len(a) - n  # channel slots of a channel-autoregressive model

    def draw(mu, log_scale, noise_here):
        if noise is None:
            return _to_level(mu)
        sigma = tf.exp(tf.clip_by_value(log_scale, min_log_scale, max_log_scale))
        return _to_level(mu + sigma * noise_here)

    def body(position, canvas):
        row, col = position // width, position % width
        where = tf.stack([pad + row + offsets[:, 0], pad + col + offsets[:, 1]], 1)
        neighbours = tf.unstack(tf.gather_nd(canvas, where))  # N x (batch, C)
        mu, log_scale = LocalAutoregressiveGaussian._accumulate(
            m[:, row, col],
            s[:, row, col],
            [a_n[:, row, col] for a_n in a[:n]],
            [b_n[:, row, col] for b_n in b[:n]],
            neighbours,
        )  # (batch, C) each
        here = None if noise is None else noise[:, row, col]
        if not earlier:
            value = draw(mu, log_scale, here)
        else:  # channel by channel, each leaning on the ones drawn before it
            values = []
            for c in range(earlier + 1):
                mu_c, log_scale_c = mu[:, c], log_scale[:, c]
                for j in range(c):
                    mu_c = mu_c + a[n + j][:, row, col, c] * values[j]
                    log_scale_c = log_scale_c + b[n + j][:, row, col, c] * values[j]
                values.append(
                    draw(mu_c, log_scale_c, None if here is None else here[:, c])
                )
            value = tf.stack(values, axis=-1)
        canvas = tf.tensor_scatter_nd_update(
            canvas, [[pad + row, pad + col]], value[None]
        )
        return position + 1, canvas

    _, canvas = tf.while_loop(
        lambda position, _: position < height * width, body, (tf.constant(0), canvas)
    )
    image = canvas[pad : pad + height, pad : pad + width]
    return (tf.transpose(image, (2, 0, 1, 3)) + 1.0) / 2.0


def get(identifier) -> Likelihood:
    """Return a likelihood from an instance, a name or a serialised config.

    Args:
        identifier: a `Likelihood`, a name such as `"bernoulli"`, or the dict
            written by `keras.saving.serialize_keras_object`.

    Raises:
        ValueError: for an unknown name or an object that is not a likelihood.
    """
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, str):
        names = {
            "bernoulli": Bernoulli,
            "discretized_logistic_mixture": DiscretizedLogisticMixture,
            "discretized_gaussian": DiscretizedGaussian,
            "local_autoregressive_gaussian": LocalAutoregressiveGaussian,
        }
        if identifier.lower() not in names:
            raise ValueError(
                f"Unknown likelihood name. Expected one of {sorted(names)}. "
                f"Received: likelihood={identifier!r}"
            )
        return names[identifier.lower()]()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, Likelihood):
            return obj
    raise ValueError(
        "Expected a vae_tf likelihood (e.g. vae_tf.Bernoulli()), a name or its "
        f"serialised config. Received: likelihood={identifier!r}"
    )
