"""
Title: The challenges of VAEs, measured: posterior collapse, beta, blur, NaNs
Author: vae_tf developers
Date created: 2026/11/28
Last modified: 2026/11/28
Description: A VAE whose latents collapse and the same VAE fixed (active
units, KL per dimension, ELBO); the reconstruction-KL trade-off of beta;
how the likelihood decides blur; why the loss never turns NaN.
"""

"""
## Introduction

VAEs have well-known problems, and each has a fix that works — when the
numbers say so. This tutorial shows four, each with its measurement:

1. **Posterior collapse**: the KL term switches the latents off and `z`
   carries nothing. We diagnose it with the *active units* of Burda et al.
   (2016) and the KL of each latent dimension (`vae_tf.latent_diagnostics`),
   and fix it with *free bits* (`VAE(free_bits=...)`), a *KL warm-up*
   (`vae_tf.callbacks.BetaSchedule`) and the right beta.
2. **beta**: weighting the KL by beta (beta-VAE) moves a model along a
   trade-off between reconstruction and KL; a sweep traces the curve.
3. **Blurry samples**: a fixed-variance Gaussian (an MSE loss) or a Bernoulli
   cross-entropy on grey-level pixels make the decoder average, and the
   average of plausible digits is a blur. A likelihood with a learned scale,
   or a discretised logistic mixture, lets the decoder commit; we measure
   sharpness and bits/dim for each.
4. **NaNs**: exponentials of log-variances and logs of probabilities
   overflow on extreme inputs; we show the naive formulas failing and the
   package's staying finite.

Run it with `python tutorials/04_challenges.py --quick` (a few minutes) or
without `--quick` for the measured run (about 15 minutes on 2 CPU cores).
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

import keras
import numpy as np
import tensorflow as tf

import vae_tf
from vae_tf import data, plotting, presets
from vae_tf.callbacks import BetaSchedule

"""
## Hyperparameters
"""


@dataclasses.dataclass(frozen=True)
class Config:
    collapse_epochs: int = 5
    free_bits: float = 0.5
    warmup_epochs: int = 3
    sweep_epochs: int = 5
    betas: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    blur_epochs: int = 5
    num_train_images: int | None = None
    num_test_images: int | None = None
    xla: bool = True  # the preset's choice; a quick run's few steps do not repay it
    seed: int = 0


parser = argparse.ArgumentParser(description="VAE challenges, measured.")
parser.add_argument("--quick", action="store_true", help="a two-minute run")
parser.add_argument("--output-dir", default="outputs/04_challenges")
parser.add_argument("--data-dir", help="folder with mnist.npz (else $VAE_TF_DATA_DIR)")
args = parser.parse_args()

config = Config()
if args.quick:
    config = dataclasses.replace(
        config,
        collapse_epochs=1,
        warmup_epochs=1,
        sweep_epochs=1,
        betas=(1.0, 4.0),
        blur_epochs=1,
        num_train_images=3000,
        num_test_images=1000,
        xla=False,
    )
output_dir = Path(args.output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
metrics = {"quick": args.quick, "config": dataclasses.asdict(config)}
print(config)

train_images, _ = data.load_arrays("mnist", "train", data_dir=args.data_dir)
test_images, _ = data.load_arrays("mnist", "test", data_dir=args.data_dir)
train_images = train_images[: config.num_train_images]
test_images = test_images[: config.num_test_images]
test_binary = data.make_dataset(data.binarize(test_images, seed=0), batch_size=500)


def fit(model, epochs, callbacks=()):
    """Train with the `mnist-dense` recipe (Adam 2e-3, warm-up + cosine decay)."""
    keras.utils.set_random_seed(config.seed)
    preset = presets.get("mnist-dense")
    preset.compile(
        model, len(train_images), epochs, preset.batch_size, jit_compile=config.xla
    )
    dataset = data.make_dataset(
        train_images, batch_size=preset.batch_size, shuffle=True, seed=config.seed
    )
    model.fit(dataset, epochs=epochs, callbacks=list(callbacks), verbose=2)
    return model


"""
## 1. Posterior collapse, as Keras users meet it

