"""
Title: A convolutional VAE on CIFAR-10 with a discretised likelihood
Author: vae_tf developers
Date created: 2026/11/28
Last modified: 2026/11/28
Description: Colour images, why Bernoulli and MSE losses give blurry images and
meaningless likelihoods, the discretised logistic mixture, and bits/dim.
"""

"""
## Introduction

MNIST pixels are close to black or white, so a Bernoulli per pixel is a fair
model. Photographs are not: a CIFAR-10 pixel is three bytes, each one of 256
values. Two popular shortcuts both go wrong:

- **Bernoulli (binary cross-entropy) on grey values** is not a distribution
  over colours at all (tutorial 01 showed it does not even normalise);
- **MSE**, i.e. a Gaussian with a fixed variance, is a *density* over real
  numbers. Its "log-likelihood" depends on the units and can exceed that of
  any distribution over the 256 byte values, and because every pixel is
  charged the same fixed noise, the decoder's best answer is the average of
  plausible images: blur.

A **discretised** likelihood puts a probability on each of the 256 values of
each sub-pixel, so `-log p(x)` is a real code length: in bits per dimension
(bits/dim = nats / (3072 · ln 2)) it is directly comparable with PNG's or
WebP's file sizes. This tutorial uses the discretised mixture of logistics of
PixelCNN++ (Salimans et al. 2017) and a fully convolutional VAE whose latent
is an 8x8 map.

Run it with `python tutorials/05_conv_cifar10_vae.py --quick --data-dir DIR`
(a few minutes: three small models), where `DIR` holds a keras-layout
`cifar10.npz`.
"""

"""
## Setup
"""

# ruff: noqa: E402  (the keras.io format puts prose before the imports)
import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import vae_tf
from vae_tf import data, plotting, presets
from vae_tf.likelihoods import DiscretizedLogisticMixture

"""
## Hyperparameters
"""


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = presets.get("cifar10-conv").epochs
    num_train_images: int | None = None
    num_test_images: int | None = None
    iwae_k: int = 100
    xla: bool = True  # the presets' choice; a quick run's few steps do not repay it
    seed: int = 0


parser = argparse.ArgumentParser(description="A convolutional VAE on CIFAR-10.")
parser.add_argument("--epochs", type=int, help="training epochs")
parser.add_argument("--quick", action="store_true", help="a short run (a few minutes)")
parser.add_argument("--output-dir", default="outputs/05_conv_cifar10_vae")
parser.add_argument(
    "--data-dir", help="folder with cifar10.npz (else $VAE_TF_DATA_DIR)"
)
args = parser.parse_args()

config = Config()
if args.quick:
    config = dataclasses.replace(
        config,
        epochs=1,
        num_train_images=2000,
        num_test_images=250,
        iwae_k=10,
        xla=False,
    )
if args.epochs:
    config = dataclasses.replace(config, epochs=args.epochs)
