import dataclasses
import warnings

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vae_tf import data


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def fake_mnist(path, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    return write_npz(
        path / "mnist.npz",
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def test_local_npz_is_read_from_data_dir(tmp_path):
    fake_mnist(tmp_path)
    images, labels = data.load_arrays("mnist", "train", data_dir=str(tmp_path))
    expected = np.load(tmp_path / "mnist.npz")["x_train"][..., None]
    np.testing.assert_array_equal(images, expected)
    assert images.shape == (30, 28, 28, 1) and labels.shape == (30,)


def test_local_npz_is_read_from_the_environment_variable(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.resolve_source("mnist") == "local"
    images, _ = data.load_arrays("mnist", "test")
    assert images.shape == (10, 28, 28, 1)


def test_tfds_source_goes_through_tensorflow_datasets():
    with tfds.testing.mock_data(num_examples=12):
        images, labels = data.load_arrays("mnist", "train", source="tfds")
        batches = list(
            data.load("mnist", "train", batch_size=5, source="tfds", with_labels=True)
        )
    assert images.shape == (12, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (12,)
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]


def test_auto_uses_tfds_when_its_host_answers(monkeypatch):
    monkeypatch.setattr(data, "_host_answers", lambda host, timeout=3.0: True)
    assert data.resolve_source("mnist") == "tfds"


@pytest.mark.local_network
def test_auto_checks_the_download_host_over_the_network(monkeypatch):
    # The real check, against a server on this machine standing in for the
    # download host: while it listens, "auto" picks tensorflow-datasets (and
    # loading goes through tfds, mocked here); once it is gone, the bundled
    # subset, with a warning. No data leaves the machine.
    import socket

    monkeypatch.setattr(data, "_tfds_prepared", lambda name: False)
    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    local = dataclasses.replace(data.DATASETS["mnist"], download_host=address)
    monkeypatch.setitem(data.DATASETS, "mnist", local)
    try:
        assert data._host_answers(address, timeout=2.0)
        assert data.resolve_source("mnist") == "tfds"
        with tfds.testing.mock_data(num_examples=6):
            images, _ = data.load_arrays("mnist", "test")
        assert images.shape == (6, 28, 28, 1)
    finally:
        server.close()
    assert not data._host_answers(address, timeout=2.0)
    assert data.resolve_source("mnist") == "bundled"
    with pytest.warns(UserWarning, match="bundled with vae_tf"):
        data.load_arrays("mnist", "test")
    assert not data._host_answers("127.0.0.1:not-a-port")


def test_auto_falls_back_to_the_bundled_subset_offline_with_a_warning():
    assert data.resolve_source("mnist") == "bundled"
    with pytest.warns(UserWarning, match="bundled with vae_tf"):
        images, labels = data.load_arrays("mnist", "train")
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.uint8
    assert 0.12 < images.mean() / 255 < 0.14  # real MNIST, mean intensity ~0.13
    assert set(np.unique(labels)) == set(range(10))


def test_cifar10_offline_without_a_folder_is_a_clear_error():
    with pytest.raises(RuntimeError, match="VAE_TF_DATA_DIR"):
        data.load_arrays("cifar10", "train")


def test_pipeline_batches_shuffles_and_scales(tmp_path):
    images = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2, 1)
    batches = [
        b.numpy() for b in data.make_dataset(images, batch_size=4, shuffle=True, seed=0)
    ]
    assert [len(b) for b in batches] == [4, 4, 2]
    merged = np.concatenate(batches)
    np.testing.assert_allclose(
        np.sort(merged.ravel()), np.arange(40) / 255.0, rtol=1e-6
    )
    first_epoch = np.concatenate(
        list(data.make_dataset(images, batch_size=10, shuffle=True, seed=0))
    )
    dataset = data.make_dataset(images, batch_size=10, shuffle=True, seed=0)
    epochs = [next(iter(dataset)).numpy() for _ in range(2)]
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert first_epoch.dtype == np.float32


def test_binarize_is_a_fixed_bernoulli_sample():
    images = np.full((100, 28, 28, 1), 0.25, np.float32)
    first, second = data.binarize(images, seed=0), data.binarize(images, seed=0)
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 1.0}
    assert first.mean() == pytest.approx(0.25, abs=0.005)


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x_train=np.zeros((3, 28, 28), np.float32), y_train=np.zeros(3)), "uint8"),
        (
            dict(x_train=np.zeros((3, 32, 32), np.uint8), y_train=np.zeros(3)),
            r"shape \(N, 28, 28, 1\)",
        ),
        (
            dict(x_train=np.zeros((0, 28, 28), np.uint8), y_train=np.zeros(0)),
            "no images",
        ),
        (
            dict(x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.zeros(2)),
            "3 images but 2 labels",
        ),
        (
            dict(x_test=np.zeros((3, 28, 28), np.uint8), y_test=np.zeros(3)),
            "missing arrays",
        ),
    ],
)
def test_malformed_npz_gives_a_clear_error(tmp_path, arrays, message):
    write_npz(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        data.load_arrays("mnist", "train", data_dir=str(tmp_path))


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No mnist data"):
        data.load_arrays("mnist", "train", data_dir=str(tmp_path))
    (tmp_path / "mnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        data.load_arrays("mnist", "train", data_dir=str(tmp_path))


def test_unknown_names_splits_and_sources_are_rejected():
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_arrays("imagenet")
    with pytest.raises(ValueError, match="Unknown split"):
        data.load_arrays("mnist", "validation")
    with pytest.raises(ValueError, match="Unknown source"):
        data.load_arrays("mnist", source="ftp")
    with pytest.raises(ValueError, match="Only MNIST is bundled"):
        data.load_arrays("cifar10", source="bundled")


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((0, 28, 28, 1), np.uint8), "empty"),
        (np.zeros((4, 28, 28), np.uint8), "shape"),
        (np.full((4, 28, 28, 1), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((4, 28, 28, 1), np.nan, np.float32), "NaN"),
        (np.zeros((4, 28, 28, 1), np.int32), "uint8 or floats"),
    ],
)
def test_bad_in_memory_images_are_rejected(images, message):
    with pytest.raises(ValueError, match=message):
        data.make_dataset(images)


def test_no_warning_when_a_folder_is_given(tmp_path):
    fake_mnist(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load("mnist", "train", data_dir=str(tmp_path))
