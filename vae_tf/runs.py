"""Run directories: train a preset and write everything a user keeps of it.

A run directory holds:

| file | content |
| --- | --- |
| `model.keras` | the trained VAE with its optimizer state (`load_model`) |
| `saved_model/` | the SavedModel export (`vae_tf.export`), servable without vae_tf |
| `run.json` | preset, dataset, data source, seed, epochs, batch size |
| `metrics.json` | figures: `test_negative_elbo_nats`, `epochs`, `train_seconds`, ... |
| `history.json` | the per-epoch logs of `fit` |
| `loss_curves.png`, `reconstructions.png`, `samples.png` | figures |

This is what `vae-tf train`, `evaluate` and `sample` call; it is plain
Python so that a notebook can do the same.
"""

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae_tf import data, image_folders, plotting, presets
from vae_tf._files import write_atomically
from vae_tf.callbacks import EpochBackup, EpochTimer, StepProgbarLogger
from vae_tf.export import export_saved_model

__all__ = [
    "train",
    "load_run",
    "evaluate_run",
    "run_test_images",
    "calibration_images",
    "test_dataset",
    "write_json",
    "write_samples",
]

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


def write_json(path, payload: dict):
    """Write `payload` as indented JSON, atomically (temporary file, then rename)."""
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def test_dataset(preset, data_dir=None, source="auto", batch_size: int = 500):
    """The preset's test set, binarised once (seed 0) when the preset says so."""
    images, labels = data.load_arrays(preset.dataset, "test", data_dir, source)
    return _test_pipeline(preset, images, labels, batch_size)


def _test_pipeline(preset, images, labels, batch_size: int = 500):
    if preset.binarized_test:
        images = data.binarize(images, seed=0)
    return data.make_dataset(
        images,
        labels if preset.conditional else None,
        batch_size=batch_size,
        shuffle=False,
        seed=0,
    )


def _data_line(dataset: str, source: str, data_dir, sizes: str) -> str:
    """`Data: MNIST from ... (sizes).`, with how to get the full set if bundled."""
    line = f"Data: {data.describe_source(dataset, source, data_dir)} ({sizes})."
    if source == "bundled":
        line += (
            f" For the full set, pass --data-dir DIR holding {dataset}.npz or set "
            f"${data.DATA_DIR_ENV}."
        )
    return line


def _folder_line(image_dir, train_files: list, test_files: list) -> str:
    """`Data: N image files under DIR (train / test).`"""
    total = len(set(train_files) | set(test_files))
    if train_files == test_files:
        sizes = f"all {total:,} for training and testing: too few to hold any out"
    else:
        sizes = f"{len(train_files):,} train / {len(test_files):,} test"
    return f"Data: {total:,} image files under {image_dir} ({sizes})."


def _check_output_dir(output_dir: Path, overwrite: bool):
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(
            f"--output-dir must be a directory. Received: {output_dir}"
        )
    if (output_dir / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a trained model ({MODEL_FILE}). Choose "
            "another "
            "output directory or pass overwrite=True (--overwrite) to replace it."
        )


@dataclasses.dataclass
class _TrainData:
    """What `_train_data` loads: the datasets, and what the run records."""

    train_ds: tf.data.Dataset
    test_ds: tf.data.Dataset
    num_train: int
    source: str  # the data source, or "image-dir"
    train_images: np.ndarray | None  # in memory (multi-worker shards it)
    line: str  # `Data: ...`, for the user


