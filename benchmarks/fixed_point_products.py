"""Where the portable lossy decoder's time goes: exact products against float32.

The fixed-point arithmetic (`vae_tf.compression.fixed_point`) runs every
convolution as an exact sum: the first fixed point (`"grid"` products) in
TensorFlow's float64 kernels, the default (`"int16"`) as float32 products
of 8-bit digits where XLA fuses their split (else one float64 product of
16-bit integers); the float path runs the same convolutions in float32
(oneDNN on x86). This script times, for the `photo-lossy` synthesis `g_s`
at both widths (64 filters below `presets.PHOTO_WIDE_LMBDA`, 96 from there
up) and one photo's latent map (481x321 pixels by default, BSD68's size):

- each transposed convolution of `g_s` alone, as `tf.nn.conv2d_transpose`
  in float32 and in float64 (the same shapes, random weights), and in
  float64 as four regular convolutions, one per output phase (the
  sub-pixel form of a stride-2 transposed convolution, which TensorFlow's
  float64 `Conv2D` might run faster than its transposed kernel; checked to
  give the same, exact sums);
- the whole `g_s`: float32 (Keras), and fixed point with each rule of
  products, as a plain TensorFlow graph and with its elementwise runs fused
  by XLA (what a long job switches to, `FixedPointNetwork.XLA_AFTER`);
- matrix products of the largest layer's size at the default photo size
  (11264 input pixels; its output phases as one product: 864 terms, 384
  outputs per input pixel) in float32 and float64,
  TensorFlow's and numpy's (OpenBLAS): what the machine's float64
  arithmetic can give at best (`gflops`).

Untrained weights: the time does not depend on their values. Prints one
JSON line per measurement: `filters`, `what`, `shape` (the layer's input),
`float32_ms` / `float64_ms` / `float64_phases_ms` or `ms` (the matrix
products: `what`, `ms`, `gflops`), the best of `--repeats` calls after one
warm-up.

    python benchmarks/fixed_point_products.py [--height 481 --width 321]
"""

import argparse
import json
import time

import keras
import numpy as np
import tensorflow as tf

from vae_tf import presets
from vae_tf.compression.fixed_point import PRODUCTS, FixedPointNetwork


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


def phase_convolution(x, kernel, stride: int):
    """`tf.nn.conv2d_transpose(x, kernel, ..., stride, "SAME")` as `stride**2`
    regular convolutions, one per output phase (rows and columns congruent
    to `r` modulo `stride`), interleaved. `kernel`: (k, k, out, in) numpy."""
    size, out_channels = kernel.shape[0], kernel.shape[2]
    batch, rows, columns, _ = x.shape
    pad = max(size - stride, 0) // 2  # the forward convolution's, before
    taps = -(-size // stride)  # of the longest phase
    # Output row q * stride + r - pad sums x[q - m] * kernel[r + m * stride]:
    # a correlation of x, padded with taps - 1 zeros before, with the phase's
    # taps reversed.
    q_rows = (stride * rows - 1 + pad) // stride + 1
    q_columns = (stride * columns - 1 + pad) // stride + 1
    padded = tf.pad(
        x,
        [
            [0, 0],
            [taps - 1, max(q_rows - rows, 0)],
            [taps - 1, max(q_columns - columns, 0)],
            [0, 0],
        ],
    )
    phases = []
    for r in range(stride):
        row = []
        for c in range(stride):
            sub = kernel[r::stride, c::stride][::-1, ::-1]  # (m, n, out, in)
            m, n = sub.shape[:2]
            part = padded[:, taps - m :, taps - n :, :]
            weights = tf.constant(np.transpose(sub, (0, 1, 3, 2)), x.dtype)
            out = tf.nn.conv2d(part, weights, 1, "VALID")
            row.append(out[:, :q_rows, :q_columns])
        phases.append(tf.stack(row, axis=3))  # (batch, q, q, c, out)
    out = tf.reshape(
        tf.stack(phases, axis=2),  # (batch, q, r, q, c, out)
        [batch, q_rows * stride, q_columns * stride, out_channels],
    )
    return out[:, pad : pad + stride * rows, pad : pad + stride * columns]


def _bound(function, *args):
    """`function(*args)` as a `tf.function` of no arguments (numpy arguments
    stay numpy: bound in a closure, not traced)."""
    return tf.function(lambda: function(*args))


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
            # Integer inputs and weights: the float64 sums are exact, so any
            # correct formulation gives the same bits.
            x = tf.round(tf.cast(h, tf.float64) * 2**8)
            integer_kernel = np.round(kernel * 2**12)
            w = tf.constant(integer_kernel, tf.float64)
            direct = tf.nn.conv2d_transpose(x, w, out_shape, 2, "SAME")
            phased = phase_convolution(x, integer_kernel, 2)
            if not np.array_equal(direct.numpy(), phased.numpy()):
                raise AssertionError("the phase form differs from the direct one")
            times["float64_phases"] = best_ms(
                _bound(phase_convolution, x, integer_kernel, 2), repeats
            )
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
                float64_phases_ms=times["float64_phases"],
                ratio=round(times["float64"] / times["float32"], 2),
            )
        h = stage(h)

    spec = [tf.TensorSpec([None, None, None, model.latent_channels])]
    shape = list(y.shape)
    emit(
        filters=filters,
        what="g_s, float32",
        shape=shape,
        ms=best_ms(lambda: synthesis(y).numpy(), repeats),
    )
    for products in PRODUCTS:
        network = FixedPointNetwork(synthesis, spec, products=products)
        emit(
            filters=filters,
            what=f"g_s, fixed point, {products} products",
            shape=shape,
            ms=best_ms(lambda network=network: network(y), repeats),
        )
        network.XLA_AFTER, network.XLA_MIN_BATCH = 0, 1  # fused from the first call
        emit(
            filters=filters,
            what=f"g_s, fixed point, {products} products, elementwise runs "
            "fused by XLA",
            shape=shape,
            ms=best_ms(lambda network=network: network(y), repeats),
        )


def gemm_throughput(repeats: int):
    """GFLOP/s of a (11264 x 864) by (864 x 384) product: the largest
    transposed convolution at 96 filters, its four phases as one product."""
    rng = np.random.default_rng(0)
    m, k, n = 11264, 864, 384
    for dtype in (np.float32, np.float64):
        a = rng.normal(size=(m, k)).astype(dtype)
        b = rng.normal(size=(k, n)).astype(dtype)
        ta, tb = tf.constant(a), tf.constant(b)
        matmul = tf.function(lambda ta=ta, tb=tb: tf.linalg.matmul(ta, tb))
        product = lambda a=a, b=b: a @ b  # noqa: E731
        for library, function in (("tensorflow", matmul), ("numpy", product)):
            ms = best_ms(function, repeats)
            emit(
                what=f"matmul {m}x{k} by {k}x{n}, {np.dtype(dtype).name}, {library}",
                ms=ms,
                gflops=round(2 * m * k * n / ms / 1e6, 1),
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
    gemm_throughput(args.repeats)


if __name__ == "__main__":
    main()
