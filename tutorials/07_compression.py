"""
Title: Compression with VAEs: a lossy codec against JPEG and WebP, and bits-back coding
Author: vae_tf developers
Date created: 2026/11/28
Last modified: 2026/11/28
Description: Train a VAE whose KL term is a bit rate, turn it into real
compressed files and compare them with JPEG and WebP on the same images;
then code images losslessly with bits-back, watching the coder's state
step by step.
"""

"""
## Introduction

A VAE's negative ELBO is a number of bits, and a coder can make it real.
There are two ways to do it.

**Lossy** (Ballé, Laparra & Simoncelli 2017): an encoder `g_a` maps the image
to latents `y`, which are rounded to integers and entropy-coded under a
learned prior `p`; a decoder `g_s` maps them back. Rounding has no gradient,
so training replaces it by uniform noise, `y_tilde = y + u` with
`u ~ U(-1/2, 1/2)`. That is a VAE whose posterior is a unit box around `y`:

```
q(y_tilde | x) = 1 on [y - 1/2, y + 1/2]     so  log q = 0
KL(q || p) = E_q[log q - log p] = E_q[-log p(y_tilde)]      the rate
```

and a Gaussian likelihood with a fixed variance makes `-log p(x | y_tilde)`
a squared error, the distortion. A weight `lambda` trades one for the other;
each `lambda` is one point of a rate-distortion curve.

**Lossless** (bits-back, Townsend et al. 2019): with an ANS coder, which is
a stack, code an image by *popping* a latent from the stack under `q(z | x)`,
pushing the image under `p(x | z)` and pushing the latent under `p(z)`. The
popped bits are given back, so an image costs `-log p(x|z) - log p(z) + log
q(z|x)` bits: the negative ELBO.

Run it with `python tutorials/07_compression.py --quick` (a few minutes) or
without `--quick` (about 15 minutes on 2 CPU cores). The codecs' full figures
are in the README, from `benchmarks/compress_lossy.py` and
`benchmarks/compress_lossless.py`.
"""

"""
## Setup
"""

# ruff: noqa: E402  (the keras.io format puts prose before the imports)
import argparse
import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import constriction
import keras
import numpy as np

import vae_tf
from vae_tf import data, plotting
from vae_tf.compression import BitsBackCodec, LossyCodec, container
from vae_tf.compression.baselines import (
    LOSSY_FORMATS,
    classical_sweep,
    image_quality,
    mosaic,
    mosaics,
    pillow_round_trip,
    psnr_at_rate,
)
from vae_tf.image_folders import list_images
from vae_tf.images import read_image

"""
## Hyperparameters
"""


@dataclasses.dataclass(frozen=True)
class Config:
    lmbdas: tuple = (0.004, 0.05)  # two points of the curve
    lossy_epochs: int = 2
    num_train_images: int = 25000  # CIFAR-10 images for the lossy models
    num_mosaics: int = 8  # 8x8 test images each, 256x256 pixels
    qualities: tuple = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)
    bitsback_epochs: int = 5
    bitsback_images: int = 500
    colour_epochs: int = 1  # cifar10-lossless (the preset: 12 epochs of 50,000)
    colour_train_images: int = 25000
    colour_images: int = 200
    photo_epochs: int = 6  # photo-lossy (full runs: 45 epochs, about an hour)
    photo_crops_per_image: int = 8
    xla: bool = True  # XLA's compile time is repaid over many steps, not a few
    seed: int = 0


parser = argparse.ArgumentParser(description="Compression with VAEs.")
parser.add_argument("--quick", action="store_true", help="a one-minute run")
parser.add_argument("--output-dir", default="outputs/07_compression")
parser.add_argument("--data-dir", help="folder with cifar10.npz and mnist.npz")
parser.add_argument(
    "--run-dirs",
    nargs="+",
    help="cifar10-lossy runs (vae-tf train --preset cifar10-lossy --lmbda L) to "
    "use instead of training small models here",
)
parser.add_argument(
    "--lossless-run",
    help="a cifar10-lossless run (vae-tf train --preset cifar10-lossless) to use "
    "for the colour part instead of training a small model here",
)
parser.add_argument(
    "--photos",
    help="a folder with train/ and test/ folders of photographs (the datasets "
    "README's photos/): Part 6 trains a photo codec on train/ and codes a photo "
    "of test/",
)
parser.add_argument(
    "--photo-run",
    help="a photo-lossy run (vae-tf train --preset photo-lossy --image-dir "
    "photos/train --lmbda L) to use in Part 6 instead of training a small one",
)
args = parser.parse_args()

