"""Discretised continuous distributions: the mass of a bin, in log space.

A model of integers (8-bit pixels, rounded latents) built from a continuous
density gives each value the mass of its bin, a difference of CDFs:

```
P(x) = F((x + w/2 - mu) / s) - F((x - w/2 - mu) / s)
```

for bins of width `w`. Taken naively this cancels (both CDFs near 1) or
underflows (both near 0) far from the mean, and its log is `-inf` where the
gradient is needed most. Here the difference is taken in log space on the
side of the median where it does not cancel, with `log F` and `log(1 - F)`
computed stably in the tails. Every discretised likelihood and prior of the
package (`vae_tf.likelihoods`, the lossy VAE's latent priors) uses this one
function; the entropy coder (`constriction`'s `QuantizedGaussian`) codes
with the same masses.

References:
    Salimans et al., "PixelCNN++", ICLR 2017, arXiv:1701.05517 (the
    discretised logistic with edge bins taking the tails).
    Ballé, Laparra & Simoncelli, "End-to-end Optimized Image Compression",
    ICLR 2017, arXiv:1611.01704 (a density convolved with a unit uniform).
    Maechler, "Accurately computing log(1 - exp(-|a|))", 2012.
"""

import tensorflow as tf
from keras import ops

__all__ = [
    "discretized_log_mass",
    "discretized_normal_log_mass",
    "normal_log_cdf",
    "normal_log_sf",
    "logistic_log_cdf",
    "logistic_log_sf",
]

_LOG_SQRT_2PI = 0.9189385332046727


def normal_log_cdf(t):
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
    tail = -0.5 * ops.square(tail_t) - ops.log(-tail_t) - _LOG_SQRT_2PI
    return tf.where(t > -10.0, direct, tail + ops.log(series))


def normal_log_sf(t):
    """`log(1 - Phi(t))`."""
    return normal_log_cdf(-t)


def logistic_log_cdf(t):
    """`log sigma(t)` for the logistic CDF `sigma`."""
    return -ops.softplus(-t)


def logistic_log_sf(t):
    """`log(1 - sigma(t))`."""
    return -ops.softplus(t)


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
    """`log(F(upper) - F(lower))` for standardised `lower < upper`, stably."""
    log_below = log_cdf(upper) + _log1mexp(
        ops.minimum(log_cdf(lower) - log_cdf(upper), -1e-12)
    )
    log_above = log_sf(lower) + _log1mexp(
        ops.minimum(log_sf(upper) - log_sf(lower), -1e-12)
    )
    return tf.where(lower > 0.0, log_above, log_below)


def discretized_log_mass(
    x, mean, inv_scale, bin_width, log_cdf, log_sf, low=None, high=None
):
    """Log-mass of the bin of width `bin_width` around `x`, in nats.

    Args:
        x: bin centres (values of the data), any shape.
        mean: the distribution's location, broadcastable to `x`.
        inv_scale: `1 / scale`, broadcastable to `x`.
        bin_width: the spacing of the values (a Python float).
        log_cdf: `t -> log F(t)` of the standardised distribution.
        log_sf: `t -> log(1 - F(t))`.
        low: if given, the lowest value: its bin takes all the mass below.
        high: if given, the highest value: its bin takes all the mass above.
            With both, the masses of `low, low + w, ..., high` sum to 1.

    Returns:
        `log P(x)`, shaped like `x` broadcast with `mean` and `inv_scale`.
    """
    half = 0.5 * bin_width
    upper = (x - mean + half) * inv_scale
    lower = (x - mean - half) * inv_scale
    log_mass = _log_interval_mass(lower, upper, log_cdf, log_sf)
    # A value is at an edge if it lies within half a bin of it (robust to the
    # rounding of `x`).
    if low is not None:
        log_mass = tf.where(x < low + half, log_cdf(upper), log_mass)
    if high is not None:
        log_mass = tf.where(x > high - half, log_sf(lower), log_mass)
    return log_mass


def discretized_normal_log_mass(x, mean, scale, bin_width, low=None, high=None):
    """Log-mass a Gaussian `N(mean, scale^2)` gives the bin around `x`, in nats.

    ```
    P(x) = Phi((x + w/2 - mean) / scale) - Phi((x - w/2 - mean) / scale)
    ```

    with the edge bins taking the tails when `low`/`high` are given (see
    `discretized_log_mass`). With `bin_width=1` and no edges this is the
    density at `x` of the Gaussian convolved with the unit uniform, the
    "noisy latent" prior of Ballé et al. (arXiv:1611.01704).

    Args:
        x: bin centres, any shape.
        mean: broadcastable to `x`.
        scale: the standard deviation (> 0), broadcastable to `x`.
        bin_width: the spacing of the values.
        low, high: the edge values, or `None` for an unbounded range.

    Returns:
        `log P(x)` in nats, shaped like the broadcast inputs.
    """
    return discretized_log_mass(
        x,
        mean,
        1.0 / scale,
        bin_width,
        normal_log_cdf,
        normal_log_sf,
        low=low,
        high=high,
    )