The most common collapse in Keras code comes from one line: a reconstruction
loss *averaged* over pixels (`keras.losses.binary_crossentropy` and
`keras.losses.mean_squared_error` average over the last axis) next to a KL
*summed* over latent dimensions. Multiply that loss by the 784 pixels of an
MNIST digit and it is

```
784 * (mean_pixels BCE + KL) = reconstruction + 784 * KL
```

a beta-VAE with beta = 784. Adam is nearly invariant to the scale of the
loss, so training either one gives the same updates. Every nat in `z` now
costs 784 nats of reconstruction to be worth keeping, and no latent dimension
is: the posterior collapses to the prior, the decoder draws the average
digit, and `z` is ignored.

The diagnostics (`vae_tf.latent_diagnostics`, part of `vae_tf.evaluate`):

- **KL per dimension**: `KL(q(z_u | x) || N(0, 1))` averaged over test
  images. A collapsed dimension costs ~0 nats — and carries ~0 nats.
- **Active units** (Burda et al. 2016): dimension `u` is active when its
  posterior mean varies across images, `Cov_x(E_q[z_u]) > 0.01`.

Then the same run with one change each:

- **Free bits** (Kingma et al. 2016): the loss charges each dimension at
  least `free_bits` nats (`sum_u max(free_bits, KL_u)`), so information below
  that floor is free, and the optimiser has no reason to switch a dimension
  off. The ELBO we report is the true one, floor or not.
- **KL warm-up** (Bowman et al. 2016; Sønderby et al. 2016): beta ramps from
  0 to its value over the first epochs (`BetaSchedule`), so the decoder
  learns to use `z` before the KL weighs in.
- **The ELBO itself**: beta = 1, what `VAE.train_step` computes — the
  reconstruction summed over pixels, like the KL over dimensions.
"""

PIXELS = 28 * 28


def collapse_run(name, beta, free_bits=0.0, callbacks=()):
    model = presets.dense_mnist_vae(64, (1024, 512), "gelu", seed=config.seed)
    model.beta = beta
    model.free_bits = free_bits
    fit(model, config.collapse_epochs, callbacks)
    results = vae_tf.evaluate(model, test_binary, iwae_k=None)
    row = {
        "beta": beta,
        "free_bits": free_bits,
        "test_negative_elbo_nats": results["test_negative_elbo_nats"],
        "test_kl_nats": results["test_kl_nats"],
        "active_units": results["test_active_units"],
        "kl_per_dim_nats": results["test_kl_per_dim_nats"],
    }
    print(
        f"{name}: -ELBO {row['test_negative_elbo_nats']:.2f} nats, KL "
        f"{row['test_kl_nats']:.2f} nats, {row['active_units']} active units of 64"
    )
    return row


collapse = {
    "pixel_mean_loss": collapse_run("pixel-mean loss (beta=784)", PIXELS),
    "free_bits": collapse_run(
        "beta=784 + free bits", PIXELS, free_bits=config.free_bits
    ),
    "kl_warmup": collapse_run(
        "beta=784 + KL warm-up",
        PIXELS,
        callbacks=[
            BetaSchedule("linear", warmup_epochs=config.warmup_epochs, max_beta=PIXELS)
        ],
    ),
    "elbo": collapse_run("the ELBO (beta=1)", 1.0),
}
metrics["collapse"] = collapse
plotting.plot_curve(
    output_dir / "kl_per_dimension.png",
    np.arange(1, 65),
    {
        name.replace("_", " "): np.maximum(
            sorted(row["kl_per_dim_nats"], reverse=True), 1e-6
        )
        for name, row in collapse.items()
    },
    xlabel="latent dimension (sorted by KL)",
    ylabel="KL of the dimension (nats, test mean)",
    title="Which latent dimensions carry information",
    logy=True,
)

"""
## 2. beta: reconstruction against KL