def _folder_test_dataset(files, shape, crop: str, crops_per_image: int):
    """The held-out files of a folder run as it is evaluated: fitted, or (for
    a run trained on random crops) up to 64 fixed random crops of each; in
    batches of about half a million pixels."""
    batch = max(1, 500 * 1024 // (shape[0] * shape[1]))
    if crop == "fit":
        return image_folders.folder_dataset(files, shape, batch, shuffle=False)
    return image_folders.folder_dataset(
        files,
        shape,
        batch,
        shuffle=False,
        seed=0,
        crop=crop,
        crops_per_image=min(crops_per_image, MAX_TEST_CROPS),
    )


# A run trained on random crops is evaluated on this many crops of each
# held-out file, at most.
MAX_TEST_CROPS = 64


def _train_data(
    preset, batch_size, data_dir, source, seed, image_dir, limits, crops=("fit", 1)
):
    """The training and test data of a preset or an image folder, each cut to
    its limit in `limits = (max_train_images, max_test_images)`; a folder's
    files are cut as `crops = (crop, crops_per_image)` says
    (`image_folders.folder_dataset`)."""
    max_train, max_test = limits
    crop, crops_per_image = crops
    if image_dir is not None:
        if preset.conditional:
            raise ValueError(
                f"--image-dir has no labels; {preset.name} is class-conditional. "
                "Choose an unconditional preset."
            )
        shape = data.DATASETS[preset.dataset].image_shape
        train_files, test_files = image_folders.split_files(
            image_folders.list_images(image_dir)
        )
        train_files, test_files = train_files[:max_train], test_files[:max_test]
        train_ds = image_folders.folder_dataset(
            train_files,
            shape,
            batch_size,
            shuffle=True,
            seed=seed,
            crop=crop,
            crops_per_image=crops_per_image,
            flips=preset.flips and crop == "random",
        )
        test_ds = _folder_test_dataset(test_files, shape, crop, crops_per_image)
        line = _folder_line(image_dir, train_files, test_files)
        if crop == "random":  # inside the brackets of "(... sizes)."
            line = line.removesuffix(").") + (
                f"; {crops_per_image:,} random {shape[0]}x{shape[1]} crops of each "
                "training file an epoch)."
            )
        num_train = len(train_files) * crops_per_image
        return _TrainData(train_ds, test_ds, num_train, "image-dir", None, line)
    chosen_source = data.resolve_source(preset.dataset, source, data_dir)
    train_images, train_labels = (
        array[:max_train]
        for array in data.load_arrays(preset.dataset, "train", data_dir, chosen_source)
    )
    grid = preset.train_mosaic
    if batch_size % (grid * grid):
        raise ValueError(
            f"{preset.name} trains on mosaics of {grid}x{grid} images: batch_size "
            f"must be a multiple of {grid * grid}. Received: batch_size={batch_size}"
        )
    if grid > 1 and len(train_images) < batch_size:
        raise ValueError(
            f"{preset.name} trains on whole batches of {batch_size} images (made "
            f"into mosaics); there are {len(train_images)}. Lower the batch size or "
            "use more training images."
        )
    train_ds = data.make_dataset(
        train_images,
        train_labels if preset.conditional else None,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        drop_remainder=grid > 1,
    )
    if grid > 1:
        train_ds = data.tile_batches(train_ds, grid)
    test_images, test_labels = (
        array[:max_test]
        for array in data.load_arrays(preset.dataset, "test", data_dir, chosen_source)
    )
    test_ds = _test_pipeline(preset, test_images, test_labels)
    sizes = f"{len(train_images):,} train / {len(test_images):,} test images"
    line = _data_line(preset.dataset, chosen_source, data_dir, sizes)
    return _TrainData(
        train_ds, test_ds, len(train_images), chosen_source, train_images, line
    )


def train(
    preset_name: str,
    output_dir,
    epochs: int | None = None,
    batch_size: int | None = None,
    data_dir: str | None = None,
    source: str = "auto",
    seed: int = 0,
    verbose: int | str = "auto",
    overwrite: bool = False,
    lmbda: float | None = None,
    strategy: str = "default",
    precision: str = "float32",
    image_dir=None,
    jit_compile: bool | None = None,
    print_data_source: bool = False,
    max_train_images: int | None = None,
    max_test_images: int | None = None,
    figures: bool = True,
    tensorboard: bool = False,
    crop: str | None = None,
    crops_per_image: int | None = None,
    init_from=None,
) -> dict:
    """Train a preset and write its run directory; resume it if it was cut short.

    While training, `output_dir/backup/` holds the model and optimizer after
    each finished epoch (`vae_tf.callbacks.EpochBackup`, written whole) and
    `training_log.jsonl` each epoch's logs. If the process dies, running the
    same command again restores the last finished epoch and trains the
    remaining ones only; the backup is deleted when the run completes.

    The steps, each a function below: check the settings
    (`_check_settings`), find the backup to resume from (`_Backup`), load the
    data (`_train_data`), build and compile the model (`_build_model`), fit
    (`_fit`), then evaluate and write the run directory (`_write_run`).

    Args:
        preset_name: a name from `vae_tf.presets.PRESETS`.
        output_dir: the run directory (created if needed).
        epochs: training epochs; the preset's default if `None`.
        batch_size: training batch size (global, over all replicas); the
            preset's default if `None`.
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).
        source: data source, see `vae_tf.data`.
        seed: seed of the weights, the data order and the model's draws.
        verbose: `fit`'s verbosity: 1 (or `"auto"`) a progress bar, 2 one line
            per epoch, 0 silent. The bar counts the real steps
            (`vae_tf.callbacks.StepProgbarLogger`).
        overwrite: replace a model already in `output_dir` (and discard a
            backup instead of resuming from it).
        lmbda: the rate-distortion weight of a lossy-codec preset (its
            default if `None`).
        strategy: `"default"`, `"mirrored"` (all local devices) or
            `"multi-worker"` (`TF_CONFIG`; see `vae_tf.distribute`).
        precision: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.
        image_dir: train on this folder of PNG/JPEG files instead of the
            preset's dataset (streamed; every 20th file is held out as the
            test set), each file cut to the preset's image size as `crop`
            says. Required by a preset of a folder dataset (`photo-lossy`).
        crop: with `image_dir`: `"fit"`, each file scaled so its shorter side
            fits the preset's image size and centre-cropped (the whole
            picture, small); `"random"`, `crops_per_image` random crops of
            the preset's size at the file's own resolution each epoch (for a
            codec that codes full-size pictures tile by tile), flipped left
            to right at random if the preset says so (`Preset.flips`). The
            test set is up to 64 fixed random crops of each held-out file.
            Default: the preset's (`Preset.crop`).
        crops_per_image: random crops of each file per epoch (default: the
            preset's).
        init_from: a finished run directory of the same preset whose weights
            start the training (fine-tuning, e.g. a CIFAR-10 codec on your
            own photos); the optimizer starts afresh. A backup in
            `output_dir` still takes precedence: a cut-short run resumes.
        jit_compile: compile the step with XLA; default: the preset's choice
            on one device, off under a distribution strategy (XLA fails there
            on CPU devices in TF 2.21).
        print_data_source: print one line on stderr before training naming
            the data's source and its train and test sizes (on the chief
            worker only), e.g. `Data: MNIST from /data/mnist.npz (60,000
            train / 10,000 test images).`
        max_train_images: train on the first this many training images (or
            files) only, e.g. for a quick trial run; all if `None`.
        max_test_images: evaluate on the first this many test images only.
        figures: write the loss curves, reconstructions and samples (an
            autoregressive model draws the last two pixel by pixel: minutes
            on a CPU for a CIFAR-10 PixelCNN).
        tensorboard: log to `output_dir/tensorboard` for TensorBoard: the
            loss terms per step (`keras.callbacks.TensorBoard`) and, per
            epoch, reconstructions of 8 fixed test images, samples from fixed
            latents (these two unless not `figures`: an autoregressive model
            draws them pixel by pixel) and the KL per latent dimension
            (`vae_tf.callbacks.ImageLogger`). Not with `"multi-worker"`.

    Returns:
        The metrics written to `metrics.json`.

    Raises:
        ValueError: unknown preset, strategy or precision, non-positive epochs,
            batch size or image counts, a bad image folder.
        FileExistsError: `output_dir` holds a model and `overwrite` is false.
        FileNotFoundError: `init_from` is not a finished run directory.
    """
    from vae_tf import distribute

    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            "--tensorboard writes with tf.summary, which needs the tensorboard "
            "package: pip install 'vae_tf[tensorboard]'."
        )
    if strategy == "multi-worker" and tensorboard:
        raise ValueError(
            "--tensorboard logs from Keras's fit: use it with the default or "
            "mirrored strategy."
        )
    # A multi-worker strategy must exist before any other TensorFlow op runs.
    distributed = distribute.make_strategy(strategy)
    preset = presets.get(preset_name)
    epochs, batch_size = _check_settings(
        preset,
        epochs,
        batch_size,
        distributed.num_replicas_in_sync,
        max_train_images=max_train_images,
        max_test_images=max_test_images,
    )
    if strategy == "multi-worker" and image_dir is not None:
        raise ValueError(
            "--strategy multi-worker shards the preset's in-memory dataset; train on "
            "an --image-dir with the default or mirrored strategy."
        )
    if (crop, crops_per_image) != (None, None) and image_dir is None:
        raise ValueError(
            "--crop and --crops-per-image cut the files of an --image-dir; the "
            f"preset's dataset has images of its size. Received: {crop=}, "
            f"{crops_per_image=} without image_dir."
        )
    if image_dir is None and data.DATASETS[preset.dataset].folder:
        raise ValueError(
            f"{preset.name} trains on a folder of your own {preset.dataset}: pass "
            "--image-dir DIR (PNG or JPEG files; every 20th is held out as the "
            "test set)."
        )
    crop = preset.crop if crop is None else crop
    if crops_per_image is None:
        crops_per_image = preset.crops_per_image if crop == "random" else 1

    if init_from is not None and strategy == "multi-worker":
        raise ValueError(
            "--init-from loads a run's weights into one process's model; use it "
            "with the default or mirrored strategy."
        )
    initial = None if init_from is None else _initial_weights(init_from, preset)
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, overwrite)
    backup = _Backup(output_dir, overwrite)
    limits = (max_train_images, max_test_images)
    loaded = _train_data(
        preset,
        batch_size,
        data_dir,
        source,
        seed,
        image_dir,
        limits,
        (crop, crops_per_image),
    )
    if print_data_source and backup.chief:
        print(loaded.line, file=sys.stderr, flush=True)

    keras.utils.set_random_seed(seed)
    with distribute.precision_policy(precision), distributed.scope():
        model = _build_model(
            preset, seed, lmbda, loaded.num_train, epochs, batch_size, strategy
        )
        if initial is not None:
            model.set_weights(initial)
        if jit_compile is not None:
            model.jit_compile = bool(jit_compile)
    output_dir.mkdir(parents=True, exist_ok=True)
    logging = []
    if tensorboard and backup.chief:
        logging = _tensorboard_callbacks(
            output_dir / "tensorboard", loaded, seed, figures
        )
    fitted = _fit(
        model,
        loaded,
        epochs,
        batch_size,
        seed,
        strategy,
        distributed,
        backup,
        verbose,
        image_dir,
        logging,
    )
    if not backup.chief:
        shutil.rmtree(backup.directory, ignore_errors=True)
        return {}
    if strategy == "multi-worker":
        # Evaluate and save a single-process copy: ops on the distributed
        # model would wait for the other workers, which have finished.
        model = _single_process_copy(
            model,
            preset,
            seed,
            lmbda,
            precision,
            loaded.num_train,
            epochs,
            batch_size,
        )
    settings = {
        "preset": preset.name,
        "dataset": preset.dataset,
        "data_source": loaded.source,
        "num_train_images": loaded.num_train,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "strategy": strategy,
        "replicas": distributed.num_replicas_in_sync,
        "precision": precision,
        **(
            {
                "image_dir": str(image_dir),
                "crop": crop,
                "crops_per_image": crops_per_image,
                # The size the files were cut to: evaluation cuts the same,
                # whatever the preset's size later becomes.
                "image_shape": list(data.DATASETS[preset.dataset].image_shape),
            }
            if image_dir is not None
            else {}
        ),
        **({"lmbda": model.lmbda} if preset.lossy else {}),
        **({"init_from": str(init_from)} if init_from is not None else {}),
    }
    return _write_run(
        output_dir, model, loaded.test_ds, settings, fitted, seed, figures
    )


