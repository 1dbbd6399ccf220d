"""Scaling out: strategies match one device, resuming after SIGKILL, mixed
precision, and training on a folder of images."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_tiny_vae
from PIL import Image

import vae_tf
from vae_tf import callbacks, cli, distribute, image_folders, runs

HERE = Path(__file__).parent
ROOT = HERE.parent
TIMEOUT = 240  # seconds for any child process


def child_env(**extra) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    if "TF_CONFIG" not in extra:
        env.pop("TF_CONFIG", None)  # a single process unless a test sets one
    return env


def run_script(mode: str, out: Path, env=None):
    return subprocess.Popen(
        [sys.executable, str(HERE / "distributed_run.py"), mode, str(out)],
        env=env or child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, what: str) -> str:
    try:
        out, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"{what} did not finish in {TIMEOUT} s:\n{out[-3000:]}")
    assert process.returncode == 0, f"{what} failed:\n{out[-3000:]}"
    return out


def free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports: list, index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
    )


def differences(reference, other) -> dict:
    """Relative difference of each case's weights and of each figure it reported.

    Keys are `case/weights` (the largest over the case's weights) and
    `case/log/NAME`, `case/evaluate/NAME`, `case/vae_tf.evaluate/NAME` as
    saved by distributed_run.py; a key the reference has and `other` lacks
    is a failure (`other` must run every case).
    """
    result = {}
    for key in reference:
        if key == "replicas" or key.endswith("/iterations"):
            continue
        assert key in other, f"{key} is missing"
        a, b = np.asarray(reference[key]), np.asarray(other[key])
        assert np.all(np.isfinite(b)), f"{key} is not finite: {b}"
        difference = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))
        case, name = key.split("/", 1)
        name = "weights" if re.fullmatch(r"w\d+", name) else name
        group = f"{case}/{name}"
        result[group] = max(result.get(group, 0.0), difference)
    return result


# Six even steps of 32 images; then 1, 9 and 11 images at batch 8, whose last
# batch leaves a replica with none (1 and 9) or an uneven split (11: 8 and 3)
# (the lossy VAE: 1 and 11).
CASES = ["even"] + [f"vae{n}" for n in (1, 9, 11)] + ["lossy1", "lossy11"]
LOCAL_CASES = ["cvae9"]  # not under multi-worker (its loop takes no labels)


@pytest.fixture(scope="module")
def alone_and_mirrored(tmp_path_factory):
    """What the single-device reference and the mirrored run saved: the two
    processes run at once (each is mostly one thread of Python and tracing)."""
    folder = tmp_path_factory.mktemp("alone_and_mirrored")
    processes = {
        mode: run_script(mode, folder / f"{mode}.npz")
        for mode in ("single", "mirrored")
    }
    for mode, process in processes.items():
        finish(process, f"{mode} training")
    return {mode: dict(np.load(folder / f"{mode}.npz")) for mode in processes}


@pytest.fixture(scope="module")
def single_device(alone_and_mirrored):
    return alone_and_mirrored["single"]


def test_mirrored_on_two_devices_matches_one_device_for_any_dataset_size(
    alone_and_mirrored, single_device
):
    mirrored = alone_and_mirrored["mirrored"]
    assert int(mirrored["replicas"]) == 2 and int(single_device["replicas"]) == 1
    for case in CASES:
        steps = int(single_device[f"{case}/iterations"])
        assert int(mirrored[f"{case}/iterations"]) == steps
    assert int(single_device["even/iterations"]) == 6
    assert int(single_device["vae11/iterations"]) == 2  # batches of 8 and 3
    found = differences(single_device, mirrored)
    assert {key.split("/")[0] for key in found} == set(CASES + LOCAL_CASES)
    assert "vae1/evaluate/loss" in found and "lossy11/log/psnr" in found

    assert max(found.values()) <= 1e-5, {k: v for k, v in found.items() if v > 1e-5}


def test_a_preset_trains_with_the_mirrored_strategy_as_the_cli_runs_it(tmp_path):
    """The preset's compile (several steps per call on one device) and fit,
    on 2 devices: Keras fails with several steps per call there."""
    finish(run_script("runs-mirrored", tmp_path / "r.npz"), "runs.train mirrored")
    result = np.load(tmp_path / "r.npz")
    assert int(result["replicas"]) == 2
    assert np.isfinite(float(result["test_negative_elbo_nats"]))


def test_two_workers_end_equal_to_each_other_and_to_one_process_for_any_size(
    single_device, tmp_path
):
    ports = free_ports(2)
    workers = [
        run_script(
            "worker", tmp_path / f"w{i}.npz", child_env(TF_CONFIG=tf_config(ports, i))
        )
        for i in range(2)
    ]
    for i, worker in enumerate(workers):
        finish(worker, f"worker {i}")
    first, second = (dict(np.load(tmp_path / f"w{i}.npz")) for i in range(2))
    assert int(first["replicas"]) == 2
    assert max(differences(first, second).values()) == 0.0
    # Keras's evaluate does not run under a multi-worker strategy (as fit).
    reference = {
        k: v
        for k, v in single_device.items()
        if "/evaluate/" not in k and k.split("/")[0] not in LOCAL_CASES
    }
    found = differences(reference, first)
    assert {key.split("/")[0] for key in found} == set(CASES)
    assert "vae11/vae_tf.evaluate/test_nll_iwae_nats" in found
    assert max(found.values()) <= 1e-5, {k: v for k, v in found.items() if v > 1e-5}


def test_a_run_killed_mid_training_resumes_and_trains_only_the_rest(tmp_path):
    out, epochs = tmp_path / "run", 8
    argv = [
        sys.executable, "-m", "vae_tf.cli", "train", "--preset", "mnist-dense",
        "--source", "bundled", "--epochs", str(epochs), "--batch-size", "250",
        "--max-train-images", "5000", "--max-test-images", "1000", "--no-figures",
        "--output-dir", str(out), "--progress", "epochs",
    ]  # fmt: skip
    first = subprocess.Popen(
        argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    log = out / "training_log.jsonl"
    deadline = time.monotonic() + TIMEOUT
    while len(distribute.HistoryLog.read(log)) < 2:
        assert first.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert not (out / "model.keras").exists()
    done = json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"]
    assert 1 <= done < epochs  # the epoch logged last may not be backed up yet

    second = subprocess.run(
        argv, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from the backup" in second.stderr
    started = [int(n) for n in re.findall(r"Epoch (\d+)/8", second.stdout)]
    assert started == list(range(done + 1, epochs + 1))  # the remaining epochs only
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == epochs
    assert [e["epoch"] for e in distribute.HistoryLog.read(log)] == list(range(epochs))
    assert json.loads((out / "metrics.json").read_text())["resumed"] is True
    model, _ = runs.load_run(out)
    steps_per_epoch = 5_000 // 250
    assert int(model.optimizer.iterations.numpy()) == epochs * steps_per_epoch
    assert not (out / "backup").exists()


def small_vae():
    keras.utils.set_random_seed(0)
    model = make_tiny_vae(latent_dim=2, binarization="threshold")
    model.build((None, 28, 28, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    return model


class Killed(Exception):
    """Stands for SIGKILL: the backup's next write never happens."""


def test_a_kill_between_the_weights_and_their_epoch_resumes_that_epoch(
    tmp_path, monkeypatch
):
    """Killed after epoch 3's weights are written but before its metadata
    (Keras's BackupAndRestore then resumes epoch 3's weights as epoch 2's and
    trains an epoch twice): the backup still names epoch 2's complete file,
    and the resumed run ends with exactly 4 epochs of optimizer steps."""
    images, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
    dataset = vae_tf.data.make_dataset(images[:64], batch_size=32)  # 2 steps
    backup = tmp_path / "backup"
    model = small_vae()
    model.fit(dataset, epochs=2, verbose=0, callbacks=[callbacks.EpochBackup(backup)])
    assert not backup.exists()  # deleted when training ends

    def raise_killed(*args, **kwargs):
        raise Killed

    model = small_vae()
    saver = callbacks.EpochBackup(backup)
    weights_written = saver.on_epoch_end

    def on_epoch_end(epoch, logs=None):
        if epoch == 2:  # epoch 3's weights get written, then its metadata fails
            monkeypatch.setattr(Path, "write_text", raise_killed)
        weights_written(epoch, logs)

    saver.on_epoch_end = on_epoch_end
    with pytest.raises(Killed):
        model.fit(dataset, epochs=4, verbose=0, callbacks=[saver])
    monkeypatch.undo()
    assert json.loads((backup / "training_metadata.json").read_text()) == {
        "epoch": 2,
        "weights": "epoch-2.weights.h5",
    }
    assert (backup / "epoch-2.weights.h5").exists()
    assert not list(backup.glob(".*"))  # no temporary file left behind

    resumed = small_vae()
    epochs_run = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epochs_run.append(epoch)
    )
    resumed.fit(
        dataset, epochs=4, verbose=0, callbacks=[callbacks.EpochBackup(backup), record]
    )
    assert epochs_run == [2, 3]
    assert int(resumed.optimizer.iterations.numpy()) == 4 * 2


