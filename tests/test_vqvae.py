"""The VQ-VAE: nearest codes, straight-through gradients, its terms, its prior."""

import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import vae_tf
from vae_tf.models.vqvae import CodePrior, VectorQuantizer


def tiny_vqvae(seed=0, num_codes=8):
    return vae_tf.presets.vq_vae(
        (28, 28, 1),
        vae_tf.Bernoulli("threshold"),
        num_codes=num_codes,
        code_dim=4,
        filters=(8, 8),
        residual_blocks=0,
        prior_filters=8,
        prior_layers=2,
        seed=seed,
    )


@pytest.fixture(scope="module")
def trained(mnist_subset):
    train, _ = mnist_subset
    keras.utils.set_random_seed(0)
    model = tiny_vqvae()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(train[:1024], batch_size=64, epochs=2, verbose=0)
    return model, history.history


def test_quantizer_picks_the_nearest_code_and_passes_gradients_straight_through():
    quantizer = VectorQuantizer(3, 2)
    quantizer.build((None, 1, 2, 2))
    quantizer.codebook.assign([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]])
    z_e = tf.constant([[[[0.9, 0.8], [-1.5, 0.0]]]])  # (1, 1, 2, 2)
    weights = tf.constant([[[[2.0, -1.0], [0.5, 3.0]]]])
    with tf.GradientTape() as tape:
        tape.watch(z_e)
        z_st, codes, z_q = quantizer(z_e)
        value = tf.reduce_sum(z_st * weights)
    assert codes.numpy().tolist() == [[[1, 2]]]
    np.testing.assert_allclose(z_q.numpy(), [[[[1.0, 1.0], [-2.0, 0.5]]]])
    np.testing.assert_allclose(z_st.numpy(), z_q.numpy())  # forward: the codes
    np.testing.assert_allclose(tape.gradient(value, z_e).numpy(), weights.numpy())


def test_codebook_and_commitment_terms_are_squared_distances_that_train_apart():
    model = tiny_vqvae()
    x = (np.random.default_rng(0).uniform(size=(3, 28, 28, 1)) > 0.5).astype("f4")
    model.build((None, 28, 28, 1))
    with tf.GradientTape(persistent=True) as tape:
        terms = model.per_image_terms(x)
        codebook, commitment = (ops.sum(terms[k]) for k in ("codebook", "commitment"))
    z_e = model.encoder(x).numpy()
    z_q = model.quantizer.codebook.numpy()[model.encode_codes(x).numpy()]
    expected = np.sum(np.square(z_e - z_q), axis=(1, 2, 3))
    np.testing.assert_allclose(terms["codebook"].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(terms["commitment"].numpy(), expected, rtol=1e-5)
    # The codebook term moves only the codes, the commitment term only the encoder.
    assert tape.gradient(codebook, model.encoder.trainable_weights[0]) is None
    assert tape.gradient(commitment, model.quantizer.codebook) is None
    assert float(tf.norm(tape.gradient(codebook, model.quantizer.codebook))) > 0
    assert tape.gradient(commitment, model.encoder.trainable_weights[0]) is not None


def test_the_prior_is_causal_and_its_log_prob_is_the_sum_of_its_log_softmax():
    keras.utils.set_random_seed(0)
    prior = CodePrior(5, filters=8, num_layers=3)
    codes = tf.constant(np.random.default_rng(0).integers(0, 5, (2, 4, 4)), tf.int32)
    logits = prior(codes).numpy()
    changed = codes.numpy().copy()
    changed[:, 2, 1] = (changed[:, 2, 1] + 1) % 5  # position 9 in raster order
    logits_changed = prior(tf.constant(changed)).numpy()
    flat, flat_changed = logits.reshape(2, 16, 5), logits_changed.reshape(2, 16, 5)
    np.testing.assert_array_equal(flat[:, :10], flat_changed[:, :10])  # up to itself
    assert not np.allclose(flat[:, 10:], flat_changed[:, 10:])  # later ones see it
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, codes.numpy()[..., None], -1)
    np.testing.assert_allclose(
        prior.log_prob(codes).numpy(), expected.sum(axis=(1, 2, 3)), rtol=1e-5
    )


