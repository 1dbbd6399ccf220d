"""TensorBoard logging, read back from the event files: the loss terms per
step, reconstructions of fixed images, samples of fixed latents and the KL
per latent dimension."""

import io
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_vae
from PIL import Image

from vae_tf import runs
from vae_tf.callbacks import ImageLogger


def read_events(folder) -> dict:
    """`{tag: [(step, value), ...]}` of every summary in `folder`: scalars as
    floats, images as decoded uint8 arrays, histograms as their
    `(buckets, 3)` (left edge, right edge, count) arrays."""
    found = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "images":
                    item = np.asarray(Image.open(io.BytesIO(tensor[2])))
                elif plugin == "histograms":
                    item = tensor
                else:
                    item = float(tensor)
                found.setdefault(value.tag, []).append((event.step, item))
    return found


def test_image_logger_writes_steps_images_and_the_kl_per_dimension(
    mnist_subset, tmp_path
):
    train, test = mnist_subset
    keras.utils.set_random_seed(0)
    model = make_tiny_vae(latent_dim=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), steps_per_execution=2)
    logger = ImageLogger(tmp_path, test[:6], num_samples=4)
    model.fit(train[:64], batch_size=16, epochs=2, verbose=0, callbacks=[logger])
    events = read_events(tmp_path / "vae_tf")

    # Per step: 4 steps an epoch, 2 per compiled call, at the real step count.
    assert [step for step, _ in events["step/loss"]] == [2, 4, 6, 8]
    assert {"step/reconstruction_loss", "step/kl_loss"} <= set(events)
    assert all(np.isfinite(value) for _, value in events["step/kl_loss"])

    # Per epoch: originals (top) over reconstructions (bottom), 1-pixel gaps.
    (first_step, first), (second_step, second) = events["reconstructions"]
    assert (first_step, second_step) == (0, 1)
    assert first.shape == (2 * 28 + 1, 6 * 28 + 5)
    originals = np.round(test[:6, ..., 0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(first[:28, :28], originals[0])
    np.testing.assert_array_equal(first[:28, 29:57], originals[1])
    assert np.abs(first[29:].astype(int) - second[29:]).mean() > 0.5  # it learnt
    assert [step for step, _ in events["samples"]] == [0, 1]
    assert events["samples"][0][1].shape == (57, 57)  # 4 samples, 2x2

    # The KL histogram counts the 4 latent dimensions, at their mean KL.
    _, histogram = events["kl_per_dimension"][-1]
    assert histogram[:, 2].sum() == 4
    kl = model.kl_per_dimension(test[:6])
    assert histogram[:, 0].min() <= kl.min() and kl.max() <= histogram[:, 1].max()


def test_samples_come_from_the_same_latents_every_time(mnist_subset, tmp_path):
    _, test = mnist_subset
    model = make_tiny_vae()
    model.build((None, 28, 28, 1))
    logger = ImageLogger(tmp_path, test[:2], num_samples=4, log_steps=False)
    logger.set_model(model)
    logger.log(0)
    logger.log(1)
    logger.on_train_end()
    (_, first), (_, second) = read_events(tmp_path / "vae_tf")["samples"]
    np.testing.assert_array_equal(first, second)


def test_bad_image_logger_arguments_are_clear_errors(tmp_path):
    images = np.zeros((4, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="1 to 64 images"):
        ImageLogger(tmp_path, images[0])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        ImageLogger(tmp_path, images + 2.0)
    with pytest.raises(ValueError, match="one class id per image"):
        ImageLogger(tmp_path, images, labels=[1, 2])
    with pytest.raises(ValueError, match="every must be"):
        ImageLogger(tmp_path, images, every=0)


def test_tensorboard_with_a_multi_worker_strategy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="default or mirrored"):
        runs.train("mnist-dense", tmp_path, strategy="multi-worker", tensorboard=True)
