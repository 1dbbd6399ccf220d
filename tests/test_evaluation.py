import math

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import data, evaluation


def test_log_importance_weights_match_an_independent_numpy_computation(
    trained_vae, binary_test_images
):
    x = binary_test_images[:3]
    log_w = np.asarray(
        evaluation.log_importance_weights(trained_vae, x, 5, seed=0)
    )  # (5, 3)
    # Recompute from the same z with numpy: the same eps, drawn the same way.
    from vae_tf._random import normal

    eps = np.asarray(normal((5, 3, trained_vae.latent_dim), seed=0))
    z_mean, z_log_var = (np.asarray(t, np.float64) for t in trained_vae.encode(x))
    z = z_mean + np.exp(0.5 * z_log_var) * eps
    logits = np.asarray(
        trained_vae.decoder(z.reshape(15, -1).astype("float32")), np.float64
    ).reshape(5, 3, -1)
    targets = x.reshape(1, 3, -1)
    log_px = (targets * logits - np.logaddexp(0.0, logits)).sum(-1)
    log_pz = (-0.5 * (np.log(2 * np.pi) + z**2)).sum(-1)
    log_qz = (
        -0.5 * (np.log(2 * np.pi) + z_log_var + (z - z_mean) ** 2 / np.exp(z_log_var))
    ).sum(-1)
    np.testing.assert_allclose(log_w, log_px + log_pz - log_qz, rtol=2e-4, atol=1e-2)


def test_one_sample_iwae_has_the_elbo_as_its_mean(trained_vae, binary_test_images):
    # E[log w] is the ELBO; the analytic-KL estimate has the same mean. Per
    # image, the two one-sample estimates differ by noise of mean zero: their
    # mean difference must be within 4 of its standard errors (measured here,
    # from the same images), and so must the two evaluations' figures.
    x = binary_test_images
    log_w = np.asarray(trained_vae.log_importance_weights(x, 1, seed=1))[0]
    reconstruction, kl = trained_vae.compute_terms(x, seed=2)
    difference = -log_w - np.asarray(reconstruction + kl, np.float64)
    standard_error = difference.std(ddof=1) / math.sqrt(len(x))
    assert standard_error > 0
    assert abs(difference.mean()) < 4 * standard_error
    test = data.make_dataset(x, batch_size=100)
    elbo = evaluation.evaluate_elbo(trained_vae, test, seed=0)
    one = evaluation.evaluate_iwae(trained_vae, test, num_samples=1, seed=1)
    assert abs(one["nll_nats"] - elbo["negative_elbo_nats"]) < 4 * standard_error


def test_iwae_bound_is_above_the_elbo_and_does_not_decrease_with_k(
    trained_vae, binary_test_images
):
    test = data.make_dataset(binary_test_images, batch_size=100)
    elbo = evaluation.evaluate_elbo(trained_vae, test, seed=0)["negative_elbo_nats"]
    nll = {}
    per_image = {}
    for k in (1, 10, 100):
        result = evaluation.evaluate_iwae(trained_vae, test, num_samples=k, seed=k)
        nll[k] = result["nll_nats"]
        per_image[k] = result
    # -L_k is an upper bound on the NLL that does not increase with k. Each step
    # must hold beyond 3 standard errors of its estimate (a one-sided test).
    assert nll[100] < elbo
    for small, large in ((1, 10), (10, 100)):
        noise = 3 * math.hypot(
            per_image[small]["standard_error_nats"] / 10,
            per_image[large]["standard_error_nats"] / 10,
        )
        assert nll[large] <= nll[small] + noise
    assert nll[1] - nll[100] > 0.5  # a real, visible gap on a trained model


class ConstantWeights:
    """A stand-in model whose importance weights are known: `log w = v_i` for
    every sample of image `i`, so `-L_k = -v_i` exactly, for any `k`."""

    def __init__(self, values):
        self.values = tf.constant(values, tf.float32)
        self.likelihood = vae_tf.Bernoulli(None)

    def check_batch(self, x):
        return x

    def prepare_batch(self, x, y=None):
        return x, None

    def log_importance_weights(self, x, num_samples, seed=None, labels=None):
        index = tf.cast(tf.reduce_sum(x, axis=(1, 2, 3)), tf.int32)  # image i
        values = tf.gather(self.values, index)
        return tf.broadcast_to(values, (num_samples, tf.shape(x)[0]))


@pytest.mark.parametrize("max_decodes", [10 * 64, 10 * 5, 10, 1])
def test_chunking_merges_the_chunks_exactly(max_decodes):
    # Image i holds i ones, so the stand-in knows which image it scores.
    values = np.linspace(-300.0, -80.0, 10)
    images = np.zeros((10, 4, 4, 1), "float32")
    for i in range(10):
        images.reshape(10, -1)[i, :i] = 1.0
    test = data.make_dataset(images, batch_size=10)
    result = evaluation.evaluate_iwae(
        ConstantWeights(values), test, num_samples=64, seed=0, max_decodes=max_decodes
    )
    assert result["nll_nats"] == pytest.approx(-values.mean(), rel=1e-6)
    assert result["num_samples"] == 64 and result["num_images"] == 10


def test_evaluate_reports_metrics_json_names_and_bits_per_dim(
    trained_vae, binary_test_images
):
    test = data.make_dataset(binary_test_images[:100], batch_size=50)
    results = vae_tf.evaluate(trained_vae, test, iwae_k=20)
    assert results["test_bits_per_dim"] == pytest.approx(
        results["test_negative_elbo_nats"] / (784 * math.log(2))
    )
    assert results["test_nll_iwae_nats"] < results["test_negative_elbo_nats"]
    assert results["num_test_images"] == 100 and results["iwae_k"] == 20


def test_evaluation_is_reproducible_with_a_seed(trained_vae, binary_test_images):
    test = data.make_dataset(binary_test_images[:100], batch_size=50)
    assert evaluation.evaluate_elbo(
        trained_vae, test, seed=3
    ) == evaluation.evaluate_elbo(trained_vae, test, seed=3)


def test_empty_dataset_and_bad_k_are_rejected(trained_vae, binary_test_images):
    empty = data.make_dataset(binary_test_images[:10], batch_size=10).take(0)
    with pytest.raises(ValueError, match="empty"):
        evaluation.evaluate_elbo(trained_vae, empty)
    with pytest.raises(ValueError, match="num_samples"):
        evaluation.evaluate_iwae(trained_vae, empty, num_samples=0)
