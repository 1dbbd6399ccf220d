"""Figures: image grids, reconstructions, samples, loss curves.

The only module that imports matplotlib, and only its object-oriented API
(`matplotlib.figure.Figure`), so saving a figure never touches the user's
pyplot state or backend.
"""

import math

import numpy as np

from vae_tf._files import write_atomically
from vae_tf.images import tile

__all__ = [
    "image_grid",
    "save_image",
    "save_image_grid",
    "plot_reconstructions",
    "plot_samples",
    "plot_loss_curves",
    "plot_interpolations",
    "plot_latent_manifold",
    "plot_latent_scatter",
    "plot_curve",
    "plot_rate_distortion",
    "plot_image_row",
]


def _as_uint8(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            "images must have shape (N, height, width, channels). "
            f"Received: shape={images.shape}"
        )
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    return images


def image_grid(images, rows: int | None = None, cols: int | None = None, pad: int = 1):
    """Tile `N` images into one uint8 image, row by row.

    Args:
        images: `(N, height, width, channels)` floats in [0, 1] or uint8.
        rows: grid rows; by default a near-square grid.
        cols: grid columns; by default `ceil(N / rows)`.
        pad: pixels of black between images.

    Returns:
        A uint8 array `(rows * (h + pad) - pad, cols * (w + pad) - pad, channels)`.
    """
    images = _as_uint8(images)
    n = images.shape[0]
    if n == 0:
        raise ValueError("images is empty: there is nothing to tile.")
    cols = cols or (math.ceil(n / rows) if rows else math.ceil(math.sqrt(n)))
    rows = rows or math.ceil(n / cols)
    if rows * cols < n:
        raise ValueError(f"A {rows}x{cols} grid cannot hold {n} images.")
    return np.asarray(tile(images, cols, pad=pad))


def save_image(path, image):
    """Write one image (`(h, w, c)` floats in [0, 1] or uint8) as a PNG file."""
    from PIL import Image

    image = _as_uint8(np.asarray(image)[None])[0]
    mode_image = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    write_atomically(path, lambda tmp: mode_image.save(tmp, format="PNG"))


def save_image_grid(path, images, rows: int | None = None, cols: int | None = None):
    """Tile images with `image_grid` and write the grid as a PNG file."""
    save_image(path, image_grid(images, rows, cols))


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _show(ax, image, title=None):
    image = _as_uint8(np.asarray(image)[None])[0]
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def plot_reconstructions(
    path, originals, reconstructions, title: str = "Reconstructions"
):
    """Originals (top grid) above their reconstructions (bottom grid)."""
    n = len(originals)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = _figure(10, 0.6 + 5 * rows / cols)
    axes = fig.subplots(1, 2)
    _show(axes[0], image_grid(originals, cols=cols), "input")
    _show(axes[1], image_grid(reconstructions, cols=cols), "reconstruction")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def plot_samples(
    path, images, title: str = "Samples from the prior", cols: int | None = None
):
    """A grid of generated images with a title; `cols` per row (by default a
    near-square grid)."""
    grid = image_grid(images, cols=cols)
    aspect = grid.shape[0] / grid.shape[1]
    fig = _figure(5, 5 * aspect + 0.3) if aspect <= 1 else _figure(5 / aspect, 5.3)
    _show(fig.subplots(), grid, None)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def plot_loss_curves(
    path,
    history: dict,
    keys=("loss", "reconstruction_loss", "kl_loss"),
    units: dict | None = None,
):
    """Training and validation curves of a `History.history` dict, one panel per key.

    `units` maps a key to its axis label (default: `"KEY (nats)"`).
    """
    keys = [k for k in keys if k in history]
    if not keys:
        raise ValueError(
            f"history has none of the keys {keys}. Received: {sorted(history)}"
        )
    from matplotlib.ticker import MaxNLocator

    fig = _figure(4 * len(keys), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    for ax, key in zip(axes, keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="test")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel((units or {}).get(key, f"{key} (nats)"))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=120)


