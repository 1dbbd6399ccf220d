"""Posterior collapse tools: the beta schedule, free bits and active units."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_vae, random_images

import vae_tf
from vae_tf import data
from vae_tf.callbacks import BetaSchedule


class BetaRecorder(keras.callbacks.Callback):
    """Record the beta that each epoch's training steps actually use."""

    def __init__(self):
        super().__init__()
        self.betas = []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.betas.append(self.model.beta)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (BetaSchedule("linear", warmup_epochs=4), [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]),
        (
            BetaSchedule("cyclical", cycle_epochs=3, ramp_fraction=0.5, max_beta=2.0),
            [0.0, 4 / 3, 2.0, 0.0, 4 / 3, 2.0],
        ),
        (BetaSchedule(lambda epoch: 0.1 * epoch), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    ],
)
def test_beta_schedule_sets_beta_at_each_epoch(schedule, expected):
    model = make_tiny_vae()
    model.compile(optimizer="adam", steps_per_execution=1)
    recorder = BetaRecorder()
    history = model.fit(
        random_images(8),
        batch_size=4,
        epochs=6,
        verbose=0,
        callbacks=[schedule, recorder],
    )
    np.testing.assert_allclose(recorder.betas, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history.history["beta"], expected, rtol=1e-6, atol=1e-7)


def test_beta_schedule_changes_the_loss_the_step_minimises():
    """beta is a variable read by the compiled step, not a traced constant."""
    model = make_tiny_vae()
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    history = model.fit(
        data.binarize(random_images(8), seed=0),
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[BetaSchedule("linear", warmup_epochs=2)],
    )
    logs = history.history
    for epoch, beta in enumerate([0.0, 0.5, 1.0]):
        assert logs["loss"][epoch] == pytest.approx(
            logs["reconstruction_loss"][epoch] + beta * logs["kl_loss"][epoch],
            rel=1e-5,
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": "exponential"}, "schedule must be"),
        ({"warmup_epochs": 0}, "warmup_epochs must be a positive integer"),
        ({"max_beta": -1.0}, "max_beta must be >= 0"),
        ({"ramp_fraction": 0.0}, "ramp_fraction must be in"),
    ],
)
def test_bad_beta_schedules_give_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BetaSchedule(**kwargs)


def test_free_bits_floor_each_dimension_in_the_loss(tiny_vae):
    tiny_vae.free_bits = 0.5
    reconstruction = tf.constant([10.0, 20.0])
    kl = tf.Variable([[0.1, 0.0, 2.0, 0.4], [0.3, 0.0, 1.0, 0.8]])  # dims' means:
    # 0.2, 0.0, 1.5, 0.6 -> floored to 0.5, 0.5, 1.5, 0.6
    with tf.GradientTape() as tape:
        loss = tiny_vae.training_loss(reconstruction, kl)
    assert float(loss) == pytest.approx(15.0 + 0.5 + 0.5 + 1.5 + 0.6, rel=1e-6)
    gradient = tape.gradient(loss, kl).numpy()
    # Below the floor a dimension's KL gets no gradient: nothing to gain there.
    np.testing.assert_allclose(gradient[:, :2], 0.0)
    np.testing.assert_allclose(gradient[:, 2:], 0.5)  # d mean / d kl = 1 / batch


def test_free_bits_loss_never_charges_less_than_the_floor():
    keras.utils.set_random_seed(0)
    model = make_tiny_vae(latent_dim=6)
    model.free_bits = 0.25
    model.compile(optimizer="adam")
    x = data.binarize(random_images(32), seed=0)
    # A freshly built encoder's KL is far below 6 * 0.25 nats.
    logs = model.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    assert logs["kl_loss"] < 6 * 0.25
    assert logs["loss"] - logs["reconstruction_loss"] >= 6 * 0.25 - 1e-4
    assert logs["elbo"] == pytest.approx(
        -(logs["reconstruction_loss"] + logs["kl_loss"]), rel=1e-5
    )


def test_free_bits_round_trips_through_the_config():
    model = make_tiny_vae()
    model.free_bits = 0.125
    assert vae_tf.VAE.from_config(model.get_config()).free_bits == 0.125
    with pytest.raises(ValueError, match="free_bits must be"):
        vae_tf.VAE(
            vae_tf.DenseEncoder(2), vae_tf.DenseDecoder((28, 28, 1)), free_bits=-1.0
        )


def test_active_units_count_only_the_dimensions_that_vary(tiny_vae):
    # Make latent dimensions 2 and 3 ignore the image: zero kernel, fixed bias.
    posterior = tiny_vae.encoder.posterior
    kernel, bias = (np.array(w) for w in posterior.get_weights())
    kernel[:, [2, 3]] = 0.0  # z_mean of dims 2, 3
    bias[[2, 3]] = [0.5, -1.0]
    kernel[:, 4 + 2 : 4 + 4] = 0.0  # their log-variances
    bias[4 + 2 : 4 + 4] = [-2.0, 0.0]
    kernel[:, :2] *= 50.0  # dims 0, 1 vary strongly with the image
    posterior.set_weights([kernel, bias])
    dataset = tf.data.Dataset.from_tensor_slices(random_images(200, seed=1)).batch(64)

    result = vae_tf.latent_diagnostics(tiny_vae, dataset)

    assert result["num_latent_dims"] == 4
    assert result["active_units"] == 2
    variance = np.array(result["posterior_mean_variance"])
    assert np.all(variance[:2] > 0.01) and np.all(variance[2:] < 1e-10)
    kl = np.array(result["kl_per_dim_nats"])
    # A constant posterior N(m, e^l) costs 0.5 (m^2 + e^l - 1 - l) for every
    # image; l is the encoder's softly bounded log-variance.
    mean = np.array([0.5, -1.0])
    log_var = 10.0 * np.tanh(np.array([-2.0, 0.0]) / 10.0)
    np.testing.assert_allclose(
        kl[2:], 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var), rtol=1e-5
    )


def test_evaluate_reports_active_units_and_kl_per_dimension(trained_vae, mnist_subset):
    _, test = mnist_subset
    x = data.binarize((test[:200] * 255).astype("uint8"), seed=0)  # (200, 28, 28, 1)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(50)
    posterior = trained_vae.encoder.posterior
    trained = posterior.get_weights()
    kernel, bias = (np.array(w) for w in trained)
    kernel[:, [1, 5]] = 0.0  # switch off the means of dimensions 1 and 5
    posterior.set_weights([kernel, bias])
    try:
        results = vae_tf.evaluate(trained_vae, dataset, iwae_k=None)
        # The same figures from the encoder's outputs, in numpy: a unit is
        # active if its posterior mean varies over the data by more than 0.01
        # (Burda et al. 2016); its KL is the closed form averaged over images.
        z_mean, z_log_var = (np.asarray(t, np.float64) for t in trained_vae.encoder(x))
    finally:
        posterior.set_weights(trained)
    variance = z_mean.var(axis=0)
    kl = 0.5 * (z_mean**2 + np.exp(z_log_var) - 1.0 - z_log_var).mean(axis=0)
    assert results["test_num_latent_dims"] == 8
    assert results["test_active_units"] == int(np.sum(variance > 0.01))
    assert variance[[1, 5]].max() < 1e-10 and results["test_active_units"] <= 6
    np.testing.assert_allclose(results["test_kl_per_dim_nats"], kl, rtol=1e-4)
    assert sum(results["test_kl_per_dim_nats"]) == pytest.approx(
        results["test_kl_nats"], rel=1e-4
    )
