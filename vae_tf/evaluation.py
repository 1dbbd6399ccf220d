"""Evaluate a trained VAE on a dataset: ELBO, importance-weighted NLL, bits/dim.

All numbers are averages per image in nats (or bits per dimension), computed
with a seed of their own so that evaluating twice gives the same figures and
leaves the model's random state alone. The draws are stateless (each batch's
seed is derived from `seed` and the batch's index), so evaluation runs the
same inside a `tf.distribute` strategy's scope as on one device: a seed
generator's variable would be mirrored there, and XLA cannot update it.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf.bounds import bits_per_dim, gaussian_kl

__all__ = [
    "batch_seed",
    "evaluate_rate_distortion",
    "log_importance_weights",
    "evaluate_elbo",
    "evaluate_iwae",
    "latent_diagnostics",
    "psnr",
    "psnr_per_image",
    "denoising_psnr",
    "evaluate",
]


def _split(model, batch):
    """`(images, labels)` of a batch as the model takes them, checked as `fit`
    checks them (images in [0, 1]; a conditional model's labels, one per
    image); the model is built on the first batch if it was not yet."""
    parts = tuple(batch)[:2] if isinstance(batch, (tuple, list)) else (batch,)
    checked = model.check_batch(*parts)
    x, y = (checked[0], checked[1]) if len(parts) == 2 else (checked, None)
    return model.prepare_batch(x, y)


def log_importance_weights(model, x, num_samples: int, seed=None, labels=None):
    """Log importance weights `log p(x, z_i) - log q(z_i | x)`, `(num_samples, batch)`.

    The model computes them (`VAE.log_importance_weights`), since they follow
    its latent structure; `x` must already be binarised for a binarising
    likelihood.
    """
    return model.log_importance_weights(x, num_samples, seed=seed, labels=labels)


def batch_seed(seed: int, *indices: int) -> tf.Tensor:
    """The stateless seed of one batch (and chunk) of an evaluation.

    A scalar int64 tensor, so a compiled step takes a new one without
    retracing; the model derives its independent draws from it
    (`vae_tf._random.derive`).
    """
    state = np.random.SeedSequence([seed % 2**32, *indices]).generate_state(1)
    return tf.constant(int(state[0]) % (2**31 - 1), tf.int64)


def _num_dims(dataset) -> int:
    spec = dataset.element_spec
    spec = spec[0] if isinstance(spec, (tuple, list)) else spec
    return math.prod(spec.shape[1:])


def evaluate_elbo(model, dataset, seed: int = 0) -> dict:
    """The ELBO and its two terms, averaged over every image of `dataset`.

    One posterior sample per image; the KL term is the closed form.

    Args:
        model: a trained `vae_tf.VAE`.
        dataset: a `tf.data.Dataset` of image batches (or `(images, labels)`).
        seed: seed of the posterior samples (and of any binarisation).

    Returns:
        A dict with `negative_elbo_nats` (the loss, an upper bound on the
        NLL), `reconstruction_nats`, `kl_nats`, `bits_per_dim` (of the negative
        ELBO) and `num_images`.

    Raises:
        ValueError: for an empty dataset.
    """

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def batch_sums(x, labels, batch_seed):
        reconstruction, kl = model.compute_terms(
            x, training=False, seed=batch_seed, labels=labels
        )
        return ops.sum(reconstruction), ops.sum(kl), ops.shape(x)[0]

    totals = np.zeros(2)
    count = 0
    for index, batch in enumerate(dataset):
        x, labels = _split(model, batch)
        reconstruction, kl, n = batch_sums(x, labels, batch_seed(seed, index))
        totals += [float(reconstruction), float(kl)]
        count += int(n)
    if count == 0:
        raise ValueError("The dataset is empty: there is nothing to evaluate.")
    reconstruction, kl = totals / count
    negative_elbo = reconstruction + kl
    return {
        "negative_elbo_nats": negative_elbo,
        "reconstruction_nats": reconstruction,
        "kl_nats": kl,
        "bits_per_dim": float(bits_per_dim(negative_elbo, _num_dims(dataset))),
        "num_images": count,
    }


def evaluate_iwae(
    model, dataset, num_samples: int = 1000, seed: int = 0, max_decodes: int = 8192
) -> dict:
    """Importance-weighted estimate of the test NLL, `-L_k` (Burda et al. 2016).

    The `k` samples of each batch are drawn in chunks so that at most about
    `max_decodes` images are decoded at once: memory stays bounded for any `k`
    (e.g. 5000), and the chunks' log-weights are merged with a running
    log-sum-exp.

    Args:
        model: a trained `vae_tf.VAE`.
        dataset: a `tf.data.Dataset` of image batches (or `(images, labels)`).
        num_samples: `k`, importance samples per image.
        seed: seed of the samples.
        max_decodes: bound on `batch * chunk`, the decodes per step.

    Returns:
        A dict with `nll_nats` (`-L_k` averaged over images), its
        `bits_per_dim`, `standard_error_nats` (over images), `num_samples`
        and `num_images`.

    Raises:
        ValueError: for `num_samples < 1` or an empty dataset.
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(
            "num_samples must be a positive integer. Received: "
            f"num_samples={num_samples!r}"
        )

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def chunk_logsumexp(x, labels, chunk, chunk_seed):
        log_w = log_importance_weights(
            model, x, chunk, seed=chunk_seed, labels=labels
        )  # (chunk, batch)
        return ops.logsumexp(log_w, axis=0)  # (batch,)

    bounds = []
    for index, batch in enumerate(dataset):
        x, labels = _split(model, batch)
        x = model.likelihood.prepare_targets(x, seed=batch_seed(seed, index, 0))
        chunk = max(1, min(num_samples, max_decodes // int(x.shape[0])))
        total = tf.fill((x.shape[0],), -np.inf)
        done = 0
        while done < num_samples:
            size = min(chunk, num_samples - done)
            chunk_seed = batch_seed(seed, index, 1 + done)
            total = tf.experimental.numpy.logaddexp(
                total, chunk_logsumexp(x, labels, size, chunk_seed)
            )
            done += size
        bounds.append((total - math.log(num_samples)).numpy())  # L_k per image
    if not bounds:
        raise ValueError("The dataset is empty: there is nothing to evaluate.")
    nll = -np.concatenate(bounds).astype(np.float64)
    return {
        "nll_nats": float(nll.mean()),
        "bits_per_dim": float(bits_per_dim(nll.mean(), _num_dims(dataset))),
        "standard_error_nats": float(nll.std(ddof=1) / math.sqrt(len(nll)))
        if len(nll) > 1
        else 0.0,
        "num_samples": num_samples,
        "num_images": int(len(nll)),
    }


def latent_diagnostics(model, dataset, threshold: float = 0.01, seed: int = 0) -> dict:
    """Which latent dimensions the model uses: KL per dimension and active units.

    A dimension `u` is *active* when its posterior mean varies with the input
    (Burda et al. 2016, arXiv:1509.00519, section 5.2):

    ```
    A_u = Cov_x(E_{q(z | x)}[z_u]) > threshold      (threshold = 0.01)
    ```

    An inactive dimension's posterior is the same for every image, so the
    decoder ignores it and its KL is ~0: posterior collapse, when (almost)
    all dimensions are inactive. For a `HierarchicalVAE` these are the top
    level's dimensions; a latent map is flattened, position by position.

    Args:
        model: a trained `vae_tf.VAE`.
        dataset: a `tf.data.Dataset` of image batches (or `(images, labels)`).
        threshold: the activity threshold on the variance of the posterior mean.
        seed: seed of any binarisation of the images.

    Returns:
        A dict with `active_units` (int), `num_latent_dims`,
        `kl_per_dim_nats` (the closed-form KL of each dimension averaged over
        images, a list) and `posterior_mean_variance` (`A_u`, a list).

    Raises:
        ValueError: for an empty dataset.
    """

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def batch_sums(x, labels, batch_seed):
        x = model.likelihood.prepare_targets(x, seed=batch_seed)
        z_mean, z_log_var = model.posterior(x, training=False, labels=labels)
        batch = ops.shape(x)[0]
        z_mean = ops.reshape(z_mean, (batch, -1))
        kl = ops.reshape(
            gaussian_kl(z_mean, ops.reshape(z_log_var, (batch, -1))), (batch, -1)
        )
        return (
            ops.sum(z_mean, axis=0),
            ops.sum(ops.square(z_mean), axis=0),
            ops.sum(kl, axis=0),
        )

    totals = None
    count = 0
    for index, batch in enumerate(dataset):
        x, labels = _split(model, batch)
        sums = [
            np.asarray(t, np.float64)
            for t in batch_sums(x, labels, batch_seed(seed, index))
        ]
        totals = sums if totals is None else [a + b for a, b in zip(totals, sums)]
        count += int(x.shape[0])
    if count == 0:
        raise ValueError("The dataset is empty: there is nothing to evaluate.")
    mean_sum, square_sum, kl_sum = totals
    # The variance over images of each posterior mean, from float64 sums.
    variance = np.maximum(square_sum / count - np.square(mean_sum / count), 0.0)
    return {
        "active_units": int(np.sum(variance > threshold)),
        "num_latent_dims": int(variance.size),
        "kl_per_dim_nats": (kl_sum / count).tolist(),
        "posterior_mean_variance": variance.tolist(),
    }


PSNR_CAP_DB = 100.0  # what an exact copy scores, rather than infinity


def psnr_per_image(images, references, max_val=1.0):
    """PSNR in dB of each image against its reference: `(batch,)`.

    `10 log10(max_val^2 / MSE)` per image (`tf.image.psnr`), capped at
    `PSNR_CAP_DB` so an exact copy does not make a mean infinite. The one PSNR
    of the package: training metrics, evaluation and the codec benchmarks
    all use it.

    Args:
        images, references: `(batch, height, width, channels)`, same shape
            and dtype (floats in [0, max_val], or uint8 with `max_val=255`).
        max_val: the largest pixel value.
    """
    return tf.minimum(tf.image.psnr(images, references, max_val=max_val), PSNR_CAP_DB)


def psnr(images, references) -> float:
    """Mean PSNR in dB of images against references, both floats in [0, 1]
    (`psnr_per_image`, averaged over images).

    Raises:
        ValueError: if the shapes differ.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    references = tf.convert_to_tensor(references, tf.float32)
    if images.shape != references.shape:
        raise ValueError(
            "images and references must have the same shape. Received: "
            f"{tuple(images.shape)} and {tuple(references.shape)}"
        )
    return float(tf.reduce_mean(psnr_per_image(images, references)))


def denoising_psnr(
    model, images, corruption, seed: int = 0, batch_size: int = 500
) -> dict:
    """How well a model restores corrupted images, in PSNR against the clean ones.

    Each image is corrupted once (with `seed`) and reconstructed by `model`
    (the decoded mean at the posterior mean of the corrupted image).

    Args:
        model: a trained `vae_tf.VAE` (a denoising one or not).
        images: clean images `(N, height, width, channels)` in [0, 1].
        corruption: a `vae_tf.corruption.Corruption`.
        seed: seed of the corruption.
        batch_size: images per step.

    Returns:
        A dict with `psnr_corrupted_db` (the corrupted input against the clean
        image), `psnr_reconstructed_db` (the model's output against the clean
        image) and `num_images`.
    """
    images = np.asarray(images, np.float32)
    if len(images) == 0:
        raise ValueError("images is empty: there is nothing to evaluate.")
    generator = keras.random.SeedGenerator(seed)
    sums = np.zeros(2)
    for start in range(0, len(images), batch_size):
        clean = tf.constant(images[start : start + batch_size])
        corrupted = corruption(clean, seed=generator)
        restored = model.reconstruct(corrupted)
        n = int(clean.shape[0])
        sums += [psnr(corrupted, clean) * n, psnr(restored, clean) * n]
    return {
        "psnr_corrupted_db": sums[0] / len(images),
        "psnr_reconstructed_db": sums[1] / len(images),
        "num_images": int(len(images)),
    }


def evaluate_rate_distortion(model, dataset) -> dict:
    """Test-set rate and distortion of a `vae_tf.LossyVAE`, latents rounded.

    The rate is the prior's estimate, `-log2 p(round(y))` over the image's
    pixels (images padded as the codec pads them), which the entropy coder
    meets up to a few bytes per file (`vae_tf.compression.LossyCodec`); PSNR
    is averaged over images (`tf.image.psnr` of the 8-bit reconstruction).

    Returns:
        A dict with `test_bpp`, `test_psnr_db`, `test_mse` (8-bit units) and
        `num_test_images`.
    """
    bits, psnrs, squared, count, values = [], [], 0.0, 0, 0
    for x in dataset:
        x = x[0] if isinstance(x, tuple) else x
        height, width = int(x.shape[1]), int(x.shape[2])
        pixels = height * width
        # Padded like the codec pads (edges repeated to a multiple of the
        # downsampling), so the rate is the one the files will have.
        padded = model.pad(x)
        y_hat, image_bits = model.rate_bits(tf.cast(model.analysis(padded), tf.float32))
        x_hat = model.synthesis(y_hat)[:, :height, :width]
        x_hat = tf.round(tf.clip_by_value(x_hat, 0.0, 1.0) * 255.0)
        reference = tf.round(x * 255.0)
        bits.append(image_bits.numpy() / pixels)
        psnrs.append(psnr_per_image(x_hat, reference, max_val=255.0).numpy())
        squared += float(tf.reduce_sum(tf.square(x_hat - reference)))
        count += int(x.shape[0])
        values += int(tf.size(x))
    return {
        "test_bpp": float(np.mean(np.concatenate(bits))),
        "test_psnr_db": float(np.mean(np.concatenate(psnrs))),
        "test_mse": squared / values,
        "num_test_images": count,
    }


# Keys of metrics.json renamed in 0.2, written under their old name too until
# 0.3: `test_elbo_nats` held the *negative* ELBO.
DEPRECATED_KEYS = {
    "test_elbo_nats": "test_negative_elbo_nats",
    "test_elbo_uniform_prior_nats": "test_negative_elbo_uniform_prior_nats",
}


def with_deprecated_keys(results: dict) -> dict:
    """`results` and, for one version, each renamed key under its old name."""
    old = {o: results[new] for o, new in DEPRECATED_KEYS.items() if new in results}
    return {**results, **old}


def evaluate(model, dataset, iwae_k: int | None = 1000, seed: int = 0) -> dict:
    """Test-set figures of a VAE, named as in `metrics.json`.

    Args:
        model: a trained `vae_tf.VAE`.
        dataset: the test `tf.data.Dataset` (binarised for a binarising model).
        iwae_k: importance samples for the NLL estimate; `None` skips it.
        seed: seed of the evaluation's samples.

    Returns:
        A dict with `test_negative_elbo_nats` (the negative ELBO per image, nats; lower
        is better), `test_reconstruction_nats`, `test_kl_nats`,
        `test_bits_per_dim`, `test_active_units` and `test_kl_per_dim_nats`
        (`latent_diagnostics`) and, with `iwae_k`, `test_nll_iwae_nats`,
        `test_nll_iwae_bits_per_dim` and `iwae_k`. `test_elbo_nats`, the old
        name of `test_negative_elbo_nats`, is kept until version 0.3.
    """
    elbo = evaluate_elbo(model, dataset, seed=seed)
    results = {
        "test_negative_elbo_nats": elbo["negative_elbo_nats"],
        "test_reconstruction_nats": elbo["reconstruction_nats"],
        "test_kl_nats": elbo["kl_nats"],
        "test_bits_per_dim": elbo["bits_per_dim"],
        "num_test_images": elbo["num_images"],
    }
    latents = latent_diagnostics(model, dataset, seed=seed)
    results.update(
        test_active_units=latents["active_units"],
        test_num_latent_dims=latents["num_latent_dims"],
        test_kl_per_dim_nats=latents["kl_per_dim_nats"],
    )
    if iwae_k:
        iwae = evaluate_iwae(model, dataset, num_samples=iwae_k, seed=seed)
        results.update(
            test_nll_iwae_nats=iwae["nll_nats"],
            test_nll_iwae_bits_per_dim=iwae["bits_per_dim"],
            iwae_k=iwae_k,
        )
    return with_deprecated_keys(results)
