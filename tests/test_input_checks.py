"""Every check a public method makes eagerly is made on every other path too.

Each bad input is fed through each path that can take it: the Python
methods, `fit` and `evaluate` (compiled with XLA, which drops assertions, on
arrays and on a `tf.data` pipeline), `vae_tf.evaluate`, the exported
SavedModel's signatures (served without vae_tf) and the TFLite runner. Each
must fail with the message that names the problem; none may train, score or
return an image.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import tflite

ERRORS = (ValueError, TypeError, tf.errors.InvalidArgumentError)
IMAGES = np.random.default_rng(0).uniform(size=(6, 28, 28, 1)).astype("float32")
LABELS = np.array([0, 1, 2, 3, 4, 9])

# (bad labels, the message): each through every path that takes labels. The
# bad value is in the first batch: streamed data (tf.data, generators) are
# checked batch by batch, so training stops at the first bad batch.
BAD_LABELS = {
    "ten": (np.array([10, 1, 2, 3, 4, 5]), r"labels must be in \[0, 10\)"),
    "negative": (np.array([-1, 1, 2, 3, 4, 5]), r"labels must be in \[0, 10\)"),
    "one_hot": (np.eye(10, dtype="int32")[LABELS], r"shape \(batch,\).*one-hot"),
    "fractional": (np.array([2.5, 1, 2, 3, 4, 5]), r"class ids"),
}
# (bad images, the message): each through every path that takes images.
BAD_IMAGES = {
    "unscaled": (IMAGES * 255.0, r"x must hold pixel values in \[0, 1\]"),
    "nan": (np.where(IMAGES > 0.5, np.nan, IMAGES), r"NaN or infinite"),
    "uint8": ((IMAGES * 255).astype("uint8"), r"Divide uint8 pixels by 255"),
}


@pytest.fixture(scope="module")
def cvae():
    keras.utils.set_random_seed(0)
    model = vae_tf.ConditionalVAE(
        vae_tf.DenseEncoder(4, (16,)),
        vae_tf.DenseDecoder((28, 28, 1), (16,)),
        num_classes=10,
        seed=0,
    )
    model.compile(optimizer="adam", jit_compile=True)
    model.fit(IMAGES, LABELS, batch_size=3, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def vae():
    keras.utils.set_random_seed(0)
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(4, (16,)), vae_tf.DenseDecoder((28, 28, 1), (16,)), seed=0
    )
    model.compile(optimizer="adam", jit_compile=True)
    model.fit(IMAGES, batch_size=3, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def served(cvae, vae, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    vae_tf.export_saved_model(cvae, root / "cvae")
    vae_tf.export_saved_model(vae, root / "vae")
    return tf.saved_model.load(str(root / "cvae")), tf.saved_model.load(
        str(root / "vae")
    )


def weights(model):
    return [w.numpy().copy() for w in model.weights]


def unchanged(model, before):
    return all(np.array_equal(a, b.numpy()) for a, b in zip(before, model.weights))


def dataset(images, labels=None):
    parts = images if labels is None else (images, labels)
    return tf.data.Dataset.from_tensor_slices(parts).batch(3)


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_bad_labels_are_refused_by_every_path(cvae, served, case):
    labels, message = BAD_LABELS[case]
    before = weights(cvae)
    paths = {
        "sample": lambda: cvae.sample(6, labels=labels, seed=0),
        "encode": lambda: cvae.encode(IMAGES, labels=labels),
        "fit arrays": lambda: cvae.fit(IMAGES, labels, batch_size=3, verbose=0),
        "fit tf.data": lambda: cvae.fit(dataset(IMAGES, labels), verbose=0),
        "fit validation_data": lambda: cvae.fit(
            IMAGES, LABELS, validation_data=(IMAGES, labels), verbose=0
        ),
        "evaluate arrays": lambda: cvae.evaluate(IMAGES, labels, verbose=0),
        "evaluate tf.data": lambda: cvae.evaluate(dataset(IMAGES, labels), verbose=0),
        "predict": lambda: cvae.predict((IMAGES, labels), verbose=0),
        "vae_tf.evaluate": lambda: vae_tf.evaluate(
            cvae, dataset(IMAGES, labels), iwae_k=None
        ),
    }
    if case != "one_hot":  # the signatures take (batch,) int32 ids only
        ids = tf.constant(labels.astype("int32"))
        paths["served sample"] = lambda: served[0].sample(
            ids, tf.constant(1.0), tf.constant(0)
        )
        paths["served encode"] = lambda: served[0].encode(tf.constant(IMAGES), ids)
    for name, call in paths.items():
        if case == "fractional" and name.startswith("served"):
            continue  # int32 ids cannot be fractional
        with pytest.raises(ERRORS, match=message):
            call()
        assert unchanged(cvae, before), f"{name} changed the weights"


def test_labels_must_match_the_images_in_number_on_every_path(cvae, served):
    with pytest.raises(ERRORS, match="one label per image"):
        cvae.encode(IMAGES, labels=LABELS[:5])
    with pytest.raises(ERRORS, match="one class id per image"):
        cvae.fit(dataset(IMAGES, LABELS).map(lambda x, y: (x, y[:1])), verbose=0)
    with pytest.raises(ERRORS, match="one class id per image"):
        served[0].reconstruct(tf.constant(IMAGES), tf.constant(LABELS[:5], tf.int32))
    short = tf.data.Dataset.from_tensors((IMAGES, LABELS[:5]))
    with pytest.raises(ERRORS, match="one class id per image"):
        vae_tf.evaluate(cvae, short, iwae_k=4)


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_refused_by_every_path(vae, served, tmp_path_factory, case):
    images, message = BAD_IMAGES[case]
    before = weights(vae)
    paths = {
        "encode": lambda: vae.encode(images),
        "reconstruct": lambda: vae.reconstruct(images),
        "fit arrays": lambda: vae.fit(images, batch_size=3, verbose=0),
        "fit tf.data": lambda: vae.fit(dataset(images), verbose=0),
        "evaluate tf.data": lambda: vae.evaluate(dataset(images), verbose=0),
    }
    if case != "uint8":  # the signatures take float32 only
        paths["served encode"] = lambda: served[1].encode(tf.constant(images))
        paths["served reconstruct"] = lambda: served[1].reconstruct(tf.constant(images))
    for name, call in paths.items():
        with pytest.raises(ERRORS, match=message):
            call()
        assert unchanged(vae, before), f"{name} changed the weights"


def test_the_tflite_runner_checks_images_as_encode_does(vae, tmp_path):
    paths = tflite.export_tflite(vae, tmp_path / "lite")
    encode, _ = tflite.lite_pair(paths)
    z_mean, _ = encode(IMAGES)
    assert np.all(np.isfinite(z_mean)) and z_mean.shape == (6, 4)
    for images, message in BAD_IMAGES.values():
        with pytest.raises(ERRORS, match=message):
            encode(images)


def test_served_sample_refuses_a_temperature_or_count_sample_refuses(vae, served):
    with pytest.raises(ERRORS, match="temperature must be a positive number"):
        vae.sample(2, temperature=0.0)
    with pytest.raises(ERRORS, match="temperature must be a positive number"):
        served[1].sample(tf.constant(2), tf.constant(0.0), tf.constant(0))
    with pytest.raises(ERRORS, match="num_samples must be a positive"):
        vae.sample(0)
    with pytest.raises(ERRORS, match="num_samples must be a positive"):
        served[1].sample(tf.constant(0), tf.constant(1.0), tf.constant(0))
    good = served[1].sample(tf.constant(2), tf.constant(1.0), tf.constant(0))
    assert good["x_mean"].shape == (2, 28, 28, 1)


def test_good_labels_train_and_serve_and_agree_with_python(cvae, served):
    history = cvae.fit(dataset(IMAGES, LABELS), verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    served_images = served[0].sample(
        tf.constant([7, 7], tf.int32), tf.constant(1.0), tf.constant(3)
    )["x_mean"]
    assert served_images.shape == (2, 28, 28, 1)
    assert np.all(np.isfinite(served_images))
