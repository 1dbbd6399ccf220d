"""TFLite export: every quantisation converts, runs in LiteRT and agrees with Keras."""

import keras
import numpy as np
import pytest

import vae_tf
from vae_tf.tflite import QUANTIZATIONS, TFLiteNetwork, export_tflite


@pytest.fixture(scope="module")
def model_and_images(mnist_subset):
    train, test = mnist_subset
    likelihood = vae_tf.likelihoods.DiscretizedGaussian()
    model = vae_tf.VAE(
        vae_tf.ConvEncoder(latent_dim=8, filters=(8, 16), residual_blocks=0),
        vae_tf.ConvDecoder(
            likelihood.param_channels(1),
            image_size=(28, 28),
            latent_dim=8,
            filters=(16, 8),
            residual_blocks=0,
        ),
        likelihood,
        seed=0,
    )
    # Trained a little, so that activations have realistic ranges to quantise.
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train, batch_size=64, epochs=2, verbose=0)
    return model, train[:200], test[:64]


# Largest error allowed, as a fraction of the Keras output's range: float32
# is the same graph; float16 rounds weights to 11 bits; int8 to 8 bits.
TOLERANCE = {"none": 1e-5, "float16": 2e-3, "dynamic": 0.05, "int8": 0.08}


@pytest.mark.parametrize("quantize", QUANTIZATIONS)
def test_converted_networks_match_keras(model_and_images, quantize, tmp_path):
    model, calibration, x = model_and_images
    paths = export_tflite(model, tmp_path, quantize, images=calibration)
    z_mean, z_log_var = (np.asarray(t) for t in model.encoder(x))
    params = np.asarray(model.decoder(z_mean))
    encoded = TFLiteNetwork(paths["encoder"])(x=x)
    decoded = TFLiteNetwork(paths["decoder"])(z=z_mean)
    for ours, theirs in [
        (encoded["z_mean"], z_mean),
        (encoded["z_log_var"], z_log_var),
        (decoded["x_params"], params),
    ]:
        assert ours.shape == theirs.shape
        assert np.isfinite(ours).all()
        span = np.ptp(theirs)
        assert np.abs(ours - theirs).max() <= TOLERANCE[quantize] * span
    if quantize != "none":
        plain = export_tflite(model, tmp_path / "plain", "none")
        assert paths["encoder"].stat().st_size < plain["encoder"].stat().st_size


def test_bad_requests_are_clear_errors(model_and_images, tmp_path):
    model, _, _ = model_and_images
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_tflite(model, tmp_path, "int4")
    with pytest.raises(ValueError, match="representative images"):
        export_tflite(model, tmp_path, "int8")