def _initial_weights(run_dir, preset) -> list:
    """The weights of the finished run `run_dir`, which must be of `preset`
    (`train`'s `init_from`)."""
    try:
        source, run_config = load_run(run_dir)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--init-from: {error}") from None
    if run_config.get("preset") != preset.name:
        raise ValueError(
            f"--init-from {run_dir} is a {run_config.get('preset')!r} run; its "
            f"weights fit that preset's model only. Expected a {preset.name!r} run."
        )
    return source.get_weights()


def _check_settings(
    preset, epochs, batch_size, replicas, max_train_images, max_test_images
):
    """`(epochs, batch_size)`, the preset's where `None`, or a `ValueError`."""
    epochs = preset.epochs if epochs is None else epochs
    batch_size = preset.batch_size if batch_size is None else batch_size
    for arg, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("max_train_images", max_train_images or 1),
        ("max_test_images", max_test_images or 1),
    ):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"{arg} must be a positive integer. Received: {arg}={value!r}"
            )
    if batch_size % replicas:
        raise ValueError(
            f"batch_size must be a multiple of the {replicas} replicas. Received: "
            f"batch_size={batch_size}"
        )
    return epochs, batch_size


class _Backup:
    """Where `fit` backs up each epoch, and whether there is one to resume.

    The chief's backup is `output_dir/backup/`, another worker's
    `backup-worker-I/`; `overwrite` discards an old backup, and a fresh start
    (no backup) discards an old epoch log.
    """

    def __init__(self, output_dir: Path, overwrite: bool):
        from vae_tf import distribute

        self.chief = distribute.is_chief()
        self.directory = output_dir / "backup"
        if not self.chief:  # each worker backs up its own copy
            self.directory = output_dir / f"backup-worker-{distribute.worker_index()}"
        self.log_path = output_dir / "training_log.jsonl"
        if overwrite and self.directory.exists():
            shutil.rmtree(self.directory)
        if not self.directory.exists() and self.log_path.exists() and self.chief:
            self.log_path.unlink()  # a fresh start: no epochs to resume
        self.resuming = self.directory.exists()

    def callbacks(self) -> list:
        from vae_tf import distribute

        log = self.log_path if self.chief else self.directory / "log.jsonl"
        return [
            distribute.HistoryLog(log),
            EpochBackup(self.directory),
        ]


