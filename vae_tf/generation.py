"""Latent-space geometry for generation: interpolation paths, grids, projections.

The VAE's `interpolate` and `latent_manifold` and the plotting module's
latent scatter are built on these; they take and return plain tensors or
arrays, so they work on any latents.
"""

import math

import numpy as np
import tensorflow as tf
from keras import ops

__all__ = ["interpolate_latents", "gaussian_grid", "pca", "pca_project"]

METHODS = ("linear", "spherical")


def interpolate_latents(z_start, z_end, num_steps: int, method: str = "linear"):
    """Points on paths from `z_start` to `z_end`, endpoints included.

    With `t` in `num_steps` even steps from 0 to 1, per pair of latents:

    ```
    linear:     z(t) = (1 - t) z_a + t z_b
    spherical:  z(t) = sin((1 - t) w) / sin(w) z_a + sin(t w) / sin(w) z_b,
                cos(w) = <z_a, z_b> / (|z_a| |z_b|)
    ```

    Spherical interpolation (slerp; White 2016, arXiv:1609.04468) keeps the
    norm of the path near that of its ends: a straight line between two
    Gaussian latents passes near the origin, where the prior rarely puts
    latents in high dimensions. Pairs that are (nearly) parallel fall back to
    the linear path.

    Args:
        z_start: latents `(batch, *latent_shape)`.
        z_end: latents of the same shape.
        num_steps: points per path (>= 2).
        method: `"linear"` or `"spherical"`.

    Returns:
        `(batch, num_steps, *latent_shape)`.
    """
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ValueError(
            "num_steps must be an integer >= 2 (the two endpoints included). "
            f"Received: num_steps={num_steps!r}"
        )
    if method not in METHODS:
        raise ValueError(
            f"Unknown interpolation method. Expected one of {METHODS}. Received: "
            f"method={method!r}"
        )
    z_start = tf.convert_to_tensor(z_start, tf.float32)
    z_end = tf.convert_to_tensor(z_end, tf.float32)
    if z_start.shape != z_end.shape:
        raise ValueError(
            "z_start and z_end must have the same shape. Received: "
            f"{tuple(z_start.shape)} and {tuple(z_end.shape)}"
        )
    batch = ops.shape(z_start)[0]
    a = ops.reshape(z_start, (batch, 1, -1))  # (batch, 1, dims)
    b = ops.reshape(z_end, (batch, 1, -1))
    t = ops.reshape(ops.linspace(0.0, 1.0, int(num_steps)), (1, -1, 1))  # (1, steps, 1)
    linear = (1.0 - t) * a + t * b  # (batch, steps, dims)
    if method == "linear":
        path = linear
    else:
        norms = ops.norm(a, axis=-1, keepdims=True) * ops.norm(
            b, axis=-1, keepdims=True
        )
        cos = ops.sum(a * b, axis=-1, keepdims=True) / ops.maximum(norms, 1e-12)
        omega = ops.arccos(ops.clip(cos, -1.0, 1.0))  # (batch, 1, 1)
        sin = ops.sin(omega)
        parallel = sin < 1e-4
        safe_sin = ops.where(parallel, 1.0, sin)
        slerp = (ops.sin((1.0 - t) * omega) * a + ops.sin(t * omega) * b) / safe_sin
        path = ops.where(parallel, linear, slerp)
    return ops.reshape(path, (batch, int(num_steps), *z_start.shape[1:]))


def _normal_quantile(p):
    """`Phi^-1(p)` for the standard normal, via the inverse error function."""
    return math.sqrt(2.0) * tf.math.erfinv(2.0 * tf.constant(p, tf.float32) - 1.0)


def gaussian_grid(grid_size: int = 15, quantile_range=(0.05, 0.95)):
    """A `grid_size x grid_size` grid of 2-D latents at standard-normal quantiles.

    Rows run from the top (largest second coordinate) down, columns from the
    left (smallest first coordinate) right, as an image of the plane reads.

    Returns:
        `(grid_size * grid_size, 2)` float32 latents, row by row.
    """
    if not isinstance(grid_size, (int, np.integer)) or grid_size < 2:
        raise ValueError(
            f"grid_size must be an integer >= 2. Received: grid_size={grid_size!r}"
        )
    low, high = quantile_range
    if not 0.0 < low < high < 1.0:
        raise ValueError(
            "quantile_range must be two probabilities 0 < low < high < 1. "
            f"Received: quantile_range={quantile_range!r}"
        )
    values = _normal_quantile(np.linspace(low, high, int(grid_size)))  # (grid,)
    first, second = tf.meshgrid(values, values[::-1])  # (grid, grid) each
    return tf.reshape(tf.stack([first, second], axis=-1), (-1, 2))


def pca(z, num_components: int = 2) -> tuple:
    """The mean and first principal components of latents.

    Args:
        z: `(N, ...)` latents (flattened per example), N >= 2.
        num_components: how many components.

    Returns:
        `(mean, components, explained)`: `(D,)`, `(k, D)` orthonormal rows and
        the fraction of the variance each explains, `(k,)`, with
        `k = min(num_components, D)`. A latent `mean + c @ components` lies on
        the plane (or space) the projection `(z - mean) @ components.T` maps
        onto.

    Raises:
        ValueError: fewer than 2 latents.
    """
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    if len(z) < 2:
        raise ValueError(f"PCA needs at least 2 latents. Received: {len(z)}")
    mean = z.mean(axis=0)
    centred = z - mean
    total = float(np.sum(centred**2)) or 1.0
    _, singular_values, components = np.linalg.svd(centred, full_matrices=False)
    k = min(num_components, z.shape[1])
    return mean, components[:k], singular_values[:k] ** 2 / total


def pca_project(z, num_components: int = 2):
    """Project latents onto their first principal components (`pca`).

    Args:
        z: `(N, ...)` latents (flattened per example).
        num_components: output dimensions.

    Returns:
        `(projected, explained)`: `(N, num_components)` coordinates and the
        fraction of the variance each component explains. Latents with no more
        than `num_components` dimensions are returned as they are (explained
        variance of each of their dimensions).
    """
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    if len(z) < 2:
        raise ValueError(f"PCA needs at least 2 latents. Received: {len(z)}")
    if z.shape[1] <= num_components:
        centred = z - z.mean(axis=0)
        return z, np.sum(centred**2, axis=0) / (float(np.sum(centred**2)) or 1.0)
    mean, components, explained = pca(z, num_components)
    return (z - mean) @ components.T, explained
