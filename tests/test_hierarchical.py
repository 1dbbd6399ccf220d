"""The hierarchical (top-down) VAE: KL terms, bounds, training, saving, export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import evaluation
from vae_tf.likelihoods import Bernoulli, DiscretizedLogisticMixture

LEVELS = dict(filters=(8, 16), latent_channels=(4, 2))


def byte_images(shape, seed=0):
    return (np.random.default_rng(seed).integers(0, 256, shape) / 255.0).astype(
        "float32"
    )


def hierarchical_vae(channels=3, likelihood=None, seed=0):
    likelihood = likelihood or DiscretizedLogisticMixture(2)
    return vae_tf.HierarchicalVAE(
        vae_tf.HierarchicalEncoder(**LEVELS, residual_blocks=1),
        vae_tf.HierarchicalDecoder(
            (None, None, likelihood.param_channels(channels)),
            **LEVELS,
            residual_blocks=1,
        ),
        likelihood,
        seed=seed,
    )


@pytest.fixture
def model():
    keras.utils.set_random_seed(0)
    vae = hierarchical_vae()
    vae.build((None, 16, 16, 3))
    return vae


def test_latent_shapes_follow_the_levels(model):
    assert model.encoder.latent_shapes((16, 16, 3)) == [(8, 8, 4), (4, 4, 2)]
    assert model.latent_shape == (4, 4, 2)
    x = byte_images((3, 16, 16, 3))
    assert tuple(model.encode(x)[0].shape) == (3, 4, 4, 2)
    reconstructions = np.asarray(model.reconstruct(x))
    samples = np.asarray(model.sample(2, seed=0))
    assert reconstructions.shape == (3, 16, 16, 3)
    assert samples.shape == (2, 16, 16, 3)
    # Images in [0, 1] that depend on their input and on the seed.
    for images in (reconstructions, samples):
        assert images.min() >= 0.0 and images.max() <= 1.0  # mean images
    assert not np.array_equal(reconstructions[0], reconstructions[1])
    np.testing.assert_array_equal(samples, np.asarray(model.sample(2, seed=0)))
    assert not np.array_equal(samples, np.asarray(model.sample(2, seed=1)))


def test_kl_terms_are_non_negative_and_sum_to_the_total(model):
    x = tf.constant(byte_images((6, 16, 16, 3)))
    reconstruction, kls = model.kl_terms(x, seed=3)
    assert len(kls) == 2
    for kl in kls:
        assert np.all(np.asarray(kl) >= 0)
    total_reconstruction, total_kl = model.compute_terms(x, seed=3)
    np.testing.assert_allclose(
        total_kl, np.sum([np.asarray(k) for k in kls], 0), rtol=1e-5
    )
    np.testing.assert_allclose(total_reconstruction, reconstruction, rtol=1e-6)


def test_one_sample_log_weight_has_the_elbo_as_its_mean(model):
    # E_q[log w] = ELBO: averaging many one-sample log-weights must match the
    # analytic-KL ELBO estimate, an independent check of every level's density.
    x = tf.constant(byte_images((2, 16, 16, 3)))
    log_w = np.asarray(model.log_importance_weights(x, 4000, seed=1))  # (k, batch)
    reconstruction, kl = model.compute_terms(tf.repeat(x, 4000, axis=0), seed=2)
    elbo = -(np.asarray(reconstruction) + np.asarray(kl)).reshape(2, 4000).mean(1)
    standard_error = log_w.std(0) / np.sqrt(4000)
    assert np.all(np.abs(log_w.mean(0) - elbo) < 5 * standard_error + 0.05)


def test_iwae_is_tighter_than_the_elbo():
    keras.utils.set_random_seed(0)
    model = hierarchical_vae(channels=1, likelihood=Bernoulli("dynamic"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x = np.zeros((64, 16, 16, 1), "float32")
    x[:, 4:12, 6:10] = 1.0
    x[::2, 6:10, 2:14] = 1.0
    model.fit(x, batch_size=16, epochs=6, verbose=0, shuffle=False)
    test = vae_tf.data.make_dataset(x[:32], batch_size=16)
    elbo = evaluation.evaluate_elbo(model, test)["negative_elbo_nats"]
    nll = evaluation.evaluate_iwae(model, test, num_samples=50)["nll_nats"]
    assert nll < elbo


def test_fit_lowers_the_loss_with_the_same_train_step():
    keras.utils.set_random_seed(0)
    model = hierarchical_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    levels = np.random.default_rng(0).integers(0, 200, (48, 1, 1, 1)) / 255.0
    x = np.broadcast_to(levels, (48, 16, 16, 3)).astype("float32").copy()
    history = model.fit(x, batch_size=8, epochs=4, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


def test_keras_round_trip_and_export(tmp_path, model):
    x = byte_images((2, 16, 16, 3))
    model.save(tmp_path / "h.keras")
    loaded = keras.saving.load_model(tmp_path / "h.keras")
    assert isinstance(loaded, vae_tf.HierarchicalVAE)
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    np.testing.assert_array_equal(loaded.sample(2, seed=5), model.sample(2, seed=5))
    served = tf.saved_model.load(vae_tf.export_saved_model(model, tmp_path / "sm"))
    np.testing.assert_allclose(
        served.reconstruct(x)["x_mean"], model.reconstruct(x), atol=1e-5
    )
    np.testing.assert_allclose(
        served.sample(tf.constant(2), tf.constant(0.8), tf.constant(5))["x_mean"],
        model.sample(2, temperature=0.8, seed=5),
        atol=1e-5,
    )


def test_mismatched_levels_and_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="same filters"):
        vae_tf.HierarchicalVAE(
            vae_tf.HierarchicalEncoder((8, 16), (4, 2)),
            vae_tf.HierarchicalDecoder((None, None, 10), (8, 32), (4, 2)),
        )
    with pytest.raises(ValueError, match="one entry per latent level"):
        vae_tf.HierarchicalEncoder((8, 16), (4,))
    with pytest.raises(ValueError, match="divisible by 4"):
        hierarchical_vae().build((None, 18, 16, 3))
    with pytest.raises(TypeError, match="HierarchicalEncoder"):
        vae_tf.HierarchicalVAE(
            vae_tf.ConvEncoder(latent_dim=4),
            vae_tf.HierarchicalDecoder((None, None, 10), (8,), (4,)),
        )