output_dir = Path(args.output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(config.seed)
metrics = {"quick": args.quick}
print(config)

"""
## The data

CIFAR-10: 32x32 colour images of ten classes, 50,000 for training and 10,000
for testing, as uint8. `vae_tf.data` scales them to `k / 255`; the
discretised likelihood maps them back to their byte values exactly.
"""

preset = presets.get("cifar10-conv")
train_images, _ = data.load_arrays("cifar10", "train", data_dir=args.data_dir)
test_images, _ = data.load_arrays("cifar10", "test", data_dir=args.data_dir)
train_images = train_images[: config.num_train_images]
test_images = test_images[: config.num_test_images]
train_ds = data.make_dataset(
    train_images, batch_size=preset.batch_size, shuffle=True, seed=config.seed
)
test_ds = data.make_dataset(test_images, batch_size=250)
test_x = test_images.astype("float32") / 255.0
print(f"train {train_images.shape} {train_images.dtype}, test {test_images.shape}")

"""
## Why MSE is not a likelihood of these images

MSE is the negative log-density of a Gaussian with a fixed standard
deviation `sigma`, up to constants:

```
-log N(x; mu, sigma^2) = (x - mu)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2
```

A density is not a probability: with a small `sigma` it exceeds 1, and its
"code length" goes negative. Here is a *perfect* reconstruction (`mu = x`)
scored in "bits/dim" for a few `sigma`, on pixels scaled to [0, 1]:
"""

for sigma in (0.1, 0.01, 0.001):
    nats = math.log(sigma) + 0.5 * math.log(2 * math.pi)
    print(f"sigma = {sigma}: {nats / math.log(2):+.2f} bits/dim")

"""
Negative bits: no code can be shorter than zero bits, so these numbers are
not code lengths, and they change with the units the pixels are written in.
A distribution over the 256 byte values cannot do that: its best possible
score is 0 bits/dim, its uniform score 8.

## The discretised logistic mixture

For a byte `k`, centre it at `x = 2k/255 - 1` and give it the bin
`[x - 1/255, x + 1/255]`. A logistic with mean `mu` and scale `s` puts
probability `sigma((x + 1/255 - mu)/s) - sigma((x - 1/255 - mu)/s)` on it,
and the edge bins take the tails, so the 256 probabilities sum to exactly 1.
A mixture of such logistics per pixel, with the green and blue means shifted
by the red (and green) values, models colours jointly. The decoder outputs
`K · 10` numbers per pixel for RGB.
"""

likelihood = DiscretizedLogisticMixture(num_components=5)
params = np.random.default_rng(0).normal(size=(256, 1, 1, likelihood.param_channels(1)))
all_bytes = (np.arange(256) / 255.0).reshape(256, 1, 1, 1).astype("float32")
mass = np.exp(np.asarray(likelihood.log_prob(all_bytes, params[:1].repeat(256, 0))))
print(f"sum of the 256 probabilities of one grey pixel: {mass.sum():.6f}")
print(f"decoder outputs per RGB pixel with K = 5: {likelihood.param_channels(3)}")

"""
## A fully convolutional VAE

The `cifar10-conv` preset downsamples 32x32 → 16x16 → 8x8 with residual
stages and keeps the latent *spatial*: `z` is an 8x8x16 map rather than a
vector, so each latent position describes its own patch of the image. The
same `VAE.train_step` trains it: only the likelihood's `log_prob` differs.
The presets compile the step with XLA, which pays for its compile time over
a full run; `--quick` trains a few dozen steps per model and switches it
off (`compile(..., jit_compile=False)`), which is faster there.
"""


def train(preset_name):
    """Build, compile and fit a preset's model on this run's images."""
    recipe = presets.get(preset_name)
    model = recipe.build_model(seed=config.seed)
    recipe.compile(
        model,
        len(train_images),
        config.epochs,
        recipe.batch_size,
        jit_compile=config.xla and recipe.jit_compile,
    )
    timer = vae_tf.callbacks.EpochTimer()
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        epochs=config.epochs,
        validation_data=test_ds,
        shuffle=False,
        callbacks=[timer],
        verbose=2,
    )
    seconds = time.perf_counter() - start
    print(f"{preset_name}: {seconds:.0f} s, {len(train_images) / seconds:.0f} images/s")
    return model, history, timer, seconds


vae, history, timer, metrics["train_seconds"] = train("cifar10-conv")
metrics["train_images_per_second"] = timer.images_per_second(len(train_images))
metrics["epochs"] = config.epochs
print(f"latent shape per image: {vae.latent_shape}")

"""
## Bits per dimension

The negative ELBO in bits/dim is an upper bound on the code length a
bits-back coder would achieve with this model (tutorial 07 builds one), and
the IWAE bound tightens it.
"""

results = vae_tf.evaluate(vae, test_ds, iwae_k=config.iwae_k, seed=0)
metrics.update(results)
print(json.dumps(results, indent=2))

"""
## Reconstructions and samples, side by side

Two ways to turn `p(x | z)` into a picture: its **mean** (smooth, what
MSE-trained models show) and a **sample** (each sub-pixel drawn from its
mixture: noisy where the model is unsure). Both come from one batched call
per figure.
"""

z_mean, _ = vae.encode(test_x[:16])
x_params = vae.decoder(z_mean)
reconstruction_mean = np.asarray(vae.likelihood.mean(x_params))
reconstruction_sample = np.asarray(vae.likelihood.sample(x_params, seed=0))
plotting.plot_reconstructions(
    output_dir / "reconstructions.png",
    test_x[:16],
    reconstruction_mean,
    title="CIFAR-10 test images (left) and reconstruction means (right)",
)
plotting.plot_reconstructions(
    output_dir / "reconstructions_sampled.png",
    test_x[:16],
    reconstruction_sample,
    title="Test images (left) and reconstructions sampled from p(x | z) (right)",
)
prior_params = vae.decoder(keras.random.normal((64, *vae.latent_shape), seed=0))
plotting.plot_samples(
    output_dir / "samples.png",
    np.asarray(vae.likelihood.mean(prior_params)),
    title="Prior samples: means of p(x | z)",
)
plotting.plot_samples(
    output_dir / "samples_sampled.png",
    np.asarray(vae.likelihood.sample(prior_params, seed=1)),
    title="Prior samples: draws from p(x | z)",
)
plotting.plot_loss_curves(output_dir / "loss_curves.png", history.history)

