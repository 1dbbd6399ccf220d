"""Observation models `p(x | z)`: what the decoder's output means.

A likelihood turns the decoder's raw output (`x_params`, e.g. logits) into a
log-probability of the data, a mean image to show, and samples. The VAE never
hard-codes a loss: it asks its likelihood.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from vae_tf._random import normal, uniform
from vae_tf.bounds import sum_per_example

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
    # images under this likelihood.
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
    - `"static"`: a fixed binarisation, `x = 1[intensity > 0.5]`.
    - `None`: the intensities are used as targets as they are. On grey values
      this is the "binary cross-entropy on grey values" of many tutorials: the
      Bernoulli mass evaluated at non-binary points is not a normalised
      likelihood, so the number it gives is not a log-likelihood.

    Args:
        binarization: `"dynamic"`, `"static"` or `None`.

    Example:

    >>> likelihood = vae_tf.likelihoods.Bernoulli("dynamic")
    >>> likelihood.log_prob(x, x_logits)  # (batch,)
    """

    BINARIZATIONS = ("dynamic", "static", None)

    can_code = True  # binary images, one bit each

    def __init__(self, binarization: str | None = "dynamic"):
        if binarization not in self.BINARIZATIONS:
            raise ValueError(
                "binarization must be one of 'dynamic', 'static' or None. "
                f"Received: binarization={binarization!r}"
            )
        self.binarization = binarization

    def param_channels(self, channels: int) -> int:
        return channels

    def prepare_targets(self, x, seed=None):
        if self.binarization == "dynamic":
            return ops.cast(uniform(ops.shape(x), seed) < x, x.dtype)
        if self.binarization == "static":
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

    def get_config(self) -> dict:
        return {"binarization": self.binarization}

    def __repr__(self) -> str:
        return f"Bernoulli(binarization={self.binarization!r})"


# 8-bit pixels k in {0, ..., 255} are modelled on the centred scale
# x = 2k/255 - 1 in [-1, 1], where each value owns a bin of half-width 1/255.
_HALF_BIN = 1.0 / 255.0


def _centred_pixels(x):
    """Images in [0, 1] (k / 255) to `(k, 2k/255 - 1)`; `k` rounded, as float."""
    k = ops.round(ops.cast(x, "float32") * 255.0)
    return k, k * (2.0 / 255.0) - 1.0


def _log1mexp(d):
    """`log(1 - exp(d))` for `d < 0`, accurate at both ends (Maechler 2012).

    Each branch gets an input clamped to its own safe range, so the branch
    `tf.where` discards cannot put a NaN into the gradient.
    """
    near = d > -0.6931472
    small = tf.where(near, d, -0.6931472)
    large = tf.where(near, -0.6931472, d)
    return tf.where(
        near, tf.math.log(-tf.math.expm1(small)), tf.math.log1p(-tf.exp(large))
    )


def _log_interval_mass(lower, upper, log_cdf, log_sf):
    """`log(F(upper) - F(lower))` for standardised `lower < upper`, stably.

    The difference is taken in log space on whichever side of the median the
    interval lies (`1 - F` above it), so it neither cancels nor underflows.
    """
    log_below = log_cdf(upper) + _log1mexp(
        ops.minimum(log_cdf(lower) - log_cdf(upper), -1e-12)
    )
    log_above = log_sf(lower) + _log1mexp(
        ops.minimum(log_sf(upper) - log_sf(lower), -1e-12)
    )
    return tf.where(lower > 0.0, log_above, log_below)


def _discretized_log_prob(k, upper, lower, log_cdf, log_sf):
    """Log-mass of bin `k` of a continuous distribution, cut at the edges.

    `upper` and `lower` are the standardised bin edges; `log_cdf(t)` and
    `log_sf(t)` give `log F(t)` and `log(1 - F(t))`. The first bin takes all
    the mass below its upper edge, the last all the mass above its lower edge:

    ```
    P(k) = F(upper) - F(lower)   for 0 < k < 255
    P(0) = F(upper),  P(255) = 1 - F(lower)
    ```
    """
    interior = _log_interval_mass(lower, upper, log_cdf, log_sf)
    return tf.where(
        k <= 0.0, log_cdf(upper), tf.where(k >= 255.0, log_sf(lower), interior)
    )