def test_a_backup_in_keras_s_own_layout_resumes_and_bad_metadata_is_named(tmp_path):
    images, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
    dataset = vae_tf.data.make_dataset(images[:64], batch_size=32)
    backup = tmp_path / "backup"
    model = small_vae()

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise Killed

    keras_backup = keras.callbacks.BackupAndRestore(str(backup))
    with pytest.raises(Killed):
        model.fit(dataset, epochs=3, verbose=0, callbacks=[keras_backup, Stop()])
    assert (backup / "latest.weights.h5").exists()
    resumed = small_vae()
    resumed.fit(dataset, epochs=3, verbose=0, callbacks=[callbacks.EpochBackup(backup)])
    # Epoch 1's 2 steps came from Keras's file, then 2 more epochs of 2.
    assert int(resumed.optimizer.iterations.numpy()) == 3 * 2

    backup.mkdir()
    (backup / "training_metadata.json").write_text("{trunc")
    with pytest.raises(ValueError, match="not a backup's metadata.*delete"):
        small_vae().fit(
            dataset, epochs=1, verbose=0, callbacks=[callbacks.EpochBackup(backup)]
        )


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_the_networks_in_half_and_the_loss_in_float32(policy):
    images, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
    x = images[:256].astype("float32") / 255.0

    def build():
        keras.utils.set_random_seed(0)
        model = vae_tf.presets.conv_vae(
            (28, 28, 1), vae_tf.Bernoulli("threshold"), latent_dim=8, filters=(8, 16),
            residual_blocks=0, seed=0,
        )  # fmt: skip
        model.build((None, 28, 28, 1))
        return model

    reference = build()
    with distribute.precision_policy(policy):
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert keras.config.dtype_policy().name == "float32"  # restored
    assert model.encoder.compute_dtype == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in model.weights)
    model.set_weights(reference.get_weights())
    terms = model.compute_terms(x[:64], seed=0)
    assert all(t.dtype == "float32" for t in terms)
    expected = reference.compute_terms(x[:64], seed=0)
    for half, full in zip(terms, expected):
        np.testing.assert_allclose(np.mean(half), np.mean(full), rtol=0.02)
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    # Enough steps for mixed_float16's dynamic loss scale to come down from
    # 2**15 (the steps that overflow are skipped) and then train.
    history = model.fit(x, batch_size=16, epochs=3, verbose=0).history
    assert (
        np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    )


