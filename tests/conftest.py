"""Shared fixtures: offline data, a tiny model, a briefly trained model."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vae_tf  # noqa: E402
from vae_tf import data  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "local_network: the test serves a dataset's download host itself, on "
        "127.0.0.1, so the real network check runs (nothing leaves the machine)",
    )
    config.addinivalue_line(
        "markers",
        "tutorial(name): the test checks the --quick run of tutorials/NAME",
    )


def pytest_collection_finish(session):
    """Start the selected tutorials' --quick runs now, beside the other tests
    (see `test_tutorials.QuickRuns`)."""
    names = {
        marker.args[0]
        for item in session.items
        for marker in item.iter_markers("tutorial")
    }
    if names:
        tutorials = next(
            item.module for item in session.items if item.get_closest_marker("tutorial")
        )
        tutorials.QUICK_RUNS.start(names)


def pytest_sessionfinish(session):
    for item in session.items:
        if item.get_closest_marker("tutorial"):
            item.module.QUICK_RUNS.close()
            break


@pytest.fixture(autouse=True)
def offline(request, monkeypatch):
    """Tests never download: no download host answers (unless the test serves
    it on 127.0.0.1 itself), no data folder is set."""
    if request.node.get_closest_marker("local_network") is None:
        monkeypatch.setattr(data, "_host_answers", lambda host, timeout=3.0: False)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


@pytest.fixture(scope="session")
def mnist_subset():
    """The bundled real MNIST subset as float32 in [0, 1]: (train, test) images."""
    train, _ = data.load_arrays("mnist", "train", source="bundled")
    test, _ = data.load_arrays("mnist", "test", source="bundled")
    return train.astype("float32") / 255.0, test.astype("float32") / 255.0


def make_tiny_vae(latent_dim=4, seed=0, binarization="dynamic", beta=1.0):
    return vae_tf.VAE(
        vae_tf.DenseEncoder(latent_dim, (32,)),
        vae_tf.DenseDecoder((28, 28, 1), (32,)),
        vae_tf.Bernoulli(binarization),
        beta=beta,
        seed=seed,
    )


@pytest.fixture
def tiny_vae():
    keras.utils.set_random_seed(0)
    model = make_tiny_vae()
    model.build((None, 28, 28, 1))
    return model


@pytest.fixture(scope="session")
def trained_vae(mnist_subset):
    """A small VAE trained for two epochs on the bundled subset."""
    keras.utils.set_random_seed(1)
    train, _ = mnist_subset
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(8, (128,)),
        vae_tf.DenseDecoder((28, 28, 1), (128,)),
        vae_tf.Bernoulli("dynamic"),
        seed=1,
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=True)
    model.fit(
        data.make_dataset(train, batch_size=100, shuffle=True, seed=0),
        epochs=2,
        verbose=0,
        shuffle=False,
    )
    return model


@pytest.fixture(scope="session")
def binary_test_images(mnist_subset):
    return data.binarize(mnist_subset[1][:400], seed=0)


def random_images(n=8, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def write_photos(folder, count=40, seed=0, size=(40, 48)):
    """`count` colour pictures (smooth gradients and noise) of a few sizes
    from `size` (height, width) up, as PNG files in `folder`, for the presets
    that train on an image folder; returns `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = size[0] + 4 * (i % 3), size[1] + 8 * (i % 2)
        ramp = np.linspace(0, 200, width)[None, :, None] + rng.integers(0, 50, 3)
        noise = rng.normal(0, 12, (height, width, 3))
        image = np.clip(ramp + noise, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"photo_{i:02d}.png")
    return folder