def _discretized_normal_log_prob(k, centred, mean, log_scale):
    """Per-value log-mass of `N(mean, exp(log_scale))` over 8-bit bins, edges cut.

    `k` are the levels and `centred` their values `2k/255 - 1`; see
    `_discretized_log_prob`.
    """
    inv_scale = ops.exp(-log_scale)
    return _discretized_log_prob(
        k,
        (centred - mean + _HALF_BIN) * inv_scale,
        (centred - mean - _HALF_BIN) * inv_scale,
        _normal_log_cdf,
        _normal_log_sf,
    )


def _logistic_log_cdf(t):
    return -ops.softplus(-t)


def _logistic_log_sf(t):
    return -ops.softplus(t)


def _normal_log_cdf(t):
    """`log Phi(t)`: from `erfc` down to t = -10, the asymptotic series below.

    ```
    log Phi(t) ~ -t^2/2 - log(-t) - log(2 pi)/2 + log(1 - 1/t^2 + 3/t^4 - 15/t^6)
    ```
    """
    safe = ops.maximum(t, -10.0)
    direct = ops.log(0.5 * tf.math.erfc(-safe / 1.4142135623730951))
    tail_t = ops.minimum(t, -10.0)
    inv_t2 = 1.0 / ops.square(tail_t)
    series = 1.0 - inv_t2 + 3.0 * inv_t2**2 - 15.0 * inv_t2**3
    tail = -0.5 * ops.square(tail_t) - ops.log(-tail_t) - 0.9189385332046727
    return tf.where(t > -10.0, direct, tail + ops.log(series))


