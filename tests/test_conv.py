"""Convolutional encoders and decoders, alone and inside a VAE with 8-bit "
"likelihoods."""

import keras
import numpy as np
import pytest

import vae_tf
from vae_tf import data
from vae_tf.decoders import ConvDecoder
from vae_tf.encoders import ConvEncoder
from vae_tf.likelihoods import (
    Bernoulli,
    DiscretizedGaussian,
    DiscretizedLogisticMixture,
)


def byte_images(shape, seed=0):
    """Random 8-bit images as floats k / 255."""
    return (np.random.default_rng(seed).integers(0, 256, shape) / 255.0).astype(
        "float32"
    )


def conv_vae(image_shape, likelihood, spatial=False, seed=0):
    height, width, channels = image_shape
    latent = {"latent_channels": 4} if spatial else {"latent_dim": 16}
    return vae_tf.VAE(
        ConvEncoder(filters=(8, 16), residual_blocks=1, **latent),
        ConvDecoder(
            (None, None, likelihood.param_channels(channels))
            if spatial
            else (height, width, likelihood.param_channels(channels)),
            filters=(16, 8),
            residual_blocks=1,
            **latent,
        ),
        likelihood,
        seed=seed,
    )


@pytest.mark.parametrize(
    "image_shape, spatial, latent_shape",
    [
        ((28, 28, 1), False, (16,)),  # MNIST: 28 -> 14 -> 7, decoder crops 28 from 28
        ((32, 32, 3), False, (16,)),  # CIFAR-10
        ((20, 36, 3), False, (16,)),  # non-square, not a multiple of 4: cropped
        ((32, 32, 3), True, (8, 8, 4)),  # fully convolutional
        ((16, 48, 1), True, (4, 12, 4)),  # non-square latent map
    ],
)
def test_conv_shapes(image_shape, spatial, latent_shape):
    model = conv_vae(image_shape, DiscretizedLogisticMixture(2), spatial)
    x = byte_images((3, *image_shape))
    z_mean, z_log_var = model.encode(x)
    assert tuple(z_mean.shape) == (3, *latent_shape) == tuple(z_log_var.shape)
    assert model.latent_shape == latent_shape
    reconstructions = np.asarray(model.reconstruct(x))
    assert reconstructions.shape == (3, *image_shape)
    samples = np.asarray(model.sample(2, seed=0))
    assert samples.shape == (2, *image_shape)
    # Beyond shapes: images in [0, 1] that depend on their input and seed, and a
    # KL term that is the closed form of the posterior the encoder gave.
    for images in (reconstructions, samples):
        assert images.min() >= 0.0 and images.max() <= 1.0  # mean images
    assert not np.array_equal(reconstructions[0], reconstructions[1])
    assert np.std(reconstructions[0]) > 0  # not a constant image
    np.testing.assert_array_equal(samples, np.asarray(model.sample(2, seed=0)))
    assert not np.array_equal(samples, np.asarray(model.sample(2, seed=1)))
    reconstruction, kl = model.compute_terms(x)
    assert reconstruction.shape == (3,) and kl.shape == (3,)
    mean, log_var = (
        np.asarray(t, np.float64).reshape(3, -1) for t in (z_mean, z_log_var)
    )
    expected = 0.5 * np.sum(mean**2 + np.exp(log_var) - 1.0 - log_var, axis=1)
    np.testing.assert_allclose(kl, expected, rtol=1e-4)
    assert np.all(np.asarray(reconstruction) > 0)  # -log p of 8-bit values