def _build_model(preset, seed, lmbda, num_train, epochs, batch_size, strategy):
    """The preset's model, built for its images and compiled (in the caller's
    strategy scope and precision policy)."""
    model = preset.build_model(seed, lmbda=lmbda)
    model.build((None, *data.DATASETS[preset.dataset].image_shape))
    preset.compile(
        model, num_train, epochs, batch_size, distributed=strategy != "default"
    )
    return model


def _fit(
    model,
    loaded,
    epochs,
    batch_size,
    seed,
    strategy,
    distributed,
    backup,
    verbose,
    image_dir,
    logging=(),
) -> dict:
    """Fit with epoch timing, the epoch log, backups and the `logging`
    callbacks; `{"seconds", "timer", "resumed"}`. An undecodable file of
    `image_dir` becomes a `ValueError`."""
    from vae_tf import distribute

    timer = EpochTimer()
    callbacks = [timer, *backup.callbacks(), *logging]
    if backup.resuming and backup.chief:
        print(f"Resuming from the backup in {backup.directory}", file=sys.stderr)
    start = time.perf_counter()
    try:
        if strategy == "multi-worker":
            distribute.fit_distributed(
                model,
                distributed,
                distribute.shard_batches(loaded.train_images, batch_size, seed=seed),
                epochs,
                callbacks=callbacks,
                verbose=verbose != 0,
            )
        else:
            model.fit(
                loaded.train_ds,
                epochs=epochs,
                validation_data=loaded.test_ds,
                shuffle=False,  # the dataset reshuffles itself every epoch
                callbacks=[*callbacks, StepProgbarLogger()],
                verbose=verbose,
            )
    except tf.errors.InvalidArgumentError as error:
        if image_dir is None:
            raise
        # The reader's one-line reason, naming the file (vae_tf.image_folders
        # raises it in the pipeline as an assertion).
        found = re.search(r"assertion failed: \[(.+?)\]", error.message)
        reason = found.group(1) if found else error.message.splitlines()[0]
        raise ValueError(
            f"An image in {image_dir} could not be decoded: {reason.rstrip('.')}. "
            "Remove or replace it, then run the same command again to resume."
        ) from None
    return {
        "seconds": time.perf_counter() - start,
        "images_per_second": timer.images_per_second(loaded.num_train),
        "resumed": backup.resuming,
        "history": distribute.HistoryLog.history(backup.log_path)
        if backup.chief
        else None,
    }


