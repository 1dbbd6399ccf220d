"""Lossless compression of the MNIST test set: bits-back with a VAE vs classical codecs.

Prints one JSON line per codec: `codec`, `images`, `bytes` (whole files,
headers included), `bits_per_dim` (8 x bytes / pixel values) and, for the
VAE, the amortised rate without the initial bits (`net_bits_per_dim`), the
model's negative ELBO in bits/dim on the same images, the ratio of the two,
images/s and megapixels/s to compress and to decompress, and whether the
round trip was bit-exact: one line per arithmetic, `fixed-point` (the
default: files decode on any machine) and `float` (the earlier one, decodes
only where it was written), so the cost of portability is measured in one
run.

    python benchmarks/compress_lossless.py --run-dir RUN --data-dir DIR

`RUN` is a run directory of the `mnist-8bit` preset
(`vae-tf train --preset mnist-8bit --output-dir RUN`).
"""

import argparse
import bz2
import gzip
import io
import json
import lzma
import time

import numpy as np
from PIL import Image

from vae_tf import data, runs
from vae_tf.compression import BitsBackCodec
from vae_tf.compression.baselines import mosaic


def emit(**fields):
    print(json.dumps(fields), flush=True)


def png_bytes(image, **options) -> int:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **options)
    return len(buffer.getvalue())


def classical(images):
    grey = images[..., 0]
    dims = grey.size
    raw = grey.tobytes()
    for name, compress in [
        ("gzip", lambda b: gzip.compress(b, compresslevel=9)),
        ("bz2", lambda b: bz2.compress(b, compresslevel=9)),
        ("lzma", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ]:
        size = len(compress(raw))
        emit(codec=name, images=len(grey), bytes=size, bits_per_dim=8 * size / dims)
    size = sum(png_bytes(g, format="PNG", optimize=True) for g in grey)
    emit(
        codec="png_per_image",
        images=len(grey),
        bytes=size,
        bits_per_dim=8 * size / dims,
    )
    size = sum(
        png_bytes(g, format="WEBP", lossless=True, quality=100, method=6) for g in grey
    )
    emit(
        codec="webp_lossless_per_image",
        images=len(grey),
        bytes=size,
        bits_per_dim=8 * size / dims,
    )
    tiles = mosaic(grey, 100)
    size = png_bytes(tiles, format="WEBP", lossless=True, quality=100, method=6)
    emit(
        codec="webp_lossless_mosaic",
        images=len(grey),
        bytes=size,
        bits_per_dim=8 * size / dims,
    )
    size = png_bytes(tiles, format="PNG", optimize=True)
    emit(codec="png_mosaic", images=len(grey), bytes=size, bits_per_dim=8 * size / dims)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="an mnist-8bit run directory")
    parser.add_argument("--data-dir")
    parser.add_argument("--num-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--skip-classical", action="store_true")
    parser.add_argument(
        "--arithmetic",
        nargs="+",
        default=["fixed-point", "float"],
        choices=["fixed-point", "float"],
    )
    args = parser.parse_args()

    images, _ = data.load_arrays("mnist", "test", data_dir=args.data_dir)
    images = images[: args.num_images]
    if not args.skip_classical:
        classical(images)

    model, run_config = runs.load_run(args.run_dir)

    # The model's negative ELBO on the same images, one z sample per image.
    x = images.astype("float32") / 255.0
    total = 0.0
    for i in range(0, len(x), 500):
        reconstruction, kl = model.compute_terms(x[i : i + 500], seed=i)
        total += float(np.sum(reconstruction + kl))
    elbo_bpd = total / np.log(2.0) / images.size
    megapixels = images.shape[0] * images.shape[1] * images.shape[2] / 1e6

    for arithmetic in args.arithmetic:
        codec = BitsBackCodec(model, batch_size=args.batch_size, arithmetic=arithmetic)
        # Trace the networks once, outside the timing.
        codec.decompress_bytes(model, codec.compress(images[:100]))
        start = time.perf_counter()
        encoded = codec.encode(images)
        stats = encoded.stats
        encode_seconds = time.perf_counter() - start
        data_bytes = codec.pack(encoded)
        start = time.perf_counter()
        decoded = BitsBackCodec.decompress_bytes(model, data_bytes)
        decode_seconds = time.perf_counter() - start
        emit(
            codec="bits_back_vae",
            arithmetic=arithmetic,
            preset=run_config.get("preset"),
            images=len(images),
            bytes=len(data_bytes),
            bits_per_dim=8 * len(data_bytes) / images.size,
            net_bits_per_dim=stats["bits_per_dim"],
            initial_bits=stats["seed_bits"],
            header_bytes=len(data_bytes) - 4 * len(encoded.payload),
            negative_elbo_bits_per_dim=elbo_bpd,
            rate_over_elbo=stats["bits_per_dim"] / elbo_bpd,
            compress_images_per_s=len(images) / encode_seconds,
            decompress_images_per_s=len(images) / decode_seconds,
            compress_megapixels_per_s=megapixels / encode_seconds,
            decompress_megapixels_per_s=megapixels / decode_seconds,
            bit_exact=bool(np.array_equal(decoded, images)),
        )


if __name__ == "__main__":
    main()
