"""Benchmark: train a dense MNIST VAE; print images/s and test -ELBO as one JSON line.

    python benchmarks/train_dense_mnist.py [--epochs N] [--preset mnist-dense]

Without `--preset` it trains the reference architecture of the speed target
(784-512-256 encoder, 32-d latent, mirrored decoder, Bernoulli with dynamic
binarisation, Adam 1e-3, batch 128). With `--preset` it trains that preset
with its own defaults. Data is read like the rest of the package
(`--data-dir` or `$VAE_TF_DATA_DIR`, else tensorflow-datasets / bundled).

`train_images_per_second` is measured over whole epochs after the first
(which includes tracing and XLA compilation), training steps only; the
per-epoch figures are printed too, since shared machines are noisy.
`test_negative_elbo_nats` is the negative ELBO per image on the test set binarised
once with seed 0. `--no-jit`, `--steps-per-execution 1` and
`--plain-pipeline` (per-image `from_tensor_slices` / shuffle / batch with
tf.data's autotuner, as in most tutorials) switch the speed levers off one at
a time.
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import vae_tf  # noqa: E402
from vae_tf import data, presets  # noqa: E402

REFERENCE = dataclasses.replace(
    presets.get("mnist-dense"),
    name="reference",
    description="784-512-256-32 dense VAE, Adam 1e-3, batch 128",
    model_fn=lambda seed: presets.dense_mnist_vae(32, (512, 256), "relu", seed=seed),
    batch_size=128,
    learning_rate=1e-3,
    schedule="constant",
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--preset", help="train this preset instead of the reference")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--no-jit", action="store_true", help="train without XLA")
    parser.add_argument(
        "--steps-per-execution", type=int, help="steps per compiled call"
    )
    parser.add_argument(
        "--plain-pipeline", action="store_true", help="a per-image tf.data pipeline"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    preset = presets.get(args.preset) if args.preset else REFERENCE
    if args.no_jit:
        preset = dataclasses.replace(preset, jit_compile=False)
    if args.steps_per_execution:
        preset = dataclasses.replace(
            preset, steps_per_execution=args.steps_per_execution
        )
    batch_size = args.batch_size or preset.batch_size

    train_images, _ = data.load_arrays(preset.dataset, "train", data_dir=args.data_dir)
    test_images, _ = data.load_arrays(preset.dataset, "test", data_dir=args.data_dir)
    if args.plain_pipeline:
        train_ds = (
            tf.data.Dataset.from_tensor_slices(train_images)
            .shuffle(len(train_images), seed=args.seed)
            .batch(batch_size)
            .map(lambda x: tf.cast(x, tf.float32) / 255.0, tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
    else:
        train_ds = data.make_dataset(
            train_images, batch_size=batch_size, shuffle=True, seed=args.seed
        )
    test_ds = data.make_dataset(data.binarize(test_images, seed=0), batch_size=500)

    keras.utils.set_random_seed(args.seed)
    model = preset.build_model(seed=args.seed)
    preset.compile(model, len(train_images), args.epochs, batch_size)
    timer = vae_tf.callbacks.EpochTimer()
    start = time.perf_counter()
    model.fit(train_ds, epochs=args.epochs, shuffle=False, callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - start
    test = vae_tf.evaluate_elbo(model, test_ds, seed=0)
    print(
        json.dumps(
            {
                "benchmark": "train_dense_mnist",
                "preset": preset.name,
                "epochs": args.epochs,
                "batch_size": batch_size,
                "jit_compile": preset.jit_compile,
                "steps_per_execution": preset.steps_per_execution,
                "pipeline": "plain" if args.plain_pipeline else "vae_tf",
                "num_train_images": len(train_images),
                "train_images_per_second": round(
                    timer.images_per_second(len(train_images))
                ),
                "epoch_images_per_second": [
                    round(len(train_images) / s) for s in timer.epoch_seconds
                ],
                "train_seconds": round(train_seconds, 1),
                "test_negative_elbo_nats": round(test["negative_elbo_nats"], 3),
                "test_kl_nats": round(test["kl_nats"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