`VAE(beta=...)` (or `vae.beta = ...`, or a `BetaSchedule`) weights the KL
term. `beta > 1` squeezes information out of `z` (fewer active units, worse
reconstructions, more "disentangled" latents in Higgins et al. 2017);
`beta < 1` lets `z` carry more than the ELBO pays for. Only `beta = 1` trains
the bound itself, and the reported `elbo` is always the true bound. A sweep
with the dense MNIST VAE traces the trade-off.
"""

sweep = []
for beta in config.betas:
    model = presets.dense_mnist_vae(64, (1024, 512), "gelu", seed=config.seed)
    model.beta = beta
    fit(model, config.sweep_epochs)
    results = vae_tf.evaluate(model, test_binary, iwae_k=None)
    sweep.append(
        {
            "beta": beta,
            "test_reconstruction_nats": results["test_reconstruction_nats"],
            "test_kl_nats": results["test_kl_nats"],
            "test_negative_elbo_nats": results["test_negative_elbo_nats"],
            "active_units": results["test_active_units"],
        }
    )
    print(sweep[-1])
metrics["beta_sweep"] = sweep
plotting.plot_curve(
    output_dir / "beta_tradeoff.png",
    [row["test_kl_nats"] for row in sweep],
    {"reconstruction": [row["test_reconstruction_nats"] for row in sweep]},
    xlabel="KL (nats per test image): what z carries",
    ylabel="reconstruction term (nats per test image)",
    title="The beta sweep: each point one model, labelled by beta",
    annotate=[f"beta={row['beta']:g}" for row in sweep],
)
plotting.plot_curve(
    output_dir / "beta_active_units.png",
    [row["beta"] for row in sweep],
    {
        "active units": [row["active_units"] for row in sweep],
    },
    xlabel="beta",
    ylabel="active units (of 64)",
    title="Larger beta switches latent dimensions off",
    logx=True,
)

"""
## 3. Blur and the likelihood

A decoder's mean image is the average of what it thinks the image could be
given `z`; it is blurry when `z` leaves much open. How much `z` is worth
carrying is set by the likelihood: it prices every pixel error. We train the
same dense VAE on grey-level (8-bit) MNIST with four observation models:

