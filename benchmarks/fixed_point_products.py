"""Where the portable lossy decoder's time goes: float64 products against float32.

The fixed-point arithmetic (`vae_tf.compression.fixed_point`) runs every
convolution as an exact float64 sum, in TensorFlow's float64 kernels; the
float path runs the same convolutions in float32 (oneDNN on x86). This
script times, for the `photo-lossy` synthesis `g_s` at both widths (64
filters below `presets.PHOTO_WIDE_LMBDA`, 96 from there up) and one photo's
latent map (481x321 pixels by default, BSD68's size):

- each transposed convolution of `g_s` alone, as `tf.nn.conv2d_transpose`
  in float32 and in float64 (the same shapes, random weights);
- the whole `g_s`: float32 (Keras), fixed point as a plain TensorFlow
  graph, and fixed point with its elementwise runs fused by XLA (what a
  long job switches to, `FixedPointNetwork.XLA_AFTER`).

Untrained weights: the time does not depend on their values. Prints one
JSON line per measurement: `filters`, `what`, `shape` (the layer's input),
`float32_ms` / `float64_ms` or `ms`, the best of `--repeats` calls after
one warm-up.

    python benchmarks/fixed_point_products.py [--height 481 --width 321]
"""

import argparse
import json
import time

import keras
import numpy as np
import tensorflow as tf

from vae_tf import presets
from vae_tf.compression.fixed_point import FixedPointNetwork


def emit(**fields):
    print(json.dumps(fields), flush=True)


def best_ms(function, repeats: int) -> float:
    function()  # warm-up: tracing, first allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return round(1000 * min(times), 2)


def measure(lmbda: float, height: int, width: int, repeats: int):
    """The JSON lines of one `photo-lossy` width (the one of `lmbda`)."""
    keras.utils.set_random_seed(0)
    model = presets.get("photo-lossy").build_model(0, lmbda=lmbda)
    # The codec pads an image to a multiple of the model's downsampling
    # (the hyperprior's included); g_s upsamples by 2 a layer.
    factor, upsampling = model.downsampling, 2**model.synthesis.num_layers
    latent = tuple(-(-n // factor) * factor // upsampling for n in (height, width))
    rng = np.random.default_rng(0)
    y = rng.normal(0, 2, (1, *latent, model.latent_channels)).astype("float32")
    synthesis = model.synthesis
    synthesis(y)  # builds it
    filters = synthesis.filters

    h = tf.constant(y)
    for stage in synthesis.stages:
        if isinstance(stage, keras.layers.Conv2DTranspose):
            kernel = stage.kernel.numpy()  # (5, 5, out, in)
            batch, rows, columns, _ = h.shape
            out_shape = [batch, 2 * rows, 2 * columns, kernel.shape[2]]
            times = {}
            for dtype in (tf.float32, tf.float64):
                x, w = tf.cast(h, dtype), tf.constant(kernel, dtype)
                conv = tf.function(
                    lambda x=x, w=w, s=out_shape: tf.nn.conv2d_transpose(
                        x, w, s, 2, "SAME"
                    )
                )
                times[dtype.name] = best_ms(conv, repeats)
            emit(
                filters=filters,
                what=f"{stage.name} (5x5, stride 2)",
                shape=list(h.shape),
                float32_ms=times["float32"],
                float64_ms=times["float64"],
                ratio=round(times["float64"] / times["float32"], 2),
            )
        h = stage(h)

    spec = [tf.TensorSpec([None, None, None, model.latent_channels])]
    network = FixedPointNetwork(synthesis, spec)
    shape = list(y.shape)
    emit(
        filters=filters,
        what="g_s, float32",
        shape=shape,
        ms=best_ms(lambda: synthesis(y).numpy(), repeats),
    )
    emit(
        filters=filters,
        what="g_s, fixed point",
        shape=shape,
        ms=best_ms(lambda: network(y), repeats),
    )
    network.XLA_AFTER, network.XLA_MIN_BATCH = 0, 1  # fused from the first call
    emit(
        filters=filters,
        what="g_s, fixed point, elementwise runs fused by XLA",
        shape=shape,
        ms=best_ms(lambda: network(y), repeats),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=481)
    parser.add_argument("--width", type=int, default=321)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wide = presets.PHOTO_WIDE_LMBDA
    for lmbda in (wide / 2, wide):  # 64 filters, then 96
        measure(lmbda, args.height, args.width, args.repeats)


if __name__ == "__main__":
    main()
