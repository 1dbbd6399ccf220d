import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_vae, random_images

import vae_tf
from vae_tf import data


def test_fit_lowers_the_loss(mnist_subset):
    keras.utils.set_random_seed(0)
    model = make_tiny_vae()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    train = data.make_dataset(
        mnist_subset[0][:2000], batch_size=100, shuffle=True, seed=0
    )
    history = model.fit(train, epochs=3, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 20  # nats per image
    assert set(history.history) >= {"loss", "reconstruction_loss", "kl_loss", "elbo"}


def test_loss_is_reconstruction_plus_beta_times_kl(tiny_vae):
    tiny_vae.compile(optimizer="adam")
    tiny_vae.beta = 0.25
    x = data.binarize(random_images(16), seed=0)
    logs = tiny_vae.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(
        logs["reconstruction_loss"] + 0.25 * logs["kl_loss"], rel=1e-5
    )
    assert logs["elbo"] == pytest.approx(
        -(logs["reconstruction_loss"] + logs["kl_loss"]), rel=1e-5
    )


def test_every_trainable_weight_receives_a_gradient(tiny_vae):
    x = tf.constant(random_images(8))
    with tf.GradientTape() as tape:
        reconstruction, kl = tiny_vae.compute_terms(x, training=True)
        loss = tf.reduce_mean(reconstruction + kl)
    gradients = tape.gradient(loss, tiny_vae.trainable_weights)
    assert len(tiny_vae.trainable_weights) == 8  # kernel and bias of 4 dense layers
    for weight, gradient in zip(tiny_vae.trainable_weights, gradients):
        assert gradient is not None, weight.path
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, weight.path


def test_same_seed_gives_the_same_samples(tiny_vae):
    first = np.asarray(tiny_vae.sample(6, seed=3))
    second = np.asarray(tiny_vae.sample(6, seed=3))
    other = np.asarray(tiny_vae.sample(6, seed=4))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_same_model_seed_gives_the_same_training(mnist_subset):
    def train_once():
        keras.utils.set_random_seed(0)
        model = make_tiny_vae(seed=5)
        model.compile(optimizer="adam")
        model.fit(
            mnist_subset[0][:256], batch_size=64, epochs=1, verbose=0, shuffle=False
        )
        return [w.numpy() for w in model.weights]

    for a, b in zip(train_once(), train_once()):
        np.testing.assert_array_equal(a, b)


def test_temperature_scales_the_prior(tiny_vae):
    # decode is deterministic, so temperature T at seed s decodes T * eps(s).
    eps_images = np.asarray(
        tiny_vae.decode(0.5 * tf.random.stateless_normal((4, 4), [7, 0], alg="philox"))
    )
    np.testing.assert_allclose(
        np.asarray(tiny_vae.sample(4, temperature=0.5, seed=7)), eps_images, atol=1e-6
    )


def test_reconstruct_decodes_the_posterior_mean(tiny_vae):
    x = random_images(4)
    z_mean, _ = tiny_vae.encode(x)
    np.testing.assert_allclose(
        tiny_vae.reconstruct(x), tiny_vae.decode(z_mean), atol=1e-6
    )
    np.testing.assert_allclose(
        tiny_vae.predict(x, verbose=0), tiny_vae.decode(z_mean), atol=1e-6
    )


def test_no_nan_on_extreme_inputs_and_weights(tiny_vae):
    for weight in tiny_vae.encoder.weights:
        weight.assign(weight * 1e4)  # posterior parameters far out of range
    for x in (np.zeros((4, 28, 28, 1), "float32"), np.ones((4, 28, 28, 1), "float32")):
        reconstruction, kl = tiny_vae.compute_terms(tf.constant(x), training=True)
        assert (
            np.isfinite(reconstruction.numpy()).all() and np.isfinite(kl.numpy()).all()
        )
        _, z_log_var = tiny_vae.encode(x)
        assert np.abs(z_log_var.numpy()).max() <= tiny_vae.encoder.log_var_bound


def test_config_round_trip_gives_identical_outputs(tiny_vae):
    clone = vae_tf.VAE.from_config(tiny_vae.get_config())
    clone.build((None, 28, 28, 1))
    clone.set_weights(tiny_vae.get_weights())
    x = random_images(4)
    np.testing.assert_array_equal(clone.reconstruct(x), tiny_vae.reconstruct(x))
    assert clone.get_config() == tiny_vae.get_config()
    assert clone.seed == 0 and clone.likelihood.binarization == "dynamic"


def test_keras_file_round_trip_keeps_weights_and_optimizer_and_training_continues(
    tmp_path, mnist_subset
):
    keras.utils.set_random_seed(0)
    model = make_tiny_vae(seed=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = mnist_subset[0][:512]
    model.fit(x, batch_size=64, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")

    # The trap: a never-built VAE reloads with fresh weights and no error.
    assert loaded.built
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_array_equal(loaded.reconstruct(x[:8]), model.reconstruct(x[:8]))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 8
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    # Training continues exactly where it stopped (same state, same seed stream).
    model.fit(x, batch_size=64, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, batch_size=64, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path
        )


@pytest.mark.parametrize(
    "family", ["vae", "conditional", "hierarchical", "lossy", "vqvae"]
)
def test_the_01_module_paths_warn_and_are_the_moved_modules(family):
    import importlib
    import sys

    sys.modules.pop(f"vae_tf.{family}", None)
    with pytest.warns(DeprecationWarning, match=f"vae_tf.models.{family}"):
        old = importlib.import_module(f"vae_tf.{family}")
    assert old is importlib.import_module(f"vae_tf.models.{family}")


def test_a_01_keras_file_naming_the_old_module_loads(tmp_path, tiny_vae):
    import json
    import zipfile

    tiny_vae.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    assert config["module"] == "vae_tf.models.vae"
    # 0.1 wrote the module path before the families moved into vae_tf.models.
    config["module"] = "vae_tf.vae"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    assert isinstance(loaded, vae_tf.VAE)
    x = random_images(4)
    np.testing.assert_array_equal(loaded.reconstruct(x), tiny_vae.reconstruct(x))


def test_beta_is_saved_and_scheduled_without_retracing(tmp_path, tiny_vae):
    tiny_vae.beta = 0.3
    tiny_vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert loaded.beta == pytest.approx(0.3)

    # beta is a variable the compiled step reads: a schedule changing it every
    # epoch neither retraces the step (train_step runs in Python only while
    # it is traced) nor goes unseen by it.
    x = np.random.default_rng(0).random((64, 28, 28, 1)).astype("float32")
    tiny_vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    traces, step = [], tiny_vae.train_step
    tiny_vae.train_step = lambda data: traces.append(1) or step(data)
    tiny_vae.fit(x, batch_size=64, epochs=1, verbose=0)
    first = len(traces)
    assert first >= 1
    seen = []

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.beta = [0.0, 0.5, 1.0, 2.0][epoch]

        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.beta)

    tiny_vae.fit(x, batch_size=64, epochs=4, verbose=0, callbacks=[Schedule()])
    assert seen == [0.0, 0.5, 1.0, 2.0]
    assert len(traces) == first  # no new trace for any of the four values
    # The step used the epoch's beta: its loss is rec + beta * KL.
    logs = tiny_vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(
        logs["reconstruction_loss"] + 2.0 * logs["kl_loss"], rel=1e-5
    )
    tiny_vae.beta = 0.0
    logs = tiny_vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["reconstruction_loss"], rel=1e-5)


@pytest.mark.parametrize(
    "images, error, message",
    [
        (np.zeros((2, 28, 28, 1), "uint8"), TypeError, "Divide uint8 pixels by 255"),
        (np.zeros((2, 28, 28), "float32"), ValueError, "shape"),
        (
            np.zeros((2, 32, 32, 1), "float32"),
            ValueError,
            r"images of shape \(28, 28, 1\)",
        ),
        (np.full((2, 28, 28, 1), np.nan, "float32"), ValueError, "NaN"),
        (np.full((2, 28, 28, 1), 255.0, "float32"), ValueError, r"\[0, 1\]"),
        (np.zeros((0, 28, 28, 1), "float32"), ValueError, "empty"),
    ],
)
def test_bad_images_give_clear_errors(tiny_vae, images, error, message):
    with pytest.raises(error, match=message):
        tiny_vae.encode(images)


def test_bad_constructor_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="latent_dim=0"):
        vae_tf.DenseEncoder(0)
    with pytest.raises(ValueError, match="hidden_units"):
        vae_tf.DenseEncoder(4, (16, -1))
    with pytest.raises(ValueError, match="param_shape"):
        vae_tf.DenseDecoder((28, 0, 1))
    with pytest.raises(ValueError, match="beta"):
        vae_tf.VAE(vae_tf.DenseEncoder(4), vae_tf.DenseDecoder((28, 28, 1)), beta=-1.0)
    with pytest.raises(TypeError, match="encoder must be a keras.Model"):
        vae_tf.VAE("encoder", vae_tf.DenseDecoder((28, 28, 1)))


