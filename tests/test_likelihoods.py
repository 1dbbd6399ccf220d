import keras
import numpy as np
import pytest

from vae_tf import likelihoods
from vae_tf.likelihoods import Bernoulli


def numpy_bernoulli_log_prob(x, logits):
    logits = logits.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-logits))
    return (x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(len(x), -1).sum(-1)


def test_bernoulli_log_prob_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4, 28, 28, 1)).astype("float32")
    x = (rng.random((4, 28, 28, 1)) < 0.3).astype("float32")
    ours = np.asarray(Bernoulli().log_prob(x, logits))
    np.testing.assert_allclose(ours, numpy_bernoulli_log_prob(x, logits), rtol=1e-5)


def test_bernoulli_log_prob_is_finite_for_extreme_logits():
    logits = np.array([[-1e4, 1e4, -80.0, 80.0]], "float32").reshape(1, 2, 2, 1)
    x = np.array([[1.0, 0.0, 1.0, 0.0]], "float32").reshape(1, 2, 2, 1)
    value = np.asarray(Bernoulli().log_prob(x, logits))
    assert np.isfinite(value).all()
    assert value[0] == pytest.approx(-(1e4 + 1e4 + 80 + 80), rel=1e-5)


def test_bernoulli_probabilities_of_both_outcomes_sum_to_one():
    logits = np.linspace(-20, 20, 41, dtype="float32").reshape(1, 41, 1, 1)
    log_p1 = [
        np.asarray(
            Bernoulli().log_prob(
                np.ones_like(logits[:, i : i + 1]), logits[:, i : i + 1]
            )
        )
        for i in range(41)
    ]
    log_p0 = [
        np.asarray(
            Bernoulli().log_prob(
                np.zeros_like(logits[:, i : i + 1]), logits[:, i : i + 1]
            )
        )
        for i in range(41)
    ]
    np.testing.assert_allclose(np.exp(log_p1) + np.exp(log_p0), 1.0, rtol=1e-6)


def test_dynamic_binarisation_samples_the_intensity_and_keeps_binary_pixels():
    x = np.full((200, 28, 28, 1), 0.3, "float32")
    x[:, 0, 0, 0] = 1.0
    x[:, 0, 1, 0] = 0.0
    targets = np.asarray(
        Bernoulli("dynamic").prepare_targets(x, seed=keras.random.SeedGenerator(0))
    )
    assert set(np.unique(targets)) <= {0.0, 1.0}
    assert targets[:, 2:].mean() == pytest.approx(0.3, abs=0.005)
    assert (targets[:, 0, 0, 0] == 1).all() and (targets[:, 0, 1, 0] == 0).all()


def test_dynamic_binarisation_draws_fresh_samples_each_step():
    generator = keras.random.SeedGenerator(0)
    x = np.full((1, 28, 28, 1), 0.5, "float32")
    first = np.asarray(Bernoulli("dynamic").prepare_targets(x, seed=generator))
    second = np.asarray(Bernoulli("dynamic").prepare_targets(x, seed=generator))
    assert (first != second).any()


def test_static_binarisation_thresholds_at_one_half():
    x = np.array([0.2, 0.5, 0.51, 0.9], "float32").reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(
        Bernoulli("static").prepare_targets(x).numpy().ravel(), [0, 0, 1, 1]
    )


def test_unknown_binarisation_is_rejected():
    with pytest.raises(ValueError, match="binarization"):
        Bernoulli("sometimes")


def test_get_resolves_names_instances_and_configs():
    assert isinstance(likelihoods.get("bernoulli"), Bernoulli)
    config = keras.saving.serialize_keras_object(Bernoulli("static"))
    assert likelihoods.get(config).binarization == "static"
    with pytest.raises(ValueError, match="Unknown likelihood"):
        likelihoods.get("poisson")