config = Config()
if args.quick:
    config = dataclasses.replace(
        config,
        lossy_epochs=1,
        num_train_images=2000,
        num_mosaics=2,
        qualities=(10, 30, 50, 70, 90),
        bitsback_epochs=1,
        bitsback_images=100,
        colour_train_images=1000,
        colour_images=12,
        photo_epochs=1,
        photo_crops_per_image=1,
        xla=False,
    )
output_dir = Path(args.output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(config.seed)
metrics = {"quick": args.quick}
print(config)

"""
## Part 1: the rate is the KL

`vae_tf.LossyVAE` is the model above: GDN transforms (a normalisation that
suits images; `vae_tf.models.lossy.GDN`), four stride-2 stages so a 32x32 image has
2x2x`latent_channels` latents, and a learned prior convolved with the unit
box. The plainest prior gives each channel one Gaussian (Ballé et al. 2017);
the one used here is the *scale hyperprior* (Ballé et al. 2018): a small
network reads `|y|` and sends side information `z`, coded first under a
per-channel prior; from `z_hat` another network predicts the scale of every
latent of `y`, which is then coded under a zero-mean Gaussian of that scale.
Flat regions get small scales (their latents are 0, nearly free), textured
ones large. The rate counts both `y` and `z`. Its `train_step` minimises

```
loss = bits / pixels + lambda * MSE        (MSE in 8-bit units)
```

We train one small model per `lambda` on CIFAR-10 (or load the runs given
with `--run-dirs`), on random 4x4 mosaics of training images rather than on
single ones: a 32x32 image has a 2x2 latent map that is all border, and a
model that only ever saw borders codes the inside of a large image badly
(the README measures 9 dB lost).
"""

train_images, _ = data.load_arrays("cifar10", "train", data_dir=args.data_dir)
test_images, _ = data.load_arrays("cifar10", "test", data_dir=args.data_dir)
train_x = train_images[: config.num_train_images]

models = {}
for run_dir in args.run_dirs or []:
    model, _ = vae_tf.runs.load_run(run_dir)
    models[model.lmbda] = model
for lmbda in config.lmbdas if not models else ():
    model = vae_tf.LossyVAE(
        lmbda,
        filters=64,
        latent_channels=192,
        hyperprior_channels=64,
        seed=config.seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=config.xla)
    batches = data.make_dataset(
        train_x, batch_size=64, shuffle=True, seed=config.seed, drop_remainder=True
    )
    model.fit(data.tile_batches(batches, 4), epochs=config.lossy_epochs, verbose=2)
    models[lmbda] = model

"""
Check the claim numerically: for one batch, the KL of the box posterior to
the prior, estimated by Monte Carlo over the noise, equals the cross-entropy
`-log2 p(y_tilde)` (the box's own entropy is 0), and at the rounded latents
the same formula is what the entropy coder will pay.
"""

model = models[max(models)]
x = test_images[:64].astype("float32") / 255.0
y = model.analysis(x)
# rate_bits adds the uniform noise when training=True, rounds otherwise
draws = [float(np.sum(model.rate_bits(y, training=True)[1])) for _ in range(20)]
kl_bits = float(np.mean(draws) / len(x))
rounded_bits = float(np.sum(model.rate_bits(y)[1]) / len(x))
print(f"KL(q || p) by Monte Carlo: {kl_bits:.1f} bits per image")
print(f"-log2 p(round(y)):         {rounded_bits:.1f} bits per image")
metrics["kl_bits_per_image"] = kl_bits
metrics["rounded_bits_per_image"] = rounded_bits

"""
The two agree to within a few percent: rounding costs about what the noise
costs, which is why the relaxation trains a model whose rounded latents code
well.

## Part 2: real files

`vae_tf.compression.LossyCodec` pads an image to a multiple of 32, rounds
`g_a(x)` and `h_a(|y|)`, and range-codes the integers with `constriction`'s
`QuantizedGaussian`: `z_hat` under the prior of each channel, then `y_hat`
under the scales `h_s(z_hat)` predicts (each rounded to one of 64 fixed
scales, so that encoder and decoder agree on it exactly). These are the
probabilities the model trained against, so the file's size is the model's
rate plus a small header (magic, version, the model's fingerprint, the image
sizes, a checksum).

We code mosaics of 8x8 CIFAR-10 test images, 256x256 pixels each, so that
JPEG's and WebP's headers do not dominate their rates.
"""

tiles = mosaics(test_images, config.num_mosaics)
pixels = tiles.shape[0] * tiles.shape[1] * tiles.shape[2]
points = []
decoded_by_lmbda = {}
for lmbda, model in models.items():
    codec = LossyCodec(model)
    files = [codec.compress([tile]) for tile in tiles]
    decoded = np.stack([LossyCodec.decompress_bytes(model, f)[0] for f in files])
    estimate = sum(
        float(np.sum(model.rate_bits(model.analysis(tile[None] / 255.0))[1]))
        for tile in tiles.astype("float32")
    )
    header = len(files[0]) - 4 * len(container.unpack(files[0]).payload)
    point = {
        "lmbda": lmbda,
        "bits_per_pixel": 8 * sum(map(len, files)) / pixels,
        "model_bits_per_pixel": estimate / pixels,
        "header_bytes": header,
        **image_quality(decoded, tiles),
    }
    points.append(point)
    decoded_by_lmbda[lmbda] = decoded
    print(
        f"lambda={lmbda}: {point['bits_per_pixel']:.3f} bits/pixel in files "
        f"(model: {point['model_bits_per_pixel']:.3f}), "
        f"PSNR {point['psnr_db']:.2f} dB, MS-SSIM {point['ms_ssim']:.4f}"
    )
metrics["vae_points"] = points

"""
The file rates sit a hair above the model's estimate: the header takes a few
dozen bytes and the range coder adds a word or two. That is how close a
learned prior can be made real.

## Part 3: against JPEG and WebP

The same mosaics through Pillow's JPEG (4:2:0 chroma subsampling, the usual
setting for photos) and WebP at a sweep of qualities. One caveat: the CIFAR-10
images here were JPEG-encoded once before they were stored, which favours
JPEG at qualities near that encoding.
"""

curves = {
    name: classical_sweep(tiles, name, config.qualities) for name in ("jpeg", "webp")
}
for point in points:
    for name, curve in curves.items():
        theirs = psnr_at_rate(curve, point["bits_per_pixel"])
        point[f"{name}_psnr_db_at_same_rate"] = theirs
        if theirs is not None:
            print(
                f"lambda={point['lmbda']}: {point['psnr_db']:.2f} dB vs {name} "
                f"{theirs:.2f} dB at {point['bits_per_pixel']:.3f} bits/pixel"
            )
metrics["classical"] = curves

series = {
    name: ([p["bits_per_pixel"] for p in curve], [p["psnr_db"] for p in curve])
    for name, curve in curves.items()
}
series["VAE codec"] = (
    [p["bits_per_pixel"] for p in points],
    [p["psnr_db"] for p in points],
)
plotting.plot_rate_distortion(
    output_dir / "rate_distortion.png",
    series,
    title=f"CIFAR-10 test mosaics ({len(tiles)} x 256x256)",
)

"""
Where the VAE's points land depends on training: the few thousand steps of
this tutorial leave it far from converged (in `--quick` mode, below JPEG),
while the `cifar10-lossy` runs of the README's table, trained for 18 epochs,
are above JPEG from 0.5 to 2 bits/pixel there (`--run-dirs` plots them here). The
shape of the curves is the lesson: JPEG falls apart at low rates, where its
8x8 blocks show, and a learned transform degrades gracefully. Compare the
low-rate VAE with JPEG at about the same size:
"""

lmbda = min(models)
target = next(p for p in points if p["lmbda"] == lmbda)["bits_per_pixel"]
jpeg_quality = min(curves["jpeg"], key=lambda p: abs(p["bits_per_pixel"] - target))[
    "quality"
]
_, jpeg_image = pillow_round_trip(
    tiles[0], quality=jpeg_quality, format="JPEG", subsampling="4:2:0"
)
crop = (slice(0, 96), slice(0, 96))
plotting.plot_image_row(
    output_dir / "lossy_examples.png",
    [tiles[0][crop], decoded_by_lmbda[lmbda][0][crop], jpeg_image[crop]],
    ["original", f"VAE, {target:.2f} bpp", f"JPEG q={jpeg_quality}"],
)

"""
## Part 4: bits-back coding, step by step

Now the lossless side, on binarised MNIST with a small dense VAE and a
Bernoulli likelihood. We build the coder from `constriction` parts for one
image and print the ANS stack's size after each step. Latents are
discretised into bins of width 2^-10 on [-8, 8]: fine enough that the
discretisation costs almost nothing once the popped bits are given back.
"""

mnist_train, _ = data.load_arrays("mnist", "train", data_dir=args.data_dir)
mnist_test, _ = data.load_arrays("mnist", "test", data_dir=args.data_dir)
binary_test = (data.binarize(mnist_test, seed=0) * 255).astype(np.uint8)
vae = vae_tf.presets.dense_mnist_vae(16, (256,), "gelu", seed=config.seed)
vae.compile(optimizer=keras.optimizers.Adam(2e-3))
vae.fit(
    data.make_dataset(mnist_train[:20000], batch_size=64, shuffle=True, seed=0),
    epochs=config.bitsback_epochs,
    verbose=2,
)

scale = 2.0**10
limit = int(8 * scale)
latent_model = constriction.stream.model.QuantizedGaussian(-limit, limit)
prior = constriction.stream.model.QuantizedGaussian(-limit, limit, 0.0, scale)
bernoulli = constriction.stream.model.Bernoulli(perfect=False)

image = binary_test[:1]
pixels_on = (image > 127).astype(np.int32).ravel()
seed_words = np.random.default_rng(0).integers(0, 2**32, 32, dtype=np.uint32)
seed_words[-1] |= np.uint32(1 << 31)
ans = constriction.stream.stack.AnsCoder(seed_words)
steps = [("initial bits (the seed)", ans.num_valid_bits())]

z_mean, z_log_var = vae.posterior(image.astype("float32") / 255.0)
mean = np.asarray(z_mean, np.float64).ravel() * scale
std = np.maximum(np.exp(0.5 * np.asarray(z_log_var, np.float64)).ravel() * scale, 0.05)
z_bins = ans.decode(latent_model, mean, std)  # 1. pop z ~ q(z | x)
steps.append(("pop z under q(z|x)", ans.num_valid_bits()))
logits = np.asarray(vae.decoder(z_bins[None].astype("float32") / scale), np.float64)
probs = 1.0 / (1.0 + np.exp(-logits.ravel()))
ans.encode_reverse(pixels_on, bernoulli, probs)  # 2. push x under p(x | z)
steps.append(("push x under p(x|z)", ans.num_valid_bits()))
ans.encode_reverse(z_bins, prior)  # 3. push z under p(z)
steps.append(("push z under p(z)", ans.num_valid_bits()))
for name, bits in steps:
    print(f"{name:28s} stack: {bits:5d} bits")

net_bits = steps[-1][1] - steps[0][1]
reconstruction, kl = vae.compute_terms(image.astype("float32") / 255.0, seed=0)
elbo_bits = float(reconstruction[0] + kl[0]) / np.log(2.0)
print(f"net cost: {net_bits} bits; this image's -ELBO: {elbo_bits:.1f} bits")
metrics["bitsback_steps"] = [{"step": n, "stack_bits": int(b)} for n, b in steps]
metrics["bitsback_net_bits_one_image"] = int(net_bits)
metrics["negative_elbo_bits_one_image"] = elbo_bits

"""
The pop *shrinks* the stack: it reads bits that were already there (here the
seed; later, earlier images' bits), choosing a latent with them. The two
pushes then cost `-log p(x|z)` and `-log p(z)`. The net cost is close to the
negative ELBO; a single one-sample ELBO fluctuates, the average over many
images does not. Decoding runs the steps backwards and gives the popped bits
back:
"""

z_back = ans.decode(prior, z_bins.size)  # pop z under p(z)
logits = np.asarray(vae.decoder(z_back[None].astype("float32") / scale), np.float64)
pixels_back = ans.decode(bernoulli, 1.0 / (1.0 + np.exp(-logits.ravel())))
z_mean, z_log_var = vae.posterior(pixels_back.reshape(image.shape).astype("float32"))
mean = np.asarray(z_mean, np.float64).ravel() * scale
std = np.maximum(np.exp(0.5 * np.asarray(z_log_var, np.float64)).ravel() * scale, 0.05)
ans.encode_reverse(z_back, latent_model, mean, std)  # push z back under q(z|x)
exact = bool(np.array_equal(pixels_back, pixels_on))
seed_back = bool(np.array_equal(ans.get_compressed(), seed_words))
print(f"image recovered exactly: {exact}; seed words recovered: {seed_back}")
metrics["bitsback_one_image_exact"] = exact and seed_back

"""
That is `vae_tf.compression.BitsBackCodec`, vectorised over batches, with
the `.vtfz` container around it. On many images the seed is paid once and
the rate approaches the average negative ELBO:
"""

batch = binary_test[: config.bitsback_images]
codec = BitsBackCodec(vae)
encoded = codec.encode(batch)  # payload words, image sizes, measured stats
stats = encoded.stats
data_bytes = codec.pack(encoded)
decoded = BitsBackCodec.decompress_bytes(vae, data_bytes)
reconstruction, kl = vae.compute_terms(batch.astype("float32") / 255.0, seed=0)
elbo_bpd = float(np.mean(reconstruction + kl)) / np.log(2.0) / 784
print(
    f"{len(batch)} images: {stats['bits_per_dim']:.4f} bits/dim net, "
    f"{8 * len(data_bytes) / batch.size:.4f} with the seed and header; "
    f"-ELBO {elbo_bpd:.4f} bits/dim; exact: {np.array_equal(decoded, batch)}"
)
metrics["bitsback"] = {
    "images": len(batch),
    "net_bits_per_dim": stats["bits_per_dim"],
    "file_bits_per_dim": 8 * len(data_bytes) / batch.size,
    "negative_elbo_bits_per_dim": elbo_bpd,
    "bit_exact": bool(np.array_equal(decoded, batch)),
}

"""
## Part 5: colour images of any size

Colour photographs need a likelihood that codes 8-bit RGB well and still
leaves work to the latent: the `cifar10-lossless` preset (tutorial 05), a
Gaussian per sub-pixel leaning on its causal neighbours and on the earlier
channels of its pixel, under a fully convolutional VAE with an 8x8x16
latent map. `--lossless-run RUN` uses a full run of it; otherwise a small
one trains here.
"""

cifar_train, _ = data.load_arrays("cifar10", "train", data_dir=args.data_dir)
cifar_test, _ = data.load_arrays("cifar10", "test", data_dir=args.data_dir)
if args.lossless_run:
    colour_vae, _ = vae_tf.runs.load_run(args.lossless_run)
else:
    recipe = vae_tf.presets.get("cifar10-lossless")
    colour_vae = recipe.build_model(seed=config.seed)
    colour_train = cifar_train[: config.colour_train_images]
    recipe.compile(colour_vae, len(colour_train), config.colour_epochs, 32)
    colour_vae.fit(
        data.make_dataset(colour_train, batch_size=32, shuffle=True, seed=0),
        epochs=config.colour_epochs,
        verbose=2,
    )

"""
A colour image has 1,024 latents, and that changes what the coder must take
care of. Popping `z` under `q(z | x)` takes the posterior's entropy at the
bins, about `log2(sigma / bin * sqrt(2 pi e))` bits per latent, before
anything is pushed: for a 32x32 image about ten thousand bits, several
times the MNIST model's. Two things follow.

- **The stack must hold what the pops take.** Popping from a stack that runs
  dry still decodes exactly, but gives latents from the far tails, and the
  image then costs several times its ELBO. So the codec starts from as many
  seed bits as the first image pops (the initial bits, paid once per file)
  and sizes every later batch by the bits the stack holds.
- **Pops must stay in the posterior.** The coder gives every bin of a model's
  range at least one quantum of probability (2^-24); over 16,385 bins that
  is 0.1% of the mass, spread out to hundreds of standard deviations, and
  with 1,024 latents nearly every image would draw one such latent. So each
  latent is coded in a window of 5 posterior standard deviations around its
  mean.
"""

colour = cifar_test[: config.colour_images]
codec = BitsBackCodec(colour_vae)
first_pop = float(codec.pop_bits(colour[:1])[0])
print(f"bits one image pops: {first_pop:.0f} ({codec.latent_size} latents)")
encoded = codec.encode(colour)
data_bytes = codec.pack(encoded)
decoded = BitsBackCodec.decompress_bytes(colour_vae, data_bytes)
reconstruction, kl = colour_vae.compute_terms(colour.astype("float32") / 255.0, seed=0)
colour_elbo = float(np.sum(reconstruction + kl)) / np.log(2.0) / colour.size
PNG = {"format": "PNG", "optimize": True}
WEBP_LOSSLESS = {"format": "WEBP", "lossless": True, "quality": 100, "method": 6}
png = sum(len(pillow_round_trip(image, **PNG)[0]) for image in colour)
webp = sum(len(pillow_round_trip(image, **WEBP_LOSSLESS)[0]) for image in colour)
print(
    f"{len(colour)} CIFAR-10 test images: {encoded.stats['bits_per_dim']:.3f} bits/dim "
    f"net, {8 * len(data_bytes) / colour.size:.3f} as a file; -ELBO "
    f"{colour_elbo:.3f}; PNG {8 * png / colour.size:.3f}, WebP lossless "
    f"{8 * webp / colour.size:.3f} (one file per image); exact: "
    f"{np.array_equal(decoded, colour)}"
)

"""
The net rate is the negative ELBO, within a percent. How it compares with
PNG and WebP depends on the model: the small one trained here for one
epoch (a few dozen steps with `--quick`) is still far from the data and
loses to both; the full preset (`--lossless-run`, 12 epochs, 45 to 70
minutes) takes about 3.5 bits/dim, below WebP lossless (README). The file
adds the seed, about `first_pop` bits, once. That is also why one small
image coded alone is dearer than its PNG: the seed is most of its file.
Images of other sizes are cut into tiles of the model's size (row by row,
the ragged edge padded with zeros that are not coded), so one photo's tiles
share a stack and pay the seed once:
"""

odd = mosaic(cifar_test[:9], 3)[:75, :50]  # 75x50
alone = codec.compress([odd])
back = BitsBackCodec.decompress_bytes(colour_vae, alone)[0]
odd_png = len(pillow_round_trip(odd, **PNG)[0])
tiles, _ = codec.tiles([odd])
print(
    f"a {odd.shape[0]}x{odd.shape[1]} image, {len(tiles)} tiles: {len(alone)} bytes "
    f"(PNG {odd_png}); exact: {np.array_equal(back, odd)}"
)
metrics["bitsback_colour"] = {
    "images": len(colour),
    "first_image_pops_bits": first_pop,
    "net_bits_per_dim": encoded.stats["bits_per_dim"],
    "file_bits_per_dim": 8 * len(data_bytes) / colour.size,
    "negative_elbo_bits_per_dim": colour_elbo,
    "png_per_image_bits_per_dim": 8 * png / colour.size,
    "webp_lossless_per_image_bits_per_dim": 8 * webp / colour.size,
    "bit_exact": bool(np.array_equal(decoded, colour)),
    "odd_size_bytes": len(alone),
    "odd_size_png_bytes": odd_png,
    "odd_size_exact": bool(np.array_equal(back, odd)),
}

"""
On the command line: `vae-tf compress RUN photo.png shot.jpg -o x.vtfz
--lossless` and `vae-tf decompress x.vtfz -o out/`. The README has the full
model's figures against PNG and WebP on the whole test set and on
photographs.

## Part 6: a photograph

A codec trained on 32x32 thumbnails has never seen a sky, an edge or a
texture at full resolution, and on photographs it loses to JPEG. The
`photo-lossy` preset trains the same transforms on random 128x128 crops of
photographs, at their own resolution and flipped, with the mean-scale
hyperprior (Minnen, Ballé & Toderici 2018, arXiv:1809.02736): `h_s` predicts
each latent's mean as well as its scale, and `y - mu` is what gets rounded
and coded. It is fully convolutional, so the trained model codes a whole
481x321 photo in one pass. Pass `--photos DIR` (a folder with `train/` and
`test/`) to run this part; `--photo-run RUN` uses a full run (`vae-tf train
--preset photo-lossy --image-dir photos/train --lmbda L`, about an hour)
instead of the few epochs trained here.

Trained in full (`--lmbda 0.013`, the preset's 40 epochs, 49 minutes on 2
cores, then 6 epochs, 7 minutes, from it for `--lmbda 0.0015`; for high
rates the preset widens to 96 filters: `--lmbda 0.15`, 70 minutes, then 6
epochs from it to 0.05 and, from that, 10 each at 0.05 and 0.08), the
codec beats JPEG on the 68 BSD68 test photos, each file counted whole, at
every rate from 0.25 to 2 bits/pixel (README, "Lossy compression"): by 3.9
dB at 0.25, 1.2 at 0.5, 1.0 at 1 and 0.1 at 2. WebP stays ahead everywhere
(by 0.2 to 3.1 dB): an hour or two of CPU is far from the million steps of
the published models, most of all at high rates.
"""

if args.photos is None:
    print("Part 6 (a photograph) needs --photos DIR; skipped.")
else:
    photos = Path(args.photos)
    if args.photo_run:
        photo_run = Path(args.photo_run)
    else:
        photo_run = output_dir / "photo-lossy"
        vae_tf.runs.train(
            "photo-lossy",
            photo_run,
            epochs=config.photo_epochs,
            image_dir=photos / "train",
            crops_per_image=config.photo_crops_per_image,
            seed=config.seed,
            verbose=2,
            overwrite=True,
            figures=False,
        )
    photo_model, _ = vae_tf.runs.load_run(photo_run)
    photo_path = Path(list_images(photos / "test")[0])
    photo, _ = read_image(photo_path, channels=3)
    photo_pixels = photo.shape[0] * photo.shape[1]
    photo_codec = LossyCodec(photo_model)
    photo_file = photo_codec.compress([photo])
    (photo_decoded,) = LossyCodec.decompress_bytes(photo_model, photo_file)
    photo_bpp = 8 * len(photo_file) / photo_pixels
    # The decoder's pixels are the encoder's reconstruction, exactly.
    (latents,) = photo_codec.latents([photo])
    (expected,) = photo_codec.reconstruct(latents[None])
    photo_exact = np.array_equal(photo_decoded, expected[: len(photo), : len(photo[0])])

    def nearest_in_size(name):
        """JPEG or WebP at the quality whose file is closest in size to ours:
        `(quality, bits/pixel, decoded)`."""
        best = None
        for quality in range(1, 101):
            coded, out = pillow_round_trip(
                photo, quality=quality, **LOSSY_FORMATS[name]
            )
            bpp = 8 * len(coded) / photo_pixels
            if best is None or abs(bpp - photo_bpp) < abs(best[1] - photo_bpp):
                best = (quality, bpp, out)
        return best

    codings = {"vae": (None, photo_bpp, photo_decoded)}
    codings.update((name, nearest_in_size(name)) for name in ("jpeg", "webp"))
    row, titles = [photo], ["original"]
    metrics["photo"] = {"file": photo_path.name, "vae_exact": photo_exact}
    for name, (quality, bpp, decoded) in codings.items():
        psnr = image_quality(decoded[None], photo[None])["psnr_db"]
        setting = "" if quality is None else f" q={quality}"
        titles.append(f"{name.upper()}{setting}: {bpp:.2f} bpp, {psnr:.1f} dB")
        row.append(decoded)
        metrics["photo"][name] = {"bits_per_pixel": bpp, "psnr_db": psnr}
        print(titles[-1])
    plotting.plot_image_row(output_dir / "photo.png", row, titles)

"""
The few epochs here leave the codec far from converged, and the picture
shows how: at equal size, an undertrained model blurs where JPEG blocks.
`benchmarks/compress_lossy.py --dataset photos` draws the whole curve.

## Conclusion

Both codecs are the ELBO made concrete. The lossy one spends the KL, in bits,
on rounded latents and accepts the distortion; `vae-tf train --preset
cifar10-lossy --lmbda L` trains one point of its curve and `vae-tf compress
RUN photo.png -o photo.vtfz` codes any image with it. The lossless one pays
the negative ELBO, thanks to the bits it borrows and returns, provided the
stack holds what it pops and the pops stay in the posterior:
`vae-tf compress RUN *.png -o digits.vtfz --lossless`, for digits or, with a
`cifar10-lossless` run, colour pictures of any size.
"""

with open(output_dir / "metrics.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(f"figures and metrics.json in {output_dir}")