def _tensorboard_callbacks(log_dir, loaded, seed, figures) -> list:
    """Keras's TensorBoard logging of each epoch's train and test figures,
    and an `ImageLogger` (the loss terms per step, the KL per dimension; the
    first 8 test images' reconstructions and samples unless not `figures`)."""
    from vae_tf.callbacks import ImageLogger

    first = next(iter(loaded.test_ds.unbatch().batch(8)))
    images, labels = first if isinstance(first, tuple) else (first, None)
    return [
        keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0),
        ImageLogger(
            log_dir,
            images.numpy(),
            labels=None if labels is None else labels.numpy(),
            num_samples=16 if figures else 0,
            seed=seed,
            reconstructions=figures,
        ),
    ]


def _single_process_copy(
    trained, preset, seed, lmbda, precision, num_train, epochs, batch_size
):
    """A copy of a multi-worker model, weights and optimizer state, outside the
    strategy."""
    from vae_tf import distribute

    with distribute.precision_policy(precision):
        model = _build_model(
            preset, seed, lmbda, num_train, epochs, batch_size, "default"
        )
    model.set_weights(trained.get_weights())
    model.optimizer.build(model.trainable_variables)
    for mine, theirs in zip(model.optimizer.variables, trained.optimizer.variables):
        mine.assign(theirs)  # the optimizer state too (step count, moments)
    return model


