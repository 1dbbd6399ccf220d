"""Autoregressive decoders: exact likelihoods and sequential, seeded sampling."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
import vae_tf.autoregressive

KINDS = ["pixelcnn", "made"]


def make_ar_vae(kind, image_shape=(2, 2, 1), likelihood=None, seed=0):
    likelihood = likelihood or vae_tf.Bernoulli(None)
    height, width, channels = image_shape
    params = likelihood.param_channels(channels)
    if kind == "pixelcnn":
        decoder = vae_tf.PixelCNNDecoder(
            (height, width, params),
            latent_dim=3,
            conditioning_filters=(8,),
            filters=8,
            num_layers=2,
        )
    else:
        decoder = vae_tf.MADEDecoder((height, width, params), hidden_units=(16, 16))
    model = vae_tf.VAE(vae_tf.DenseEncoder(3, (8,)), decoder, likelihood, seed=seed)
    model.build((None, *image_shape))
    # Larger random weights than the initialisers give, so every pixel's
    # probability depends visibly on its predecessors.
    rng = np.random.default_rng(seed)
    for weight in model.decoder.weights:
        weight.assign(0.7 * rng.normal(size=weight.shape).astype("float32"))
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_of_all_binary_images_sum_to_one(kind):
    model = make_ar_vae(kind)
    images = np.array(list(itertools.product([0, 1], repeat=4)), np.float32)
    images = images.reshape(16, 2, 2, 1)
    z = np.tile(np.random.default_rng(1).normal(size=(1, 3)), (16, 1)).astype("f4")
    log_p = model.likelihood.log_prob(images, model.score_params(z, images))
    assert np.exp(np.asarray(log_p, np.float64)).sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "image_shape, likelihood",
    [
        ((5, 4, 1), vae_tf.Bernoulli(None)),
        ((3, 3, 3), vae_tf.DiscretizedLogisticMixture(2)),
    ],
)
def test_each_pixel_depends_only_on_the_pixels_before_it(kind, image_shape, likelihood):
    model = make_ar_vae(kind, image_shape, likelihood)
    height, width, channels = image_shape
    pixels = height * width
    x = tf.Variable(np.random.default_rng(0).random((1, *image_shape)).astype("f4"))
    z = tf.constant(np.random.default_rng(1).normal(size=(1, 3)).astype("float32"))
    for i in range(pixels):
        row, col = divmod(i, width)
        with tf.GradientTape() as tape:
            params = model.score_params(z, x)
            target = tf.reduce_sum(params[0, row, col])  # all of the pixel's params
        gradient = tape.gradient(target, x).numpy().reshape(pixels, channels)
        np.testing.assert_array_equal(gradient[i:], 0.0)  # itself and later pixels
        if i > 0:
            assert np.any(gradient[:i] != 0.0)  # earlier pixels do matter


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_is_sequential_consistent_and_seeded(kind):
    model = make_ar_vae(kind, (3, 3, 1))
    first = np.asarray(model.sample(64, seed=5))
    np.testing.assert_array_equal(first, np.asarray(model.sample(64, seed=5)))
    assert not np.array_equal(first, np.asarray(model.sample(64, seed=6)))


@pytest.mark.parametrize("kind", KINDS)
def test_sampled_images_follow_the_model_probabilities(kind):
    """Monte Carlo check on 2x2 images: draw frequencies match p(x | z)."""
    model = make_ar_vae(kind)
    z = np.tile(np.random.default_rng(2).normal(size=(1, 3)), (16, 1)).astype("f4")
    images = np.array(list(itertools.product([0, 1], repeat=4)), np.float32)
    images = images.reshape(16, 2, 2, 1)
    log_p = model.likelihood.log_prob(images, model.score_params(z, images))
    expected = np.exp(np.asarray(log_p, np.float64))

    draws = 20_000
    drawn, params = model.decoder.generate(
        tf.constant(np.repeat(z[:1], draws, 0)),
        model.likelihood.sample,
        (2, 2, 1),
        seed=tf.constant([9, 0]),
    )
    codes = np.asarray(drawn).reshape(draws, 4) @ np.array([8, 4, 2, 1])
    frequencies = np.bincount(codes.astype(int), minlength=16) / draws
    standard_error = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(frequencies - expected) <= 4 * standard_error + 1e-3), (
        frequencies,
        expected,
    )
    # The returned parameters are those that score the drawn images.
    np.testing.assert_allclose(
        params, model.score_params(np.repeat(z[:1], draws, 0), drawn), atol=1e-5
    )


@pytest.mark.parametrize("kind", KINDS)
def test_autoregressive_vae_trains_saves_exports_and_evaluates(kind, tmp_path):
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(0).random((64, 6, 6, 1)) > 0.5).astype("float32")
    model = make_ar_vae(kind, (6, 6, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(32)
    results = vae_tf.evaluate(model, dataset, iwae_k=20)
    assert results["test_nll_iwae_nats"] <= results["test_negative_elbo_nats"] + 1e-3

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.sample(3, seed=2), model.sample(3, seed=2))
    vae_tf.export_saved_model(model, tmp_path / "saved")
    served = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(
        served.sample(tf.constant(3), tf.constant(1.0), tf.constant(2))["x_mean"],
        model.sample(3, seed=2),
        atol=1e-5,
    )


def test_masked_convolution_arguments_are_checked():
    with pytest.raises(ValueError, match="mask_type"):
        vae_tf.autoregressive.MaskedConv2D(4, 3, "C")
    with pytest.raises(ValueError, match="odd positive integer"):
        vae_tf.autoregressive.MaskedConv2D(4, 4, "A")
    decoder = vae_tf.PixelCNNDecoder((4, 4, 1), latent_dim=2)
    with pytest.raises(ValueError, match="autoregressive decoder"):
        vae_tf.ConditionalVAE(vae_tf.DenseEncoder(2), decoder, num_classes=3)


@pytest.mark.parametrize("kind", KINDS)
def test_colour_images_are_drawn_as_valid_8_bit_pixels(kind):
    model = make_ar_vae(kind, (3, 3, 3), vae_tf.DiscretizedLogisticMixture(2))
    drawn, params = model.decoder.generate(
        tf.random.normal((5, 3), seed=0),
        model.likelihood.sample,
        (3, 3, 3),
        seed=tf.constant([1, 0]),
    )
    values = np.asarray(drawn) * 255.0
    assert drawn.shape == (5, 3, 3, 3)
    np.testing.assert_allclose(values, np.round(values), atol=1e-3)
    assert values.min() >= 0 and values.max() <= 255
    log_p = model.likelihood.log_prob(drawn, params)
    assert np.all(np.isfinite(log_p))
