"""Every preset builds, scores images of its dataset and survives `.keras`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import presets

IMAGE_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


def preset_images(preset):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, *IMAGE_SHAPES[preset.dataset])) / 255.0
    x = x.astype("float32")
    if preset.conditional:
        return tf.data.Dataset.from_tensor_slices((x, np.array([3, 7]))).batch(2)
    return tf.data.Dataset.from_tensor_slices(x).batch(2)


VAE_PRESETS = sorted(n for n, p in presets.PRESETS.items() if not p.lossy)
LOSSY_PRESETS = sorted(n for n, p in presets.PRESETS.items() if p.lossy)


@pytest.mark.parametrize("name", LOSSY_PRESETS)
def test_lossy_preset_scores_rate_and_distortion_and_round_trips(name, tmp_path):
    preset = presets.get(name)
    model = preset.build_model(seed=0, lmbda=0.02)
    dataset = preset_images(preset)
    figures = vae_tf.evaluation.evaluate_rate_distortion(model, dataset)
    assert figures["test_bpp"] > 0 and np.isfinite(figures["test_psnr_db"])
    model.save(tmp_path / "preset.keras")
    loaded = keras.saving.load_model(tmp_path / "preset.keras")
    assert type(loaded) is type(model) and loaded.lmbda == 0.02
    assert vae_tf.evaluation.evaluate_rate_distortion(loaded, dataset) == figures


@pytest.mark.parametrize("name", VAE_PRESETS)
def test_preset_scores_its_dataset_and_round_trips_through_keras(name, tmp_path):
    preset = presets.get(name)
    keras.utils.set_random_seed(0)
    model = preset.build_model(seed=0)
    dataset = preset_images(preset)
    figures = model.evaluate_dataset(dataset, seed=0)
    # An untrained model is no better than chance, but its bound is finite
    # and positive, and a latent's cost (a KL, or -log p(codes)) is >= 0.
    assert (
        np.isfinite(figures["test_negative_elbo_nats"])
        and figures["test_bits_per_dim"] > 0
    )
    cost = figures.get("test_kl_nats", figures.get("test_prior_nats"))
    assert cost >= 0

    model.save(tmp_path / "preset.keras")
    loaded = keras.saving.load_model(tmp_path / "preset.keras")
    assert type(loaded) is type(model)
    again = loaded.evaluate_dataset(dataset, seed=0)
    np.testing.assert_allclose(
        again["test_negative_elbo_nats"], figures["test_negative_elbo_nats"], rtol=1e-5
    )


@pytest.mark.parametrize(
    "latent", [{"latent_dim": None}, {"latent_dim": 8, "latent_channels": 4}]
)
def test_pixelcnn_vae_needs_exactly_one_latent_form(latent):
    with pytest.raises(ValueError, match="exactly one of latent_dim"):
        presets.pixelcnn_vae(
            (32, 32, 3), vae_tf.DiscretizedLogisticMixture(2), **latent
        )
