"""Seconds to draw samples from the autoregressive presets.

Autoregressive models draw pixel by pixel: a PixelCNN decoder one network
pass per pixel, the `LocalAutoregressiveGaussian` (mnist-8bit) a few
multiply-adds per pixel, the VQ-VAE's code prior one pass per code. Since
0.2 each draw runs as one compiled loop (before, the loop dispatched its ops
one by one from Python). Untrained models: a draw costs the same trained or
not. Compare versions by running this script with each on one machine, one
after the other.

Prints one JSON line per preset and count: `preset`, `num_samples`,
`seconds` (the first call, tracing included: what `vae-tf sample` pays) and
`repeat_seconds` (the best of `--repeats` further calls).

    python benchmarks/sampling_speed.py [--presets NAME ...] [--counts 1 8]
"""

import argparse
import json
import time

import keras

from vae_tf import data, presets

DEFAULT_PRESETS = ("mnist-8bit", "mnist-pixelcnn", "mnist-vqvae", "cifar10-pixelcnn")


def emit(**fields):
    print(json.dumps(fields), flush=True)


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    parser.add_argument("--counts", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for name in args.presets:
        preset = presets.get(name)
        keras.utils.set_random_seed(0)
        model = preset.build_model(0)
        model.build((None, *data.DATASETS[preset.dataset].image_shape))
        for count in args.counts:
            labels = [3] * count if preset.conditional else None

            def draw(model=model, count=count, labels=labels):
                model.sample(count, seed=0, labels=labels)

            first = timed(draw)
            repeat = min(timed(draw) for _ in range(args.repeats))
            emit(
                preset=name,
                num_samples=count,
                seconds=round(first, 3),
                repeat_seconds=round(repeat, 3),
            )


if __name__ == "__main__":
    main()
