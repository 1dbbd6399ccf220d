"""Evaluate a trained VAE on a dataset: ELBO, importance-weighted NLL, bits/dim.

All numbers are averages per image in nats (or bits per dimension), computed
with a seed of their own so that evaluating twice gives the same figures and
leaves the model's random state alone.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf.bounds import bits_per_dim

__all__ = ["log_importance_weights", "evaluate_elbo", "evaluate_iwae", "evaluate"]


def _images(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def log_importance_weights(model, x, num_samples: int, seed=None):
    """Log importance weights `log p(x, z_i) - log q(z_i | x)`, `(num_samples, batch)`.

    The model computes them (`VAE.log_importance_weights`), since they follow
    its latent structure; `x` must already be binarised for a binarising
    likelihood.
    """
    return model.log_importance_weights(x, num_samples, seed=seed)


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
    generator = keras.random.SeedGenerator(seed)

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def batch_sums(x):
        reconstruction, kl = model.compute_terms(x, training=False, seed=generator)
        return ops.sum(reconstruction), ops.sum(kl), ops.shape(x)[0]

    totals = np.zeros(2)
    count = 0
    for batch in dataset:
        x = _images(batch)
        model._ensure_built(tuple(x.shape[1:]))
        reconstruction, kl, n = batch_sums(x)
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
    generator = keras.random.SeedGenerator(seed)

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def chunk_logsumexp(x, chunk):
        log_w = log_importance_weights(
            model, x, chunk, seed=generator
        )  # (chunk, batch)
        return ops.logsumexp(log_w, axis=0)  # (batch,)

    bounds = []
    for batch in dataset:
        x = _images(batch)
        model._ensure_built(tuple(x.shape[1:]))
        x = model.likelihood.prepare_targets(x, seed=generator)
        chunk = max(1, min(num_samples, max_decodes // int(x.shape[0])))
        total = tf.fill((x.shape[0],), -np.inf)
        done = 0
        while done < num_samples:
            size = min(chunk, num_samples - done)
            total = tf.experimental.numpy.logaddexp(total, chunk_logsumexp(x, size))
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


def evaluate(model, dataset, iwae_k: int | None = 1000, seed: int = 0) -> dict:
    """Test-set figures of a VAE, named as in `metrics.json`.

    Args:
        model: a trained `vae_tf.VAE`.
        dataset: the test `tf.data.Dataset` (binarised for a binarising model).
        iwae_k: importance samples for the NLL estimate; `None` skips it.
        seed: seed of the evaluation's samples.

    Returns:
        A dict with `test_elbo_nats` (the negative ELBO per image, nats; lower
        is better), `test_reconstruction_nats`, `test_kl_nats`,
        `test_bits_per_dim` and, with `iwae_k`, `test_nll_iwae_nats`,
        `test_nll_iwae_bits_per_dim` and `iwae_k`.
    """
    elbo = evaluate_elbo(model, dataset, seed=seed)
    results = {
        "test_elbo_nats": elbo["negative_elbo_nats"],
        "test_reconstruction_nats": elbo["reconstruction_nats"],
        "test_kl_nats": elbo["kl_nats"],
        "test_bits_per_dim": elbo["bits_per_dim"],
        "num_test_images": elbo["num_images"],
    }
    if iwae_k:
        iwae = evaluate_iwae(model, dataset, num_samples=iwae_k, seed=seed)
        results.update(
            test_nll_iwae_nats=iwae["nll_nats"],
            test_nll_iwae_bits_per_dim=iwae["bits_per_dim"],
            iwae_k=iwae_k,
        )
    return results