- **Bernoulli cross-entropy** on grey levels (the keras.io example's loss):
  not a likelihood of 8-bit data at all, so it has no bits/dim.
- **Fixed-variance Gaussian** (`DiscretizedGaussian(scale=0.2)`, a standard
  deviation of 0.1 of the [0, 1] range): an MSE loss with a fixed price per
  squared error. A large sigma makes errors cheap and the decoder averages;
  a small one makes them dear and `z` must carry more.
- **Learned-variance Gaussian** (`DiscretizedGaussian()`): the decoder also
  states how sure it is, per pixel, and pays for errors accordingly.
- **Discretised logistic mixture** (`DiscretizedLogisticMixture(5)`): a
  pixel can be "black or white, not grey" — several modes per pixel.

Sharpness is the mean absolute Laplacian of the images, relative to that of
real test digits (1.0 = as sharp as the data).
"""


def sharpness(images):
    """Mean |Laplacian| of images in [0, 1] (a 3x3 discrete Laplacian)."""
    kernel = tf.constant([[0, 1, 0], [1, -4, 1], [0, 1, 0]], tf.float32)
    images = tf.convert_to_tensor(np.asarray(images, np.float32))
    response = tf.nn.conv2d(images, kernel[:, :, None, None], 1, "VALID")
    return float(tf.reduce_mean(tf.abs(response)))


test_float = test_images.astype("float32") / 255.0
test_grey = data.make_dataset(test_images, batch_size=500)
real_sharpness = sharpness(test_float)
likelihoods = {
    "bernoulli_cross_entropy": vae_tf.Bernoulli(None),
    "fixed_variance_gaussian": vae_tf.DiscretizedGaussian(scale=0.2),
    "learned_variance_gaussian": vae_tf.DiscretizedGaussian(),
    "logistic_mixture": vae_tf.DiscretizedLogisticMixture(5),
}
blur = {}
for name, likelihood in likelihoods.items():
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(64, (1024, 512), activation="gelu"),
        vae_tf.DenseDecoder(
            (28, 28, likelihood.param_channels(1)), (512, 1024), activation="gelu"
        ),
        likelihood,
        seed=config.seed,
    )
    fit(model, config.blur_epochs)
    results = vae_tf.evaluate(model, test_grey, iwae_k=None)
    samples = np.asarray(model.sample(500, seed=1))
    reconstructions = np.asarray(model.reconstruct(test_float[:500]))
    blur[name] = {
        "test_bits_per_dim": None
        if name == "bernoulli_cross_entropy"
        else results["test_bits_per_dim"],
        "test_kl_nats": results["test_kl_nats"],
        "active_units": results["test_active_units"],
        "sample_sharpness": sharpness(samples) / real_sharpness,
        "reconstruction_sharpness": sharpness(reconstructions) / real_sharpness,
    }
    print(name, blur[name])
    plotting.plot_samples(
        output_dir / f"samples_{name}.png",
        samples[:64],
        title=name.replace("_", " "),
    )
metrics["blur"] = blur

"""
## 4. NaN safety

Two formulas in a VAE overflow easily. The KL needs `exp(log sigma^2)`: an
encoder whose raw output reaches 100 gives `exp(100) = 2.7e43`, beyond
float32 after a few more nats. The Bernoulli log-likelihood needs
`log(sigmoid(logit))`, which is `log(0) = -inf` for a logit of -200.
vae_tf bounds the log-variance smoothly (`10 tanh(raw / 10)`, identity near
0) and computes log-likelihoods from logits with log-sum-exp forms. Here are
the naive formulas and the package's on the same extreme values:
"""

raw_log_var = tf.constant([[-200.0, 0.0, 200.0]])
z_mean = tf.constant([[1e3, 0.0, -1e3]])
naive_kl = 0.5 * (tf.square(z_mean) + tf.exp(raw_log_var) - 1.0 - raw_log_var)
bounded = vae_tf.encoders.bound_log_var(raw_log_var, 10.0)
package_kl = vae_tf.bounds.gaussian_kl(z_mean, bounded)
logits = tf.constant([[-200.0, 0.0, 200.0]])
targets = tf.constant([[1.0, 1.0, 0.0]])
naive_log_p = targets * tf.math.log(tf.sigmoid(logits)) + (1 - targets) * tf.math.log(
    1 - tf.sigmoid(logits)
)
package_log_p = -tf.nn.sigmoid_cross_entropy_with_logits(targets, logits)
print("naive KL:", naive_kl.numpy(), "vae_tf KL:", package_kl.numpy())
print("naive log p:", naive_log_p.numpy(), "vae_tf log p:", package_log_p.numpy())

"""
And end to end: an encoder with weights scaled a thousandfold, fed extreme
images, still gives a finite loss and finite gradients.
"""

model = presets.dense_mnist_vae(8, (64,), seed=0)
model.build((None, 28, 28, 1))
for weight in model.encoder.weights:
    weight.assign(weight * 1000.0)
extreme = tf.constant(
    np.tile([[0.0], [1.0]], (392, 1)).reshape(1, 28, 28, 1), tf.float32
)
with tf.GradientTape() as tape:
    reconstruction, kl = model.compute_terms(tf.repeat(extreme, 8, 0), training=True)
    loss = tf.reduce_mean(reconstruction + kl)
gradients = tape.gradient(loss, model.trainable_weights)
metrics["nan_safety"] = {
    "naive_kl_finite": bool(np.all(np.isfinite(naive_kl))),
    "vae_tf_kl_finite": bool(np.all(np.isfinite(package_kl))),
    "naive_log_p_finite": bool(np.all(np.isfinite(naive_log_p))),
    "vae_tf_log_p_finite": bool(np.all(np.isfinite(package_log_p))),
    "extreme_weights_loss_finite": bool(np.isfinite(float(loss))),
    "extreme_weights_gradients_finite": all(
        bool(np.all(np.isfinite(g))) for g in gradients
    ),
}
print(metrics["nan_safety"])

with open(output_dir / "metrics.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(f"figures and metrics.json in {output_dir}")

"""
## What to look at

- `collapse`: the pixel-averaged loss against the same run with free bits,
  with a KL warm-up, and with the ELBO: active units, total KL and test
  -ELBO. A warm-up cannot help here: once beta reaches 784 the price of
  information is back. `kl_per_dimension.png` shows where it went.
- `beta_sweep` and `beta_tradeoff.png`: as beta grows, KL falls and the
  reconstruction term rises; the ELBO is best near beta = 1.
- `blur`: sharpness of samples and reconstructions, the KL (what `z`
  carries) and bits/dim for each likelihood; compare the four sample grids.
  Sharpness follows the KL more than the name of the loss.
- `nan_safety`: the naive formulas overflow, the package's do not.
"""
