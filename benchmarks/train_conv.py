"""Benchmark: train a convolutional preset; print its test likelihood as one JSON line.

    python benchmarks/train_conv.py --preset mnist-conv [--epochs N] [--iwae-k K]
    python benchmarks/train_conv.py --preset cifar10-conv [--epochs N] [--iwae-k K]

Trains the preset with its defaults (or `--epochs`) on the full training set
(`--data-dir` or `$VAE_TF_DATA_DIR`), then evaluates the test set: the
negative ELBO on all test images and, with `--iwae-k` (default 1000), the
importance-weighted NLL estimate on the first `--iwae-images` (default 1000)
with its standard error, in nats per image and bits per dimension. MNIST is
evaluated on the test set binarised once (seed 0); CIFAR-10 on its 8-bit
pixels.
`train_images_per_second` is measured over the epochs after the first.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import vae_tf  # noqa: E402
from vae_tf import data, presets, runs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mnist-conv")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument(
        "--iwae-images",
        type=int,
        default=1000,
        help="test images for the IWAE estimate (a conv decoder makes k=1000 on "
        "all 10,000 take over an hour on 2 cores); the ELBO uses all of them",
    )
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--save", help="also save the trained model (.keras) to this path"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    preset = presets.get(args.preset)
    epochs = args.epochs or preset.epochs
    train_images, _ = data.load_arrays(preset.dataset, "train", data_dir=args.data_dir)
    train_ds = data.make_dataset(
        train_images, batch_size=preset.batch_size, shuffle=True, seed=args.seed
    )
    test_ds = runs.test_dataset(preset, args.data_dir)

    keras.utils.set_random_seed(args.seed)
    model = preset.build_model(seed=args.seed)
    preset.compile(model, len(train_images), epochs, preset.batch_size)
    timer = vae_tf.callbacks.EpochTimer()
    start = time.perf_counter()
    model.fit(train_ds, epochs=epochs, shuffle=False, callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - start
    if args.save:
        model.save(args.save)
    start = time.perf_counter()
    results = vae_tf.evaluate(model, test_ds, iwae_k=None, seed=0)
    if args.iwae_k:
        iwae_ds = runs.test_dataset(preset, args.data_dir).unbatch()
        iwae = vae_tf.evaluate_iwae(
            model, iwae_ds.take(args.iwae_images).batch(100), args.iwae_k, seed=0
        )
        results.update(
            test_nll_iwae_nats=iwae["nll_nats"],
            test_nll_iwae_bits_per_dim=iwae["bits_per_dim"],
            test_nll_iwae_standard_error_nats=iwae["standard_error_nats"],
            iwae_k=args.iwae_k,
            iwae_images=iwae["num_images"],
        )
    print(
        json.dumps(
            {
                "benchmark": "train_conv",
                "preset": preset.name,
                "dataset": preset.dataset,
                "epochs": epochs,
                "train_seconds": round(train_seconds, 1),
                "train_images_per_second": round(
                    timer.images_per_second(len(train_images)), 1
                ),
                "evaluation_seconds": round(time.perf_counter() - start, 1),
                **{
                    k: round(v, 4) if isinstance(v, float) else v
                    for k, v in results.items()
                },
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )


if __name__ == "__main__":
    main()
