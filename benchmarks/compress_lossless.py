"""Lossless compression: bits-back with a VAE vs classical codecs, on one set of images.

Prints one JSON line per codec: `codec`, `images`, `bytes` (whole files,
headers included), `bits_per_dim` (8 x bytes / pixel values) and, for the
VAE, the amortised rate without the initial bits (`net_bits_per_dim`), the
model's negative ELBO in bits/dim on the same images (model-sized images),
the ratio of the two, images/s and megapixels/s to compress and to
decompress, and whether the round trip was bit-exact: one line per
arithmetic, `fixed-point` (the default: files decode on any machine) and
`float` (the earlier one, decodes only where it was written), so the cost
of portability is measured in one run.

Speeds are steady-state throughput: the images are compressed twice and the
second pass is timed, then decompressed (in the same process). What a
process pays once (tracing the networks, and for the fixed point compiling
their elementwise runs with XLA when a job is long) is reported apart:
`first_compress_images_per_s` is the first pass's rate, and `setup_s` the
first pass's time over the second's; `same_payload_twice` says whether
the two passes wrote the same words.

    python benchmarks/compress_lossless.py --run-dir RUN --data-dir DIR
    python benchmarks/compress_lossless.py --dataset cifar10 --run-dir RUN \
        --data-dir DIR
    python benchmarks/compress_lossless.py --dataset photos --run-dir RUN \
        --image-dir photos/test

`--dataset mnist` (default): the MNIST test set at 8 bits, binarised once
(seed 0) for a run whose preset evaluates on binary digits (`mnist-dense`);
`RUN` from `vae-tf train --preset mnist-8bit`. `--dataset cifar10`: the
CIFAR-10 test set (`cifar10-lossless`), with the classical codecs both one
file per image and on 8x8 mosaics (256x256), and one line for a single
image coded alone (what the initial bits cost). `--dataset photos`: every
PNG/JPEG file in `--image-dir`, each coded whole (the VAE as tiles of its
size), the classical codecs one file per photo.
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

from vae_tf import data, image_folders, presets, runs
from vae_tf.compression import BitsBackCodec
from vae_tf.compression.baselines import mosaic
from vae_tf.images import read_images


def emit(**fields):
    print(json.dumps(fields), flush=True)


def png_bytes(image, **options) -> int:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **options)
    return len(buffer.getvalue())


def _per_image(files, name, options, dims, count):
    """One file per image of `files` (images or mosaics of `count` images)."""
    size = sum(png_bytes(_plane(image), **options) for image in files)
    emit(codec=name, images=count, bytes=size, bits_per_dim=8 * size / dims)


def _plane(image):
    """An image as Pillow takes it: `(h, w)` grey or `(h, w, 3)` RGB."""
    return image[..., 0] if image.shape[-1] == 1 else image


PNG = {"format": "PNG", "optimize": True}
WEBP_LOSSLESS = {"format": "WEBP", "lossless": True, "quality": 100, "method": 6}


def classical(images, grid=None):
    """Classical codecs on `images` (a list or an array of uint8 `(h, w, C)`):
    one file per image, general-purpose compressors of the raw pixels and,
    with `grid`, mosaics of `grid x grid` images (`grid=100`: one mosaic)."""
    dims = sum(image.size for image in images)
    raw = b"".join(np.ascontiguousarray(image).tobytes() for image in images)
    for name, compress in [
        ("gzip", lambda b: gzip.compress(b, compresslevel=9)),
        ("bz2", lambda b: bz2.compress(b, compresslevel=9)),
        ("lzma", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ]:
        size = len(compress(raw))
        emit(codec=name, images=len(images), bytes=size, bits_per_dim=8 * size / dims)
    _per_image(images, "png_per_image", PNG, dims, len(images))
    _per_image(images, "webp_lossless_per_image", WEBP_LOSSLESS, dims, len(images))
    if grid is None:
        return
    per = grid * grid
    tiles = [
        mosaic(np.stack(images[i : i + per]), grid) for i in range(0, len(images), per)
    ]
    kind = "mosaic" if len(tiles) == 1 else f"mosaics_{grid}x{grid}"
    _per_image(tiles, f"webp_lossless_{kind}", WEBP_LOSSLESS, dims, len(images))
    _per_image(tiles, f"png_{kind}", PNG, dims, len(images))


def test_images(dataset, run_config, args) -> list:
    """The images a run is measured on, uint8 `(h, w, C)` each."""
    if dataset == "photos":
        if args.image_dir is None:
            raise SystemExit("--dataset photos needs --image-dir DIR")
        paths = image_folders.list_images(args.image_dir)[: args.num_images]
        channels = 1 if run_config["preset"].startswith("mnist") else 3
        return read_images(paths, (None, None, channels), exact=True)[0]
    images, _ = data.load_arrays(dataset, "test", data_dir=args.data_dir)
    images = images[: args.num_images]
    if presets.get(run_config["preset"]).binarized_test:
        images = (data.binarize(images, seed=0) * 255).astype(np.uint8)
    return list(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a lossless run directory")
    parser.add_argument(
        "--dataset", choices=["mnist", "cifar10", "photos"], default="mnist"
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--image-dir", help="the photos of --dataset photos")
    parser.add_argument("--num-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--skip-classical", action="store_true")
    parser.add_argument(
        "--arithmetic",
        nargs="+",
        default=["fixed-point", "float"],
        choices=["fixed-point", "fixed-point-v1", "float"],
    )
    args = parser.parse_args()

    model, run_config = runs.load_run(args.run_dir)
    images = test_images(args.dataset, run_config, args)
    values = sum(image.size for image in images)
    if not args.skip_classical:
        classical(images, grid={"mnist": 100, "cifar10": 8}.get(args.dataset))

    # The model's negative ELBO on the same images, one z sample per image
    # (for images of the model's size; tiles' padding would count otherwise).
    elbo_bpd = None
    if all(image.shape == tuple(model.image_shape) for image in images):
        x = np.stack(images).astype("float32") / 255.0
        total = 0.0
        for i in range(0, len(x), 500):
            reconstruction, kl = model.compute_terms(x[i : i + 500], seed=i)
            total += float(np.sum(reconstruction + kl))
        elbo_bpd = total / np.log(2.0) / values
    megapixels = sum(image.shape[0] * image.shape[1] for image in images) / 1e6

    for arithmetic in args.arithmetic:
        codec = BitsBackCodec(model, batch_size=args.batch_size, arithmetic=arithmetic)
        # Trace the networks once, outside the timing.
        codec.decompress_bytes(model, codec.compress(images[:2]))
        if args.dataset == "cifar10":  # one image alone: the initial bits' cost
            alone = len(codec.compress(images[:1]))
            emit(
                codec="one_image_alone",
                arithmetic=arithmetic,
                bytes=alone,
                bits_per_dim=8 * alone / images[0].size,
                png_bytes=png_bytes(_plane(images[0]), **PNG),
                webp_lossless_bytes=png_bytes(_plane(images[0]), **WEBP_LOSSLESS),
            )
        start = time.perf_counter()
        first = codec.encode(images)
        first_seconds = time.perf_counter() - start
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
            dataset=args.dataset,
            images=len(images),
            bytes=len(data_bytes),
            bits_per_dim=8 * len(data_bytes) / values,
            net_bits_per_dim=stats["bits_per_dim"],
            initial_bits=stats["seed_bits"],
            header_bytes=len(data_bytes) - 4 * len(encoded.payload),
            negative_elbo_bits_per_dim=elbo_bpd,
            rate_over_elbo=None
            if elbo_bpd is None
            else stats["bits_per_dim"] / elbo_bpd,
            compress_images_per_s=len(images) / encode_seconds,
            decompress_images_per_s=len(images) / decode_seconds,
            first_compress_images_per_s=len(images) / first_seconds,
            setup_s=first_seconds - encode_seconds,
            same_payload_twice=np.array_equal(first.payload, encoded.payload),
            compress_megapixels_per_s=megapixels / encode_seconds,
            decompress_megapixels_per_s=megapixels / decode_seconds,
            bit_exact=all(np.array_equal(d, i) for d, i in zip(decoded, images)),
        )


if __name__ == "__main__":
    main()