def test_decoder_that_does_not_fit_the_images_is_rejected_at_build():
    model = vae_tf.VAE(vae_tf.DenseEncoder(4), vae_tf.DenseDecoder((32, 32, 3)))
    with pytest.raises(ValueError, match=r"needs \(28, 28, 1\)"):
        model.build((None, 28, 28, 1))


def test_bad_sampling_arguments_give_clear_errors(tiny_vae):
    with pytest.raises(ValueError, match="num_samples"):
        tiny_vae.sample(0)
    with pytest.raises(ValueError, match="temperature"):
        tiny_vae.sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 4\)"):
        tiny_vae.decode(np.zeros((2, 5), "float32"))


def test_an_int_seed_gives_each_draw_of_a_call_its_own_stream():
    from vae_tf._random import derive, normal

    first = np.asarray(normal((4000,), derive(5, 0)))
    second = np.asarray(normal((4000,), derive(5, 1)))
    np.testing.assert_array_equal(first, np.asarray(normal((4000,), 5)))
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.06  # independent streams
    generator = keras.random.SeedGenerator(0)
    assert derive(generator, 3) is generator and derive(None, 1) is None


def test_compute_terms_with_an_int_seed_is_reproducible(tiny_vae):
    x = tf.constant(random_images(4))
    a = [np.asarray(t) for t in tiny_vae.compute_terms(x, seed=9)]
    b = [np.asarray(t) for t in tiny_vae.compute_terms(x, seed=9)]
    c = [np.asarray(t) for t in tiny_vae.compute_terms(x, seed=10)]
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])