def _normal_log_sf(t):
    return _normal_log_cdf(-t)


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
        k, centred = _centred_pixels(x)  # (batch, h, w, C)
        mu = self._conditioned_means(means, coeffs, centred, C)  # (batch, h, w, C, K)
        inv_scale = ops.exp(-log_scales)
        centred_k = centred[..., None] - mu
        log_p = _discretized_log_prob(
            k[..., None],
            (centred_k + _HALF_BIN) * inv_scale,
            (centred_k - _HALF_BIN) * inv_scale,
            _logistic_log_cdf,
            _logistic_log_sf,
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
        k, centred = _centred_pixels(x)
        return sum_per_example(
            _discretized_normal_log_prob(k, centred, mean, log_scale)
        )

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

    Decoder outputs per pixel: `C * (2 + 2N)` channels, per channel `m`, `s`,
    the `a_n` and the `b_n`.

    Args:
        min_log_scale: log-scales are clipped to `[min_log_scale, 1]`. The
            default, -6, is a fifth of a pixel level.
    """

    MAX_LOG_SCALE = 1.0

    can_code = True  # 8-bit images, pixel by pixel

    def __init__(self, min_log_scale: float = -6.0):
        if not -10.0 <= min_log_scale < self.MAX_LOG_SCALE:
            raise ValueError(
                "min_log_scale must be in [-10, 1). "
                f"Received: min_log_scale={min_log_scale!r}"
            )
        self.min_log_scale = float(min_log_scale)

    @property
    def num_neighbours(self) -> int:
        return len(CAUSAL_NEIGHBOURS)

    def param_channels(self, channels: int) -> int:
        return channels * (2 + 2 * self.num_neighbours)

    def split(self, x_params):
        """`(m, s, a, b)`: `m` and `s` `(batch, h, w, C)`, `a` and `b` lists of N.

        The decoder's outputs are grouped by role: `C` means, `C` log-scales,
        then `C` values of `a_n` for each neighbour `n`, then the same of `b_n`.
        """
        x_params = ops.cast(x_params, "float32")
        per_channel = 2 + 2 * self.num_neighbours
        if x_params.shape[-1] % per_channel:
            raise ValueError(
                f"{x_params.shape[-1]} decoder outputs per pixel fit no channel "
                f"count of {self!r}: expected a multiple of {per_channel}."
            )
        c = x_params.shape[-1] // per_channel
        groups = [x_params[..., i * c : (i + 1) * c] for i in range(per_channel)]
        n = self.num_neighbours
        return groups[0], groups[1], groups[2 : 2 + n], groups[2 + n :]

    def _mean_and_log_scale(self, m, s, a, b, neighbours):
        mu, log_scale = m, s
        for a_n, b_n, x_n in zip(a, b, neighbours):
            mu = mu + a_n * x_n
            log_scale = log_scale + b_n * x_n
        log_scale = ops.clip(log_scale, self.min_log_scale, self.MAX_LOG_SCALE)
        return mu, log_scale

    def log_prob(self, x, x_params):
        m, s, a, b = self.split(x_params)
        k, centred = _centred_pixels(x)
        mu, log_scale = self._mean_and_log_scale(
            m, s, a, b, shifted_neighbours(centred)
        )
        return sum_per_example(_discretized_normal_log_prob(k, centred, mu, log_scale))

    def _raster_scan(self, x_params, draw):
        """Fill an image pixel by pixel; `draw(mu, sigma, row, col)` gives each value.

        The canvas is kept as `(h + 2p, w + 2p, batch, C)`, padded with black, so
        a pixel's neighbours are one `gather_nd`.
        """
        m, s, a, b = self.split(x_params)
        height, width, channels = m.shape[1], m.shape[2], m.shape[3]
        offsets = tf.constant(CAUSAL_NEIGHBOURS, dtype="int32")
        pad = NEIGHBOURHOOD_PAD
        canvas = tf.fill(
            [height + 2 * pad, width + 2 * pad, tf.shape(m)[0], channels], -1.0
        )

        def body(position, canvas):
            row, col = position // width, position % width
            where = tf.stack([pad + row + offsets[:, 0], pad + col + offsets[:, 1]], 1)
            neighbours = tf.unstack(tf.gather_nd(canvas, where))  # N x (batch, C)
            mu, log_scale = self._mean_and_log_scale(
                m[:, row, col],
                s[:, row, col],
                [a_n[:, row, col] for a_n in a],
                [b_n[:, row, col] for b_n in b],
                neighbours,
            )  # (batch, C) each
            value = draw(mu, ops.exp(log_scale), row, col)
            canvas = tf.tensor_scatter_nd_update(
                canvas, [[pad + row, pad + col]], value[None]
            )
            return position + 1, canvas

        _, canvas = tf.while_loop(
            lambda position, _: position < height * width,
            body,
            (tf.constant(0), canvas),
        )
        image = canvas[pad : pad + height, pad : pad + width]
        return (tf.transpose(image, (2, 0, 1, 3)) + 1.0) / 2.0

    @staticmethod
    def _to_level(value):
        """A centred value to the nearest of the 256 levels, still centred."""
        return (
            tf.round((tf.clip_by_value(value, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0
        )

    def mean(self, x_params):
        """Each pixel's mean, rounded to a level, given the pixels before it."""
        return self._raster_scan(
            x_params, lambda mu, sigma, row, col: self._to_level(mu)
        )

    def sample(self, x_params, seed=None):
        """A draw, pixel by pixel: a Gaussian draw, clipped and rounded to a level."""
        noise = normal(ops.shape(self.split(x_params)[0]), seed)

        def draw(mu, sigma, row, col):
            return self._to_level(mu + sigma * noise[:, row, col])

        return self._raster_scan(x_params, draw)

    def get_config(self) -> dict:
        return {"min_log_scale": self.min_log_scale}

    def __repr__(self) -> str:
        return "LocalAutoregressiveGaussian()"


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