def _write_run(output_dir, model, test_ds, settings, fitted, seed, figures) -> dict:
    """Evaluate, then write the model, SavedModel, JSON files and (if
    `figures`) figures; return the metrics."""
    test = model.evaluate_dataset(test_ds, seed=0, iwae_k=None)
    write_atomically(output_dir / MODEL_FILE, model.save, suffix=".tmp.keras")
    export_saved_model(model, output_dir / "saved_model")
    history = fitted["history"]
    write_json(output_dir / "history.json", history)
    write_json(output_dir / RUN_FILE, settings)
    metrics = {
        **test,
        **{k: settings[k] for k in ("preset", "dataset", "data_source")},
        **{k: settings[k] for k in ("epochs", "batch_size", "strategy", "precision")},
        "train_seconds": fitted["seconds"],
        "train_images_per_second": fitted["images_per_second"],
        "final_train_loss": float(history["loss"][-1]),
        "resumed": fitted["resumed"],
    }
    write_json(output_dir / METRICS_FILE, metrics)
    if figures:
        write_figures(model, test_ds, history, output_dir, seed=seed)
    return metrics


def write_figures(
    model, test_ds, history: dict, output_dir, seed: int = 0, count: int = 32
):
    """Loss curves, test reconstructions and (if the model generates) samples."""
    output_dir = Path(output_dir)
    originals = next(iter(test_ds.unbatch().batch(count)))
    labels = None
    if isinstance(originals, tuple):
        originals, labels = originals
    plotting.plot_loss_curves(
        output_dir / "loss_curves.png",
        history,
        keys=tuple(model.loss_curves),
        units=model.loss_curves,
    )
    plotting.plot_reconstructions(
        output_dir / "reconstructions.png",
        originals.numpy(),
        np.asarray(model.reconstruct(originals, labels=labels)),
        title="Test images and their reconstructions",
    )
    examples = model.example_samples(64, seed=seed)
    if examples is not None:
        images, title = examples
        plotting.plot_samples(output_dir / "samples.png", np.asarray(images), title)