"""
## The MSE baseline, scored the same way

The `cifar10-conv-mse` preset is the same network with the loss most
tutorials use: a Gaussian with a fixed `sigma` (0.1 of the pixel range), so
`-log p(x | z)` is `MSE / (2 sigma^2)` plus a constant. Discretised to the
256 byte values, it becomes a probability too, so its bits/dim are a fair
comparison. A fixed `sigma` charges every pixel the same noise: a sharp edge
in the wrong place costs more than a blur, so the decoder learns to blur, and
the bits/dim pay for the detail the mean cannot express.
"""

mse_vae, _, _, mse_seconds = train("cifar10-conv-mse")
mse_results = vae_tf.evaluate(mse_vae, test_ds, iwae_k=None, seed=0)
metrics["mse_baseline"] = {
    "test_bits_per_dim": mse_results["test_bits_per_dim"],
    "test_kl_nats": mse_results["test_kl_nats"],
    "train_seconds": mse_seconds,
}
print(
    f"bits/dim (negative ELBO): logistic mixture {results['test_bits_per_dim']:.3f}, "
    f"fixed-sigma Gaussian (MSE) {mse_results['test_bits_per_dim']:.3f}"
)
plotting.plot_reconstructions(
    output_dir / "reconstructions_mse.png",
    reconstruction_mean,
    np.asarray(mse_vae.reconstruct(test_x[:16])),
    title="Reconstruction means: logistic mixture (left) and MSE (right)",
)

"""
## A hierarchy of latents

One Gaussian latent map has to describe everything the likelihood does not,
and its prior is a fixed standard normal. A ladder (top-down) VAE splits the
latent into levels: here an 8x8x8 map on top and a 16x16x8 map below it, whose
prior `p(z_1 | z_2)` is predicted from the level above, while the posterior
combines that prediction with what the encoder saw at 16x16 (`vae_tf.
HierarchicalVAE`, the `cifar10-hierarchical` preset). The ELBO has one KL
per level; they are non-negative and add up to the total, and the same
`train_step` trains it.
"""

ladder, _, _, ladder_seconds = train("cifar10-hierarchical")
ladder_results = vae_tf.evaluate(ladder, test_ds, iwae_k=None, seed=0)
_, kls = ladder.kl_terms(test_x[:500], seed=0)
level_kls = [float(np.mean(kl)) for kl in kls]
metrics["hierarchical"] = {
    "test_bits_per_dim": ladder_results["test_bits_per_dim"],
    "test_kl_nats": ladder_results["test_kl_nats"],
    "test_kl_per_level_nats": level_kls,
    "train_seconds": ladder_seconds,
}
print(f"KL per level (nats, 16x16 level first): {np.round(level_kls, 2)}")
print(
    f"bits/dim: single level {results['test_bits_per_dim']:.3f}, "
    f"two levels {ladder_results['test_bits_per_dim']:.3f}"
)
plotting.plot_samples(
    output_dir / "samples_hierarchical.png",
    np.asarray(ladder.sample(64, seed=0)),
    title="Prior samples of the two-level VAE: means of p(x | z)",
)

"""
## A latent that stays in use: leaning on the neighbours

A PixelCNN decoder (`cifar10-pixelcnn`) reaches the lowest bits/dim here,
but with a KL of almost zero: it models the image so well from the pixels
already drawn that the latent is not worth its cost, and generating from
`z` or coding with it gains nothing. `cifar10-lossless` keeps the latent in
use with two choices:

- a likelihood that sees only a little context (`vae_tf.likelihoods.
  LocalAutoregressiveGaussian(channel_autoregressive=True)`): each sub-pixel
  is a discretised Gaussian whose mean and scale add terms for its causal
  neighbours (left, above-left, above, above-right) and for the earlier
  channels of its own pixel (green leans on red, blue on both), with weights
  the decoder predicts per pixel. Local texture is left to this neighbourhood;
  everything larger (shapes, colours, lighting) must come through `z`;
- free bits (Kingma et al. 2016, arXiv:1606.04934): each latent dimension's
  KL counts at least 0.25 nats in the loss, so the optimiser gains nothing
  from switching a dimension off early.

The same model codes images losslessly in tutorial 07, which is why it must
code quickly: the neighbours are known when a row is decoded, so a pixel
costs a few multiply-adds, not a network call.
"""