@pytest.mark.parametrize("kind", ["conditional", "pixelcnn"])
def test_mixed_precision_trains_and_samples_conditional_and_pixelcnn_vaes(kind):
    # The label one-hots and the PixelCNN's masked kernels and pixel-by-pixel
    # sampling meet half-precision tensors; all must come out float32.
    images, labels = vae_tf.data.load_arrays("mnist", "train", source="bundled")
    x = images[:64].astype("float32") / 255.0
    keras.utils.set_random_seed(0)
    with distribute.precision_policy("mixed_bfloat16"):
        if kind == "conditional":
            model = vae_tf.presets.conditional_mnist_vae(4, (32,), seed=0)
            inputs, sample_args = (x, labels[:64].astype("int32")), {"labels": 3}
        else:
            model = vae_tf.presets.pixelcnn_vae(
                (28, 28, 1), vae_tf.Bernoulli("dynamic"), latent_dim=4,
                encoder_units=(32,), filters=8, num_layers=2, seed=0,
            )  # fmt: skip
            inputs, sample_args = (x,), {}
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(*inputs, batch_size=16, epochs=2, verbose=0).history
    assert model.decoder.compute_dtype == "bfloat16"
    assert np.isfinite(history["loss"]).all()
    samples = model.sample(2, seed=0, **sample_args)
    assert samples.dtype == "float32" and samples.shape == (2, 28, 28, 1)
    assert 0.0 <= float(np.min(samples)) <= float(np.max(samples)) <= 1.0