def load_run(run_dir):
    """Load a run directory's model and `run.json`.

    Returns:
        `(model, run_config)`.

    Raises:
        FileNotFoundError: the directory, its model or its `run.json` is missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"No run directory at {run_dir}. Expected the --output-dir of `vae-tf "
            "train`."
        )
    for name in (MODEL_FILE, RUN_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir} has no {name}: it is not a finished `vae-tf train` run "
                "directory."
            )
    model = keras.saving.load_model(run_dir / MODEL_FILE)
    run_config = json.loads((run_dir / RUN_FILE).read_text())
    return model, run_config


def evaluate_run(
    run_dir,
    iwae_k: int | None = 1000,
    data_dir=None,
    source="auto",
    seed=0,
    print_data_source: bool = False,
    max_test_images: int | None = None,
) -> dict:
    """Evaluate a run directory's model on its preset's test set (for a
    preset of a folder dataset, `photo-lossy`: on the held-out files of the
    folder it trained on, `max_test_images` of them at most).

    Args:
        run_dir: a run directory written by `train`.
        iwae_k: importance samples per image for the IWAE bound (`None`: the
            ELBO only).
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).
        source: data source, see `vae_tf.data`; `"auto"` without a folder
            reads from the source the run was trained on.
        seed: seed of the evaluation's samples.
        print_data_source: print one line on stderr naming the test set's
            source and size.
        max_test_images: evaluate on the first this many test images only.

    Returns:
        `vae_tf.evaluation.evaluate`'s figures (`test_negative_elbo_nats`,
        `test_nll_iwae_nats`, ...).
    """
    model, run_config = load_run(run_dir)
    preset = presets.get(run_config["preset"])
    if max_test_images is not None and (
        not isinstance(max_test_images, int) or max_test_images <= 0
    ):
        raise ValueError(
            "max_test_images must be a positive integer. Received: "
            f"max_test_images={max_test_images!r}"
        )
    if data.DATASETS[preset.dataset].folder:  # the run's held-out files
        test_ds, files = _held_out_files(run_config, preset, max_test_images)
        line = (
            f"Data: {len(files):,} held-out image files under "
            f"{run_config['image_dir']} (cut as in training)."
        )
    else:
        source = _run_source(preset, run_config, data_dir, source)
        images, labels = (
            array[:max_test_images]
            for array in data.load_arrays(preset.dataset, "test", data_dir, source)
        )
        line = _data_line(
            preset.dataset, source, data_dir, f"{len(images):,} test images"
        )
        test_ds = _test_pipeline(preset, images, labels)
    if print_data_source:
        print(line, file=sys.stderr, flush=True)
    return model.evaluate_dataset(test_ds, seed=seed, iwae_k=iwae_k)


def _held_out_files(run_config, preset, max_files=None) -> tuple:
    """`(dataset, files)`: the test set of a run trained on an image folder,
    its held-out files (the first `max_files`) cut as in training
    (`_folder_test_dataset`)."""
    image_dir = run_config["image_dir"]
    _, files = image_folders.split_files(image_folders.list_images(image_dir))
    files = files[:max_files]
    crop = run_config.get("crop", "fit")
    dataset = _folder_test_dataset(
        files,
        tuple(run_config.get("image_shape", data.DATASETS[preset.dataset].image_shape)),
        crop,
        run_config.get("crops_per_image", 1),
    )
    return dataset, files


def _run_source(preset, run_config, data_dir, source) -> str:
    """The data source to read a run's dataset from: `"auto"` without a
    folder reads from the source the run was trained on."""
    if source == "auto" and not (data_dir or os.environ.get(data.DATA_DIR_ENV)):
        source = run_config.get("data_source", "auto")
    return data.resolve_source(preset.dataset, source, data_dir)


def run_test_images(
    run_config: dict, count: int, data_dir=None, source="auto"
) -> tuple:
    """The first `count` test images of the data a run was trained on.

    A run trained on a folder (`image_dir` in its `run.json`) gives that
    folder's held-out files, resized and cropped as in training; otherwise its
    preset's test set, binarised once (seed 0) where the preset's test set is.

    Args:
        run_config: a run's `run.json` (`load_run`).
        count: how many images, at most.
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).
        source: data source, see `vae_tf.data`.

    Returns:
        `(images, labels, line)`: float32 `(N, height, width, channels)` in
        [0, 1], int labels `(N,)` (or `None` for a folder), and one line naming
        where the images come from.

    Raises:
        vae_tf.data.DataUnavailableError: no source can provide the dataset.
        ValueError, FileNotFoundError: the run's image folder cannot be read.
    """
    preset = presets.get(run_config["preset"])
    image_dir = run_config.get("image_dir")
    if image_dir is not None:
        batches, files = _held_out_files(run_config, preset, count)
        images = np.concatenate([np.asarray(batch) for batch in batches])[:count]
        line = f"{len(files):,} held-out image files under {image_dir}"
        if run_config.get("crop", "fit") == "random":
            line = f"{len(images):,} random crops of " + line
        return images, None, line
    source = _run_source(preset, run_config, data_dir, source)
    images, labels = data.load_arrays(preset.dataset, "test", data_dir, source)
    images, labels = images[:count], labels[:count]
    if preset.binarized_test:
        images = data.binarize(images, seed=0)  # 0.0 or 1.0
    else:
        images = images.astype("float32") / 255.0
    line = _data_line(preset.dataset, source, data_dir, f"{len(images):,} test images")
    return images, labels.astype("int64"), line


def calibration_images(
    preset_name: str,
    count: int = 500,
    data_dir=None,
    source="auto",
    print_data_source: bool = False,
) -> np.ndarray:
    """The first `count` training images of a preset's dataset, to calibrate on.

    Full-integer TFLite quantisation (`vae_tf.tflite.export_tflite` with
    `"int8"` or `"int16x8"`) measures the activations' ranges on these.

    Args:
        preset_name: a name from `vae_tf.presets.PRESETS`.
        count: images (all of them if the split has fewer).
        data_dir: folder of keras-layout `.npz` files (else `$VAE_TF_DATA_DIR`).
        source: data source, see `vae_tf.data`.
        print_data_source: print one line on stderr naming the images' source.

    Returns:
        float32 images in [0, 1], `(count, height, width, channels)`.
    """
    preset = presets.get(preset_name)
    source = data.resolve_source(preset.dataset, source, data_dir)
    images, _ = data.load_arrays(preset.dataset, "train", data_dir, source)
    chosen = images[:count]
    if print_data_source:
        sizes = (
            f"the first {len(chosen):,} of {len(images):,} train images, for "
            "calibration"
        )
        print(
            _data_line(preset.dataset, source, data_dir, sizes),
            file=sys.stderr,
            flush=True,
        )
    return chosen.astype("float32") / 255.0


def write_samples(
    model,
    out_dir,
    num_samples: int,
    seed: int = 0,
    temperature: float = 1.0,
    labels=None,
    batch_size: int = 256,
    overwrite: bool = False,
) -> list:
    """Draw `num_samples` images and write each as its own PNG file.

    Files are named `sample_00000.png`, ... (`sample_00000_class3.png` with
    labels), drawn in batches of `batch_size` whose seeds derive from `seed`,
    so the same seed writes the same files. Each file is written to a
    temporary name and renamed, so none is ever half-written.

    Args:
        model: a trained `vae_tf.VAE` (or `ConditionalVAE`).
        out_dir: the folder to write (created if needed).
        num_samples: number of images.
        seed: seed of the draws.
        temperature: the prior's scale.
        labels: a conditional model's classes: one int for all, or one per image.
        batch_size: images decoded at once.
        overwrite: replace sample files already in `out_dir`.

    Returns:
        The written paths.

    Raises:
        FileExistsError: `out_dir` already holds files of these names.
        ValueError: bad labels (see `ConditionalVAE.check_labels`).
    """
    from vae_tf._random import derive

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(
            f"--output-dir must be a directory. Received: {out_dir}"
        )
    if labels is not None:
        labels = np.asarray(labels)
        labels = np.full((num_samples,), labels) if labels.ndim == 0 else labels
        model.check_labels(labels, num_samples)  # every label, before any drawing
    width = max(5, len(str(num_samples - 1)))
    names = [
        f"sample_{i:0{width}d}"
        + ("" if labels is None else f"_class{int(labels[i])}")
        + ".png"
        for i in range(num_samples)
    ]
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {len(existing)} of these sample files (e.g. "
            f"{existing[0]}). Choose another --output-dir or pass --overwrite."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for batch, start in enumerate(range(0, num_samples, batch_size)):
        stop = min(start + batch_size, num_samples)
        images = np.asarray(
            model.sample(
                stop - start,
                temperature=temperature,
                seed=derive(seed, batch),
                labels=None if labels is None else labels[start:stop],
            )
        )
        for name, image in zip(names[start:stop], images):
            plotting.save_image(out_dir / name, image)
            paths.append(out_dir / name)
    return paths