def plot_interpolations(path, paths, title: str = "Interpolations in latent space"):
    """One row per path: `(rows, steps, height, width, channels)` images."""
    paths = np.asarray(paths)
    if paths.ndim != 5:
        raise ValueError(
            "paths must have shape (rows, steps, height, width, channels). "
            f"Received: shape={paths.shape}"
        )
    rows, steps = paths.shape[:2]
    fig = _figure(1.0 * steps, 0.5 + 1.0 * rows)
    _show(fig.subplots(), image_grid(paths.reshape(-1, *paths.shape[2:]), cols=steps))
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def plot_latent_manifold(
    path,
    grid,
    quantile_range=(0.05, 0.95),
    title: str = "The decoder across a 2-D latent space",
):
    """A `(rows, cols, h, w, c)` grid of decoded images with its latent axes."""
    grid = np.asarray(grid)
    if grid.ndim != 5:
        raise ValueError(
            "grid must have shape (rows, cols, height, width, channels). "
            f"Received: shape={grid.shape}"
        )
    rows, cols = grid.shape[:2]
    fig = _figure(6, 6.3)
    ax = fig.subplots()
    _show(ax, image_grid(grid.reshape(-1, *grid.shape[2:]), cols=cols, pad=0))
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    low, high = quantile_range
    ax.set_xlabel(f"z[0]: normal quantiles {low:g} to {high:g}")
    ax.set_ylabel(f"z[1]: normal quantiles {high:g} to {low:g}")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def plot_latent_scatter(
    path,
    z,
    labels,
    title: str = "Posterior means of test images",
    class_names=None,
):
    """Posterior means coloured by class; a PCA projection when `z` has > 2 dims."""
    from vae_tf.generation import pca_project

    z = np.asarray(z).reshape(len(z), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(z):
        raise ValueError(
            f"labels must hold one label per latent. Received: {len(labels)} labels "
            f"for {len(z)} latents"
        )
    projected, explained = pca_project(z, 2)
    fig = _figure(6, 5.2)
    ax = fig.subplots()
    classes = np.unique(labels)
    cmap = "tab10" if len(classes) <= 10 else "tab20"
    points = ax.scatter(
        projected[:, 0], projected[:, 1], c=labels, cmap=cmap, s=4, alpha=0.7
    )
    legend = fig.colorbar(points, ax=ax, ticks=classes)
    if class_names is not None:
        legend.ax.set_yticklabels([class_names[c] for c in classes])
    if z.shape[1] > 2:
        ax.set_xlabel(f"principal component 1 ({explained[0]:.0%} of the variance)")
        ax.set_ylabel(f"principal component 2 ({explained[1]:.0%} of the variance)")
    else:
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.savefig(path, dpi=120)


def plot_curve(
    path,
    x,
    ys: dict,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    annotate=None,
    logy: bool = False,
):
    """Line plot of one or more named series against `x`; optional point labels."""
    fig = _figure(6, 4.2)
    ax = fig.subplots()
    for name, y in ys.items():
        ax.plot(x, y, marker="o", label=name)
    if annotate is not None:
        first = next(iter(ys.values()))
        for xi, yi, text in zip(x, first, annotate):
            ax.annotate(str(text), (xi, yi), textcoords="offset points", xytext=(4, 4))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(ys) > 1:
        ax.legend()
    fig.savefig(path, dpi=120)


def plot_rate_distortion(path, series: dict, title: str, metric: str = "PSNR (dB)"):
    """Rate-distortion curves: `series` maps a codec's name to `(rates, qualities)`.

    Rates are bits per pixel; each series is drawn in order of rate.
    """
    fig = _figure(6, 4.2)
    ax = fig.subplots()
    for name, (rates, qualities) in series.items():
        order = np.argsort(rates)
        ax.plot(
            np.asarray(rates)[order],
            np.asarray(qualities)[order],
            marker="o",
            label=name,
        )
    ax.set_xlabel("bits per pixel (whole files)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


def plot_image_row(path, images, titles):
    """Images side by side, each with its title (e.g. an original and its codings)."""
    fig = _figure(3.2 * len(images), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(images)))
    for ax, image, title in zip(axes, images, titles):
        _show(ax, image, title)
    fig.savefig(path, dpi=120)