def test_perplexity_is_the_exponent_of_the_code_usage_entropy():
    model = tiny_vqvae(num_codes=8)
    usage = tf.constant([0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0])
    figures = model.step_metrics({"reconstruction": 10.0, "prior": 5.0, "usage": usage})
    assert float(figures["perplexity"]) == pytest.approx(4.0, rel=1e-5)
    assert float(figures["negative_elbo"]) == pytest.approx(15.0)


def test_training_lowers_the_loss_and_trains_every_weight(trained, mnist_subset):
    model, history = trained
    assert history["loss"][-1] < history["loss"][0]
    assert history["negative_elbo"][-1] < history["negative_elbo"][0]
    train, _ = mnist_subset
    x = (train[:32] > 0.5).astype("float32")
    with tf.GradientTape() as tape:
        loss = model.step_loss(model.per_image_terms(x, training=True))[0]
    gradients = tape.gradient(loss, model.trainable_weights)
    missing = [w.path for w, g in zip(model.trainable_weights, gradients) if g is None]
    assert not missing


def test_evaluation_reports_both_bounds_usage_and_perplexity(trained, mnist_subset):
    model, _ = trained
    _, test = mnist_subset
    dataset = vae_tf.data.make_dataset(vae_tf.data.binarize(test[:300], seed=0))
    figures = model.evaluate_dataset(dataset)
    positions = math.prod(model.map_shape)
    uniform = figures["test_reconstruction_nats"] + positions * math.log(8)
    assert figures["test_negative_elbo_uniform_prior_nats"] == pytest.approx(uniform)
    assert figures["test_negative_elbo_nats"] == pytest.approx(
        figures["test_reconstruction_nats"] + figures["test_prior_nats"]
    )
    # The learned prior beats a uniform one on the codes it was trained on.
    assert (
        figures["test_negative_elbo_nats"]
        < figures["test_negative_elbo_uniform_prior_nats"]
    )
    assert 1.0 <= figures["test_perplexity"] <= 8.0
    assert figures["test_codebook_usage"] in {i / 8 for i in range(1, 9)}
    assert figures == model.evaluate_dataset(dataset)  # seeded: the same twice


def test_same_seed_same_samples_and_a_keras_round_trip_is_identical(trained, tmp_path):
    model, _ = trained
    first = np.asarray(model.sample(4, seed=3))
    np.testing.assert_array_equal(first, np.asarray(model.sample(4, seed=3)))
    assert first.shape == (4, 28, 28, 1) and 0 <= first.min() <= first.max() <= 1
    model.save(tmp_path / "vq.keras")
    loaded = keras.saving.load_model(tmp_path / "vq.keras")
    np.testing.assert_array_equal(first, np.asarray(loaded.sample(4, seed=3)))
    x = np.full((2, 28, 28, 1), 0.5, "float32")
    np.testing.assert_array_equal(
        np.asarray(model.reconstruct(x)), np.asarray(loaded.reconstruct(x))
    )


def test_the_saved_model_serves_without_vae_tf(trained, tmp_path):
    model, _ = trained
    vae_tf.export_saved_model(model, tmp_path / "sm")
    x = np.random.default_rng(1).uniform(size=(2, 28, 28, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"served = tf.saved_model.load({str(tmp_path / 'sm')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "codes = served.encode(tf.constant(x))['codes'].numpy()\n"
        "out = served.reconstruct(tf.constant(x))['x_mean'].numpy()\n"
        "drawn = served.sample(tf.constant(3), tf.constant(1.0), tf.constant(0))\n"
        "print(codes.shape, drawn['x_mean'].shape, 'vae_tf' in sys.modules)\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        "(2,",
        "7,",
        "7)",
        "(3,",
        "28,",
        "28,",
        "1)",
        "False",
    ]
    np.testing.assert_allclose(
        np.load(tmp_path / "out.npy"), np.asarray(model.reconstruct(x)), atol=1e-6
    )
