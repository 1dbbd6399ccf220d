"""Corruptions and the denoising VAE."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images

import vae_tf
from vae_tf import data
from vae_tf.corruption import GaussianNoise, Masking


def test_gaussian_noise_has_the_stddev_and_stays_in_range():
    x = tf.fill((64, 28, 28, 1), 0.5)
    noisy = np.asarray(GaussianNoise(0.1)(x, seed=0))
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert np.std(noisy - 0.5) == pytest.approx(0.1, rel=0.02)
    clipped = np.asarray(GaussianNoise(2.0)(x, seed=0))
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_masking_hides_the_rate_of_pixels_across_all_channels():
    x = tf.fill((32, 16, 16, 3), 0.7)
    masked = np.asarray(Masking(0.3)(x, seed=1))
    hidden = masked == 0.0
    assert np.mean(hidden) == pytest.approx(0.3, abs=0.02)
    # A pixel is masked in all of its channels or in none.
    assert np.all(hidden.all(axis=-1) == hidden.any(axis=-1))
    np.testing.assert_array_equal(masked[~hidden], np.float32(0.7))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GaussianNoise(0.0), "stddev must be a positive number"),
        (lambda: Masking(1.0), "rate must be in"),
        (lambda: Masking(0.5, fill=2.0), "fill must be in"),
        (
            lambda: vae_tf.VAE(
                vae_tf.DenseEncoder(2),
                vae_tf.DenseDecoder((4, 4, 1)),
                corruption="noise",
            ),
            "corruption must be",
        ),
    ],
)
def test_bad_corruptions_give_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_corruption_applies_to_training_steps_only():
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(4, (16,)),
        vae_tf.DenseDecoder((28, 28, 1), (16,)),
        vae_tf.Bernoulli(None),
        corruption=Masking(0.9),
        seed=0,
    )
    model.build((None, 28, 28, 1))
    x = tf.constant(random_images(8))
    _, kl_train = model.compute_terms_per_dim(x, training=True, seed=3)
    _, kl_eval = model.compute_terms_per_dim(x, training=False, seed=3)
    z_mean, z_log_var = model.encode(x)
    expected = vae_tf.bounds.gaussian_kl(z_mean, z_log_var)
    np.testing.assert_allclose(kl_eval, expected, rtol=1e-5)  # the clean image
    assert not np.allclose(kl_train, expected, rtol=1e-3)  # the masked image
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)
    )
    assert repr(restored.corruption) == "Masking(rate=0.9, fill=0.0)"


def test_denoising_vae_restores_masked_digits_better_than_a_plain_vae(mnist_subset):
    train, test = mnist_subset
    corruption = Masking(0.5)

    def trained(corruption):
        keras.utils.set_random_seed(0)
        model = vae_tf.VAE(
            vae_tf.DenseEncoder(16, (256,)),
            vae_tf.DenseDecoder((28, 28, 1), (256,)),
            vae_tf.Bernoulli("dynamic"),
            corruption=corruption,
            seed=0,
        )
        model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=True)
        model.fit(
            data.make_dataset(train, batch_size=100, shuffle=True, seed=0),
            epochs=3,
            verbose=0,
        )
        return model

    plain = vae_tf.evaluation.denoising_psnr(trained(None), test[:500], corruption)
    denoiser = vae_tf.evaluation.denoising_psnr(
        trained(corruption), test[:500], corruption
    )
    assert plain["psnr_corrupted_db"] == pytest.approx(denoiser["psnr_corrupted_db"])
    assert denoiser["psnr_reconstructed_db"] > denoiser["psnr_corrupted_db"] + 1.0
    assert denoiser["psnr_reconstructed_db"] > plain["psnr_reconstructed_db"] + 0.5


def test_psnr_matches_its_definition():
    a = np.zeros((2, 4, 4, 1), np.float32)
    b = np.full((2, 4, 4, 1), 0.1, np.float32)
    assert vae_tf.evaluation.psnr(a, b) == pytest.approx(20.0, rel=1e-5)
    assert vae_tf.evaluation.psnr(a, a) == 100.0
