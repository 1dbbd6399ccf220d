"""The class-conditional VAE."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf


def halves(n, seed=0):
    """Toy classes: class 0 lights the left half of the image, class 1 the right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.random((n, 16, 16, 1)).astype("float32") * 0.2
    images[labels == 0, :, :8] += 0.8
    images[labels == 1, :, 8:] += 0.8
    return images, labels


def make_cvae(latent_dim=2, seed=0):
    return vae_tf.ConditionalVAE(
        vae_tf.DenseEncoder(latent_dim, (32,)),
        vae_tf.DenseDecoder((16, 16, 1), (32,)),
        num_classes=2,
        likelihood=vae_tf.Bernoulli(None),
        seed=seed,
    )


@pytest.fixture(scope="module")
def trained_cvae():
    keras.utils.set_random_seed(0)
    images, labels = halves(512)
    model = make_cvae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(64)
    model.fit(dataset, epochs=30, verbose=0)
    return model


def test_conditional_samples_follow_the_labels(trained_cvae):
    labels = np.array([0, 1] * 20)
    images = np.asarray(trained_cvae.sample(40, labels=labels, seed=0))
    left, right = (
        images[:, :, :8].mean(axis=(1, 2, 3)),
        images[:, :, 8:].mean(axis=(1, 2, 3)),
    )
    brighter_side = np.where(left > right, 0, 1)
    assert np.mean(brighter_side == labels) >= 0.9
    assert np.mean((left - right)[labels == 0]) > 0.3
    assert np.mean((right - left)[labels == 1]) > 0.3
    # A single label applies to every sample.
    right_lit = np.asarray(trained_cvae.sample(5, labels=1, seed=0))
    assert np.mean(right_lit[:, :, 8:] - right_lit[:, :, :8]) > 0.3


def test_conditional_model_saves_loads_and_exports(tmp_path, trained_cvae):
    trained_cvae.save(tmp_path / "cvae.keras")
    loaded = keras.saving.load_model(tmp_path / "cvae.keras")
    assert isinstance(loaded, vae_tf.ConditionalVAE) and loaded.num_classes == 2
    z = np.random.default_rng(0).normal(size=(4, 2)).astype("float32")
    labels = np.array([0, 1, 1, 0])
    np.testing.assert_allclose(
        loaded.decode(z, labels=labels), trained_cvae.decode(z, labels=labels)
    )
    vae_tf.export_saved_model(trained_cvae, tmp_path / "saved_model")
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    sampled = served.sample(
        tf.constant(labels, tf.int32), tf.constant(1.0), tf.constant(3)
    )["x_mean"]
    np.testing.assert_allclose(
        sampled, trained_cvae.sample(4, labels=labels, seed=3), atol=1e-6
    )
    images, image_labels = halves(4, seed=5)
    served_reconstruction = served.reconstruct(
        tf.constant(images), tf.constant(image_labels, tf.int32)
    )["x_mean"]
    np.testing.assert_allclose(
        served_reconstruction,
        trained_cvae.reconstruct(images, labels=image_labels),
        atol=1e-6,
    )


def test_evaluation_uses_the_labels(trained_cvae):
    images, labels = halves(64, seed=1)
    right = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    wrong = tf.data.Dataset.from_tensor_slices((images, 1 - labels)).batch(32)
    with_right = vae_tf.evaluate(trained_cvae, right, iwae_k=20)
    with_wrong = vae_tf.evaluate(trained_cvae, wrong, iwae_k=20)
    assert with_right["test_negative_elbo_nats"] < with_wrong["test_negative_elbo_nats"]
    assert (
        with_right["test_nll_iwae_nats"] <= with_right["test_negative_elbo_nats"] + 1e-3
    )


@pytest.mark.parametrize(
    "labels, message",
    [
        (None, "needs labels"),
        ([0, 2, 1], r"must be in \[0, 2\)"),
        ([0, -1, 1], r"must be in \[0, 2\)"),
        ([0, 1], "one label per image"),
        ([0.5, 1.0, 0.0], "int class ids"),
    ],
)
def test_bad_labels_give_clear_errors(trained_cvae, labels, message):
    with pytest.raises(ValueError, match=message):
        trained_cvae.sample(3, labels=labels)


def test_training_without_labels_is_a_clear_error():
    model = make_cvae()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="needs the class labels"):
        model.fit(halves(8)[0], epochs=1, verbose=0)


def test_unconditional_model_rejects_labels(tiny_vae):
    with pytest.raises(ValueError, match="unconditional"):
        tiny_vae.sample(2, labels=[1, 2])
