import math

import numpy as np
import pytest

from vae_tf import bounds


def test_kl_matches_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    z_mean = rng.normal(size=(3, 5)).astype("float32")
    z_log_var = rng.normal(scale=0.5, size=(3, 5)).astype("float32")
    closed_form = np.asarray(bounds.gaussian_kl(z_mean, z_log_var)).sum(-1)
    # KL = E_q[log q(z) - log p(z)], estimated with 400k samples per example.
    std = np.exp(0.5 * z_log_var)
    z = z_mean + std * rng.normal(size=(400_000, 3, 5))
    log_q = -0.5 * (np.log(2 * np.pi) + z_log_var + ((z - z_mean) / std) ** 2)
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    samples = (log_q - log_p).sum(-1)
    monte_carlo = samples.mean(0)
    standard_error = samples.std(0) / math.sqrt(samples.shape[0])
    assert np.all(np.abs(closed_form - monte_carlo) < 5 * standard_error + 1e-3)


def test_kl_is_zero_for_standard_normal_posterior():
    zeros = np.zeros((2, 7), "float32")
    np.testing.assert_allclose(bounds.gaussian_kl(zeros, zeros), 0.0, atol=1e-7)


def test_gaussian_log_prob_matches_hand_computation():
    # N(1; mean 0, variance e) = -0.5 * (log 2pi + 1 + 1/e)
    value = bounds.gaussian_log_prob(np.float32(1.0), np.float32(0.0), np.float32(1.0))
    expected = -0.5 * (math.log(2 * math.pi) + 1.0 + math.exp(-1.0))
    assert float(value) == pytest.approx(expected, rel=1e-6)
    standard = bounds.standard_normal_log_prob(np.float32(2.0))
    assert float(standard) == pytest.approx(
        -0.5 * (math.log(2 * math.pi) + 4.0), rel=1e-6
    )


def test_iwae_bound_is_log_mean_exp():
    log_w = np.log(np.array([[1.0, 3.0], [2.0, 5.0]], "float32"))  # (k=2, batch=2)
    bound = np.asarray(bounds.iwae_bound(log_w, axis=0))
    np.testing.assert_allclose(bound, np.log([1.5, 4.0]), rtol=1e-6)


def test_bits_per_dim_of_uniform_bytes_is_eight():
    nll = 3072 * math.log(256.0)  # a uniform model of 32x32x3 bytes
    assert float(bounds.bits_per_dim(nll, 3072)) == pytest.approx(8.0)


def test_kl_between_gaussians_matches_monte_carlo_and_reduces_to_standard_kl():
    rng = np.random.default_rng(1)
    q_mean, p_mean = rng.normal(size=(2, 4)).astype("float32")
    q_log_var, p_log_var = rng.normal(scale=0.5, size=(2, 4)).astype("float32")
    closed = np.asarray(
        bounds.gaussian_kl_between(q_mean, q_log_var, p_mean, p_log_var)
    )
    z = q_mean + np.exp(0.5 * q_log_var) * rng.normal(size=(400_000, 4))
    log_q = -0.5 * (
        np.log(2 * np.pi) + q_log_var + (z - q_mean) ** 2 / np.exp(q_log_var)
    )
    log_p = -0.5 * (
        np.log(2 * np.pi) + p_log_var + (z - p_mean) ** 2 / np.exp(p_log_var)
    )
    samples = log_q - log_p
    standard_error = samples.std(0) / math.sqrt(len(samples))
    assert np.all(np.abs(closed - samples.mean(0)) < 5 * standard_error + 1e-3)
    zeros = np.zeros(4, "float32")
    np.testing.assert_allclose(
        bounds.gaussian_kl_between(q_mean, q_log_var, zeros, zeros),
        bounds.gaussian_kl(q_mean, q_log_var),
        rtol=1e-6,
    )