def test_bad_strategy_precision_and_tf_config_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.make_strategy("tpu")
    with pytest.raises(ValueError, match="Unknown precision"):
        with distribute.precision_policy("float8"):
            pass
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        distribute.make_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON"):
        distribute.make_strategy("multi-worker")


def write_images(folder: Path, count: int):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height, width = rng.integers(20, 90, size=2)
        if i % 3 == 0:
            pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
        else:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        suffix = ".jpg" if i % 2 else ".png"
        sub = folder / ("nested" if i % 5 == 0 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(sub / f"img{i:03d}{suffix}")


def test_folder_images_are_scaled_and_centre_cropped(tmp_path):
    wide = np.zeros((56, 168, 3), np.uint8)
    wide[:, :56] = (255, 0, 0)  # left third red
    wide[:, 56:112] = (255, 255, 255)  # centre white
    wide[:, 112:] = (0, 0, 255)  # right third blue
    Image.fromarray(wide).save(tmp_path / "wide.png")
    (batch,) = image_folders.folder_dataset(
        [str(tmp_path / "wide.png")], (28, 28, 3), batch_size=1, shuffle=False
    )
    np.testing.assert_allclose(batch.numpy(), np.ones((1, 28, 28, 3)), atol=1e-6)
    (grey,) = image_folders.folder_dataset(
        [str(tmp_path / "wide.png")], (14, 14, 1), batch_size=1, shuffle=False
    )
    assert grey.shape == (1, 14, 14, 1)
    np.testing.assert_allclose(grey.numpy(), 1.0, atol=1e-3)


def test_train_on_an_image_folder_streams_and_holds_out_a_test_set(tmp_path):
    write_images(tmp_path / "photos", 45)
    files = image_folders.list_images(tmp_path / "photos")
    assert len(files) == 45 and files == sorted(files)
    train_files, test_files = image_folders.split_files(files)
    assert len(test_files) == 2 and not set(test_files) & set(train_files)
    metrics = runs.train(
        "cifar10-conv", tmp_path / "run", epochs=1, batch_size=16,
        image_dir=tmp_path / "photos", verbose=0,
    )  # fmt: skip
    assert metrics["data_source"] == "image-dir" and metrics["num_test_images"] == 2
    assert np.isfinite(metrics["test_negative_elbo_nats"])
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["num_train_images"] == 43


def test_bad_image_folders_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no image files"):
        image_folders.list_images(empty)
    with pytest.raises(NotADirectoryError, match="must be a folder"):
        image_folders.list_images(tmp_path / "missing")
    fake = tmp_path / "fake"
    write_images(fake, 3)
    (fake / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"1 file\(s\).*text.png"):
        image_folders.list_images(fake)
    broken = tmp_path / "broken"
    write_images(broken, 4)
    data = (broken / "img001.jpg").read_bytes()
    (broken / "img001.jpg").write_bytes(data[:20])  # a JPEG header, then nothing
    argv = ["train", "--preset", "mnist-dense", "--image-dir", str(broken)]
    argv += ["--epochs", "1", "--output-dir", str(tmp_path / "run")]
    argv += ["--progress", "none"]
    assert cli.main(argv) == 2
    assert "could not be decoded" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.keras").exists()
    # Damaged after a sound header: listed, then found while training, and the
    # error is one line naming the file and what is wrong with it.
    late = tmp_path / "late"
    write_images(late, 4)
    png = late / "img002.png"
    Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:60])  # the IHDR chunk, half an IDAT
    image_folders.list_images(late)  # the header is sound
    argv[argv.index(str(broken))] = str(late)
    argv[argv.index(str(tmp_path / "run"))] = str(tmp_path / "late-run")
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("Data: 4 image files under") and len(lines) == 2
    assert lines[1].startswith("vae-tf train: error: An image in")
    assert f"{png} is truncated or damaged" in lines[1]
    assert not (tmp_path / "late-run" / "model.keras").exists()