local, _, _, local_seconds = train("cifar10-lossless")
local_results = vae_tf.evaluate(local, test_ds, iwae_k=None, seed=0)
dims = math.prod(local.image_shape)
metrics["lossless_preset"] = {
    "test_bits_per_dim": local_results["test_bits_per_dim"],
    "test_kl_bits_per_dim": local_results["test_kl_nats"] / (dims * math.log(2)),
    "test_active_units": local_results["test_active_units"],
    "num_latent_dims": local_results["test_num_latent_dims"],
    "train_seconds": local_seconds,
}
print(
    f"cifar10-lossless: {local_results['test_bits_per_dim']:.3f} bits/dim, of which "
    f"the latent's KL {metrics['lossless_preset']['test_kl_bits_per_dim']:.3f}; "
    f"{local_results['test_active_units']} of "
    f"{local_results['test_num_latent_dims']} latent dimensions active"
)

"""
Its pictures, three ways. **Reconstructions**: encode a test image, decode
the posterior mean, and draw the pixels in raster order, each from its
Gaussian given the pixels drawn before it. **Samples at a temperature**:
`z ~ N(0, T^2 I)`; a lower `T` stays nearer the prior's centre, where the
decoder has seen the most, and gives more typical, plainer images.
**What the latent carries**: one `z`, several draws of the pixels. What stays
the same across a row is what `z` decided; what changes is what the
neighbourhood model adds by itself.
"""

z_mean, _ = local.encode(test_x[:16])
local_params = local.decoder(z_mean)
plotting.plot_reconstructions(
    output_dir / "lossless_reconstructions.png",
    test_x[:16],
    np.asarray(local.likelihood.sample(local_params, seed=0)),
    title="cifar10-lossless: test images (left) and reconstructions drawn "
    "from p(x | z) (right)",
)
temperatures = (1.0, 0.7, 0.4)
grids = [
    plotting.image_grid(
        np.asarray(local.likelihood.sample(local.generate_params(16, t, seed=3), 4))
    )
    for t in temperatures
]
plotting.plot_image_row(
    output_dir / "lossless_temperatures.png",
    grids,
    [f"samples, T = {t}" for t in temperatures],
)
draws = 6
rows = [test_x[:4]] + [
    np.asarray(local.likelihood.sample(local_params[:4], seed=10 + i))
    for i in range(draws)
]
carried = np.stack(rows, axis=1).reshape(-1, *local.image_shape)
plotting.plot_samples(
    output_dir / "lossless_one_z_many_draws.png",
    carried,
    title="A test image, then 6 pixel draws given its posterior mean z",
    cols=draws + 1,
)

with open(output_dir / "metrics.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(f"figures and metrics.json in {output_dir}")

"""
## What to look at

First `test_kl_nats` in `metrics.json`. A discretised likelihood learns the
colour statistics of the data before anything else, and while it does, the
latent carries almost nothing: after the `--quick` run's few dozen steps
the KL is close to zero, the reconstruction means are one flat average
colour and the sampled reconstructions are noise around it. That is the
posterior collapse that `04_challenges.py` measures and fixes; with the full
run the KL grows, and the means take the shapes and colours of the inputs.

Then compare the means with the samples: the means are smooth because the
decoder hedges between plausible textures; the samples carry the texture the
mean averages away, at the price of pixel noise.

`reconstructions_mse.png` puts the two losses side by side: the MSE model's
means are blurrier, and its bits/dim (`mse_baseline` in `metrics.json`) are
worse than the mixture's, although both were trained the same way: a fixed
`sigma` is too wide for the flat regions and too narrow for the edges.

Then `hierarchical`: its KL per level says how much each map carries. A
single-level VAE leaves most of the detail to the per-pixel likelihood; a
second level, and more training time, lower the bits/dim. README's results
table has the full runs, and a VAE whose decoder is a PixelCNN over the
pixels (`cifar10-pixelcnn`) for the lowest bits/dim.

Last, `lossless_preset`: the local model's bits/dim with a KL that is a
real share of them (the full preset: 3.52 bits/dim, 0.42 of them the
latent's, 1,024 of 1,024 dimensions active). In
`lossless_one_z_many_draws.png` the shapes and colours hold along each row
and only fine texture changes: that is what the latent carries. The
`--quick` run's few dozen steps do not get that far: its bits/dim are still
near 8 (no better than storing the bytes), the latent unused and the draws
noise; the full run is about 45 to 70 minutes on 2 CPU cores.
"""
