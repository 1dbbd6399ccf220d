"""Compress the model itself: TFLite sizes and what each quantisation costs.

For each of float32 (`none`), `float16`, `dynamic` (int8 weights) and
`int8` (int8 weights and activations, calibrated on 500 training images),
converts a run's encoder and decoder, runs them with the LiteRT interpreter
on the test set and prints one JSON line: `quantize`, `bytes` (encoder +
decoder files), `size_ratio` (float32 bytes / these bytes), the test
negative ELBO in nats per image with the Keras model and with the TFLite
networks (the same `eps` for both), their relative change, and the PSNR of
reconstructions (the likelihood's mean at the posterior mean) on the first
`--psnr-images` test images.

    python benchmarks/model_compression.py --run-dir RUN --data-dir DIR
"""

import argparse
import json
import tempfile

import numpy as np

from vae_tf import data, presets, runs
from vae_tf.evaluation import psnr
from vae_tf.tflite import (
    QUANTIZATIONS,
    export_tflite,
    keras_pair,
    lite_pair,
    negative_elbo,
)


def reconstructions(model, x, encode, decode, batch=500):
    out = []
    for i in range(0, len(x), batch):
        z_mean, _ = encode(x[i : i + batch])
        out.append(np.asarray(model.likelihood.mean(decode(z_mean))))
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--num-images", type=int, default=10000)
    parser.add_argument("--psnr-images", type=int, default=1000)
    args = parser.parse_args()

    model, run_config = runs.load_run(args.run_dir)
    preset = presets.get(run_config["preset"])
    train, _ = data.load_arrays(preset.dataset, "train", data_dir=args.data_dir)
    test, _ = data.load_arrays(preset.dataset, "test", data_dir=args.data_dir)
    calibration = train[:500].astype(np.float32) / 255.0
    x = test[: args.num_images].astype(np.float32) / 255.0
    eps = (
        np.random.default_rng(0)
        .normal(size=(len(x), *model.latent_shape))
        .astype(np.float32)
    )

    keras_encode, keras_decode = keras_pair(model)
    reference = negative_elbo(model, keras_encode, keras_decode, x, eps)
    reference_psnr = psnr(
        reconstructions(model, x[: args.psnr_images], keras_encode, keras_decode),
        x[: args.psnr_images],
    )
    sizes = {}
    for quantize in QUANTIZATIONS:
        with tempfile.TemporaryDirectory() as folder:
            paths = export_tflite(model, folder, quantize, images=calibration)
            size = sum(path.stat().st_size for path in paths.values())
            encode, decode = lite_pair(paths)
            value = negative_elbo(model, encode, decode, x, eps)
            value_psnr = psnr(
                reconstructions(model, x[: args.psnr_images], encode, decode),
                x[: args.psnr_images],
            )
        sizes[quantize] = size
        print(
            json.dumps(
                dict(
                    preset=run_config["preset"],
                    quantize=quantize,
                    bytes=size,
                    size_ratio=sizes["none"] / size,
                    images=len(x),
                    keras_negative_elbo_nats=reference,
                    tflite_negative_elbo_nats=value,
                    elbo_relative_change=(value - reference) / reference,
                    keras_psnr_db=reference_psnr,
                    tflite_psnr_db=value_psnr,
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
