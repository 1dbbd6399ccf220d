"""TFLite export: every quantisation converts, runs in LiteRT and agrees with Keras."""

import keras
import numpy as np
import pytest

import vae_tf
from vae_tf.tflite import (
    QUANTIZATIONS,
    TFLiteNetwork,
    _per_tensor_dense,
    export_tflite,
)


@pytest.fixture(scope="module")
def model_and_images(mnist_subset):
    train, test = mnist_subset
    # Seeded before the weights are made, so the model does not depend on
    # which tests ran before.
    keras.utils.set_random_seed(0)
    likelihood = vae_tf.likelihoods.DiscretizedGaussian()
    model = vae_tf.VAE(
        vae_tf.ConvEncoder(latent_dim=8, filters=(8, 16), residual_blocks=0),
        vae_tf.ConvDecoder(
            (28, 28, likelihood.param_channels(1)),
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


@pytest.fixture(scope="module")
def plain_export(model_and_images, tmp_path_factory):
    """The float32 networks, converted once: what every quantisation is
    measured against."""
    model, _, _ = model_and_images
    return export_tflite(model, tmp_path_factory.mktemp("plain"), "none")


# Largest error allowed, as a fraction of the Keras output's range: float32
# is the same graph; float16 rounds weights to 11 bits; int8 to 8 bits;
# int16x8 rounds weights to 8 bits but activations to 16. Full int8 puts
# z_mean and z_log_var (one dense output, split after) on one int8 scale, and
# the narrower z_log_var loses most: measured 9% of its range.
TOLERANCE = {
    "none": 1e-5,
    "float16": 2e-3,
    "dynamic": 0.05,
    "int8": 0.15,
    "int16x8": 0.05,
}


@pytest.mark.parametrize("quantize", QUANTIZATIONS)
def test_converted_networks_match_keras(
    model_and_images, plain_export, quantize, tmp_path
):
    model, calibration, x = model_and_images
    if quantize == "none":
        paths = plain_export
    else:
        paths = export_tflite(model, tmp_path, quantize, images=calibration)
    if quantize in ("int8", "int16x8"):
        # A full-integer network clips to the ranges seen in calibration: a
        # test image whose z_log_var falls below the calibrated minimum comes
        # out at that minimum (measured: -4.58 -> -4.42, 7% of the range).
        # Compare where the network was calibrated.
        x = calibration[:64]
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
        plain = plain_export["encoder"].stat().st_size
        assert paths["encoder"].stat().st_size < plain


def test_wide_shallow_dense_layers_are_quantised_per_tensor():
    # A conv decoder's first layer, 8 -> 7x7x16 units: per-channel scales
    # would cost 12 bytes per unit for 8 bytes of weights.
    conv = vae_tf.ConvDecoder((28, 28, 2), latent_dim=8, filters=(16, 8))
    conv(np.zeros((1, 8), "float32"))
    dense = vae_tf.DenseDecoder((28, 28, 1), hidden_units=(512, 1024))
    dense(np.zeros((1, 64), "float32"))
    assert _per_tensor_dense(conv)
    assert not _per_tensor_dense(dense)  # 12 bytes per unit for 64 to 1024
    encoder = vae_tf.ConvEncoder(latent_dim=8, filters=(8, 16))
    encoder(np.zeros((1, 28, 28, 1), "float32"))
    assert not _per_tensor_dense(encoder)  # 784 inputs per unit


def test_bad_requests_are_clear_errors(model_and_images, tmp_path):
    model, _, _ = model_and_images
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_tflite(model, tmp_path, "int4")
    with pytest.raises(ValueError, match="representative images"):
        export_tflite(model, tmp_path, "int8")