def test_a_fully_convolutional_model_encodes_other_sizes():
    encoder = ConvEncoder(latent_channels=4, filters=(8, 16))
    decoder = ConvDecoder((None, None, 1), latent_channels=4, filters=(16, 8))
    for size in ((16, 16), (64, 32)):
        z_mean, _ = encoder(byte_images((1, *size, 1)))
        assert tuple(z_mean.shape) == (1, size[0] // 4, size[1] // 4, 4)
        assert tuple(decoder(z_mean).shape) == (1, *size, 1)
    # Fully convolutional: the same weights at every place. A latent map that
    # repeats one latent gives an output that repeats with the same period
    # (4 pixels per latent) away from the border.
    one = np.random.default_rng(0).normal(size=(1, 1, 1, 4)).astype("float32")
    out = np.asarray(decoder(np.tile(one, (1, 8, 8, 1))))[0, ..., 0]  # (32, 32)
    interior = out[8:24, 8:24]
    np.testing.assert_allclose(interior[:, :-4], interior[:, 4:], atol=1e-5)
    np.testing.assert_allclose(interior[:-4], interior[4:], atol=1e-5)
    assert np.std(interior) > 0


@pytest.mark.parametrize(
    "likelihood",
    [DiscretizedLogisticMixture(3), DiscretizedGaussian(), Bernoulli("dynamic")],
)
def test_a_few_fit_steps_lower_the_loss(likelihood):
    keras.utils.set_random_seed(0)
    channels = 1 if isinstance(likelihood, Bernoulli) else 3
    model = conv_vae((16, 16, channels), likelihood)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    # Flat images of a random grey level with a bright square: easy to learn.
    levels = np.random.default_rng(0).integers(0, 200, (64, 1, 1, 1)) / 255.0
    if isinstance(likelihood, Bernoulli):
        levels = np.zeros_like(levels)  # binary images: no binarisation noise
    x = np.broadcast_to(levels, (64, 16, 16, channels)).astype("float32").copy()
    x[:, 4:12, 4:12] = 1.0
    history = model.fit(x, batch_size=8, epochs=5, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.8


def test_every_conv_weight_receives_a_gradient():
    import tensorflow as tf

    model = conv_vae((16, 16, 3), DiscretizedLogisticMixture(2), spatial=True)
    x = tf.constant(byte_images((4, 16, 16, 3)))
    model.build(x.shape)
    # Zero-initialised residual branches get gradients only after a step, so
    # take one first.
    model.compile(optimizer="adam")
    model.train_on_batch(x)
    with tf.GradientTape() as tape:
        reconstruction, kl = model.compute_terms(x, training=True)
        loss = tf.reduce_mean(reconstruction + kl)
    for weight, gradient in zip(
        model.trainable_weights, tape.gradient(loss, model.trainable_weights)
    ):
        assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0, (
            weight.path
        )


@pytest.mark.parametrize("spatial", [False, True])
def test_conv_vae_config_and_keras_round_trips(tmp_path, spatial):
    model = conv_vae((32, 32, 3), DiscretizedLogisticMixture(2), spatial)
    x = byte_images((2, 32, 32, 3))
    model.build((None, 32, 32, 3))
    clone = vae_tf.VAE.from_config(model.get_config())
    clone.build((None, 32, 32, 3))
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.reconstruct(x), model.reconstruct(x))
    model.save(tmp_path / "conv.keras")
    loaded = keras.saving.load_model(tmp_path / "conv.keras")
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    assert isinstance(loaded.likelihood, DiscretizedLogisticMixture)


def test_conv_vae_exports_a_saved_model(tmp_path):
    import tensorflow as tf

    model = conv_vae((32, 32, 3), DiscretizedGaussian(), spatial=True)
    model.build((None, 32, 32, 3))
    served = tf.saved_model.load(vae_tf.export_saved_model(model, tmp_path / "sm"))
    x = byte_images((2, 32, 32, 3))
    np.testing.assert_allclose(
        served.reconstruct(x)["x_mean"], model.reconstruct(x), atol=1e-5
    )
    np.testing.assert_allclose(
        served.sample(tf.constant(2), tf.constant(1.0), tf.constant(4))["x_mean"],
        model.sample(2, seed=4),
        atol=1e-5,
    )


def test_bits_per_dim_of_a_discretized_model_on_cifar_shaped_data():
    model = conv_vae((32, 32, 3), DiscretizedLogisticMixture(2), spatial=True)
    test = data.make_dataset(
        (byte_images((8, 32, 32, 3)) * 255).astype(np.uint8), batch_size=4
    )
    result = vae_tf.evaluate_elbo(model, test)
    assert result["bits_per_dim"] == pytest.approx(
        result["negative_elbo_nats"] / (32 * 32 * 3 * np.log(2)), rel=1e-6
    )
    assert 4 < result["bits_per_dim"] < 20  # an untrained model: a few bits above 8


def test_wrong_channel_count_size_and_dtype_are_clear_errors():
    model = conv_vae((32, 32, 3), DiscretizedLogisticMixture(2), spatial=True)
    model.build((None, 32, 32, 3))
    with pytest.raises(ValueError, match=r"images of shape \(32, 32, 3\)"):
        model.encode(byte_images((2, 32, 32, 1)))
    with pytest.raises(TypeError, match="Divide uint8 pixels by 255"):
        model.encode(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="divisible by 4"):
        conv_vae((30, 32, 3), DiscretizedGaussian(), spatial=True).build(
            (None, 30, 32, 3)
        )
    mismatched = vae_tf.VAE(
        ConvEncoder(latent_dim=4), ConvDecoder((32, 32, 100), latent_dim=4), Bernoulli()
    )
    with pytest.raises(ValueError, match=r"needs \(32, 32, 3\)"):
        mismatched.build((None, 32, 32, 3))
    with pytest.raises(ValueError, match="exactly one of latent_dim"):
        ConvEncoder(latent_dim=4, latent_channels=4)
    with pytest.raises(ValueError, match="needs the image size"):
        ConvDecoder((None, None, 3), latent_dim=4)
    with pytest.raises(ValueError, match=r"param_shape must be \(height, width"):
        ConvDecoder((28, 3), latent_dim=4)
    # 0.1's arguments still build the same decoder, with a warning.
    with pytest.warns(DeprecationWarning, match="param_shape"):
        old = ConvDecoder(3, image_size=(32, 32), latent_dim=4)
    assert old.param_shape == (32, 32, 3)
    assert ConvDecoder.from_config(old.get_config()).param_shape == (32, 32, 3)
    with pytest.raises(ValueError, match="fit no channel count"):
        DiscretizedLogisticMixture(10).log_prob(
            byte_images((1, 4, 4, 3)), np.zeros((1, 4, 4, 7), "float32")
        )
