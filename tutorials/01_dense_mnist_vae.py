"""
Title: A dense variational autoencoder on MNIST
Author: vae_tf developers
Date created: 2026/11/28
Last modified: 2026/11/28
Description: The ELBO, the reparameterisation trick and the Gaussian KL built
by hand, then a dense VAE trained with `model.fit`, evaluated in nats and
exported.
"""

"""
## Introduction

A variational autoencoder (VAE; Kingma & Welling 2014, arXiv:1312.6114) is a
generative model `p(x, z) = p(z) p(x | z)` with a latent vector `z ~ N(0, I)`
and a neural *decoder* for `p(x | z)`. Its log-likelihood `log p(x)` has no
closed form, so a neural *encoder* `q(z | x)` is trained alongside it to
maximise the evidence lower bound (ELBO):

```
log p(x) >= ELBO(x) = E_q(z|x)[log p(x | z)] - KL(q(z | x) || p(z))
```

The first term asks the decoder to reconstruct `x` from codes the encoder
gives it; the second keeps those codes close to the prior, so that decoding
fresh prior samples gives new images. Both terms are in nats per image, and
the *negative* ELBO is the loss we minimise: an upper bound on the test
negative log-likelihood that papers report.

This tutorial builds the three pieces by hand — the reparameterisation trick,
the Gaussian KL and the Bernoulli log-likelihood — checks each against an
independent computation, then trains `vae_tf.VAE`, which is those same pieces
in a `keras.Model`.

Run it with `python tutorials/01_dense_mnist_vae.py --quick` (about a minute)
or without `--quick` for the full 10-epoch run.
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
import tensorflow as tf

import vae_tf
from vae_tf import data, plotting, presets

"""
## Hyperparameters

One frozen dataclass holds every choice; `--quick` swaps in a smaller run.
The defaults are those of the `mnist-dense` preset, chosen by measurement
(see README's results table).
"""


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = presets.get("mnist-dense").epochs
    batch_size: int = presets.get("mnist-dense").batch_size
    num_train_images: int | None = None  # None: the whole training set
    iwae_k: int = 1000
    num_test_images: int | None = None
    seed: int = 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--quick", action="store_true", help="a one-minute run")
    parser.add_argument("--output-dir", default="outputs/01_dense_mnist_vae")
    parser.add_argument(
        "--data-dir", help="folder with mnist.npz (else $VAE_TF_DATA_DIR)"
    )
    return parser.parse_args(argv)


args = parse_args()
config = Config()
if args.quick:
    config = dataclasses.replace(config, epochs=1, iwae_k=100, num_test_images=1000)
if args.epochs:
    config = dataclasses.replace(config, epochs=args.epochs)
output_dir = Path(args.output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(config.seed)
metrics = {"quick": args.quick}
print(config)

"""
## The data: dynamically binarised MNIST

`vae_tf.data` reads MNIST from a local folder of keras-layout `.npz` files
(`--data-dir` or `$VAE_TF_DATA_DIR`), else through tensorflow-datasets, else —
offline — from a real 10,000-image subset bundled with the package.

A Bernoulli likelihood models *binary* pixels. The standard setting for
reported MNIST likelihoods is *dynamic binarisation*: each grey level is read
as a probability and a fresh binary image `x ~ Bernoulli(grey)` is drawn every
time the model sees it, so the model never sees the same binary image twice.
`vae_tf.Bernoulli("dynamic")` does that inside the training step. The test set
is binarised once, with a fixed seed, so test numbers are comparable.
"""

train_images, _ = data.load_arrays("mnist", "train", data_dir=args.data_dir)
test_images, _ = data.load_arrays("mnist", "test", data_dir=args.data_dir)
train_images = train_images[: config.num_train_images]
test_images = test_images[: config.num_test_images]
train_ds = data.make_dataset(
    train_images, batch_size=config.batch_size, shuffle=True, seed=config.seed
)
test_binary = data.binarize(test_images, seed=0)
test_ds = data.make_dataset(test_binary, batch_size=500)
print(f"train: {train_images.shape}, test: {test_binary.shape}")
print(
    f"test set: mean grey level {test_images.mean() / 255:.4f}, binarised "
    f"{test_binary.mean():.4f}"
)

"""
The two means agree: a Bernoulli sample keeps each pixel's expected value.

## The reparameterisation trick

The ELBO's first term is an expectation over `z ~ q(z | x) = N(mu, sigma^2)`,
and we need its gradient with respect to the encoder's outputs `mu` and
`log sigma^2`. Sampling `z` directly blocks the gradient; writing the sample as
a deterministic function of the parameters and independent noise does not:

```
z = mu + sigma * eps,   eps ~ N(0, I),   sigma = exp(0.5 * log sigma^2)
```
"""


def reparameterize(z_mean, z_log_var, eps):
    return z_mean + tf.exp(0.5 * z_log_var) * eps  # (batch, latent_dim)


z_mean = tf.Variable([[0.5, -1.0]])
z_log_var = tf.Variable([[0.0, math.log(4.0)]])
eps = tf.constant([[1.0, 1.0]])
with tf.GradientTape() as tape:
    z = reparameterize(z_mean, z_log_var, eps)
    target = tf.reduce_sum(z**2)
grad_mean, grad_log_var = tape.gradient(target, [z_mean, z_log_var])
print(
    "z =",
    z.numpy(),
    " dz^2/dmu =",
    grad_mean.numpy(),
    " dz^2/dlogvar =",
    grad_log_var.numpy(),
)

"""
By hand: `z = (1.5, 1.0)`, `d z^2 / d mu = 2 z = (3, 2)` and
`d z^2 / d log sigma^2 = 2 z * 0.5 * sigma * eps = (1.5, 2)`: gradients reach
both parameters.

## The KL term in closed form

For a diagonal Gaussian posterior and the standard normal prior the KL needs
no sampling (Kingma & Welling 2014, appendix B):

```
KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2)
```

per dimension. We check it against a Monte Carlo estimate of
`E_q[log q(z) - log p(z)]`.
"""


def gaussian_kl(z_mean, z_log_var):
    return 0.5 * (
        z_mean**2 + tf.exp(z_log_var) - 1.0 - z_log_var
    )  # (batch, latent_dim)


samples = reparameterize(z_mean, z_log_var, tf.random.normal((200_000, 2), seed=1))
log_q = -0.5 * (
    math.log(2 * math.pi) + z_log_var + (samples - z_mean) ** 2 / tf.exp(z_log_var)
)
log_p = -0.5 * (math.log(2 * math.pi) + samples**2)
kl_closed = gaussian_kl(z_mean, z_log_var).numpy().ravel()
kl_monte_carlo = tf.reduce_mean(log_q - log_p, axis=0).numpy()
print("closed form:", kl_closed, " Monte Carlo:", kl_monte_carlo)
np.testing.assert_allclose(
    kl_closed, vae_tf.bounds.gaussian_kl(z_mean, z_log_var)[0], rtol=1e-6
)

"""
The two agree to Monte Carlo precision, and `vae_tf.bounds.gaussian_kl` is the
same formula (the assertion above checks it).

## The Bernoulli log-likelihood, from logits

The decoder outputs one logit `l` per pixel; `p(x=1 | z) = sigmoid(l)`. The
log-probability of a binary image is computed from the logits so that it stays
finite however confident the decoder becomes:

```
log p(x | l) = sum_pixels x * l - softplus(l)
```

Many tutorials (the keras.io VAE example among them) instead put the *grey*
values into binary cross-entropy. That number is not a log-likelihood: the
Bernoulli mass evaluated at a grey value `x` in (0, 1) is not a distribution
over grey values. Integrated over `x` in [0, 1] it does not give 1:
"""

for logit in (-3.0, 0.5, 3.0):
    grid = np.linspace(0.0, 1.0, 100_001)
    p = 1.0 / (1.0 + math.exp(-logit))
    mass = np.exp(grid * math.log(p) + (1 - grid) * math.log(1 - p))
    print(
        f"logit {logit:+.1f}: integral over [0, 1] of exp(-BCE) = "
        f"{np.trapezoid(mass, grid):.3f}"
    )

"""
Every integral is below 1, so "BCE on grey values" rewards the model with a
sub-normalised density: its value cannot be compared with published
likelihoods in nats. With binary data, as here, `exp(-BCE)` summed over
x in {0, 1} is exactly 1.

## The ELBO as a training step

Put together, the loss of one image is the negative ELBO, estimated with one
reparameterised sample:

```
loss(x) = -log p(x | z) + KL(q(z | x) || N(0, I)),   z = mu + sigma * eps
```

`vae_tf.VAE.train_step` computes exactly this (with a bounded log-variance so
`exp` cannot overflow, and an optional weight `beta` on the KL). Here it is
written out for one batch, with the package's encoder and decoder, and
compared with the package's own computation on the same noise:
"""

encoder = vae_tf.DenseEncoder(latent_dim=8, hidden_units=(64,))
decoder = vae_tf.DenseDecoder(param_shape=(28, 28, 1), hidden_units=(64,))
x = tf.constant(test_binary[:16])
z_mean, z_log_var = encoder(x)
eps = tf.random.stateless_normal(z_mean.shape, seed=[1, 0], alg="philox")
x_logits = decoder(reparameterize(z_mean, z_log_var, eps))
reconstruction = -tf.reduce_sum(x * x_logits - tf.nn.softplus(x_logits), axis=[1, 2, 3])
kl = tf.reduce_sum(gaussian_kl(z_mean, z_log_var), axis=-1)
by_hand = tf.reduce_mean(reconstruction + kl).numpy()

vae = vae_tf.VAE(encoder, decoder, vae_tf.Bernoulli("dynamic"))
package_reconstruction, package_kl = vae.compute_terms(x, seed=1)
print(
    f"negative ELBO by hand {by_hand:.3f} nats; vae_tf "
    f"{np.mean(package_reconstruction + package_kl):.3f} nats"
)

"""
Same weights, same noise (seed 1), same number: an untrained decoder costs
about 784 · ln 2 = 543 nats per image, the price of a fair coin per pixel.

## Training the dense VAE with `fit`

From here on the package does the work. The `mnist-dense` preset is a dense
encoder and mirrored decoder with a Bernoulli likelihood; the preset also
compiles with XLA (`jit_compile=True`) and runs many steps per compiled call,
which is what makes a dense VAE fast on a CPU.
"""

preset = presets.get("mnist-dense")
vae = preset.build_model(seed=config.seed)
preset.compile(vae, len(train_images), config.epochs, config.batch_size)
timer = vae_tf.callbacks.EpochTimer()
start = time.perf_counter()
history = vae.fit(
    train_ds,
    epochs=config.epochs,
    validation_data=test_ds,
    shuffle=False,  # the dataset reshuffles itself every epoch
    callbacks=[timer],
    verbose=2,
)
metrics["train_seconds"] = time.perf_counter() - start
metrics["train_images_per_second"] = timer.images_per_second(len(train_images))
metrics["epochs"] = config.epochs
vae.summary()

"""
Look at the log: `reconstruction_loss` falls quickly while `kl_loss` rises —
the encoder learns to spend nats on information about each image — and `elbo`
(the bound itself, negative) climbs towards -100.

## Evaluating in nats

The test negative ELBO is an upper bound on the test negative log-likelihood.
The importance-weighted bound (IWAE; Burda et al. 2016) with `k` samples,

```
-L_k = -log (1/k) sum_i p(x, z_i) / q(z_i | x),   z_i ~ q(z | x)
```

is a tighter bound that approaches `-log p(x)` as `k` grows: it is the NLL
estimate papers report. Bits per dimension divide by `784 · ln 2`.
"""

results = vae_tf.evaluate(vae, test_ds, iwae_k=config.iwae_k, seed=0)
print(json.dumps(results, indent=2))
metrics.update(results)

"""
The IWAE figure is lower than the ELBO: the gap is the KL between `q(z | x)`
and the true posterior that the ELBO pays and `L_k` mostly does not.

## Pictures: loss curves, reconstructions, samples

All images come from batched calls (`reconstruct` on 32 images, `sample` of
64), never one call per grid cell.
"""

plotting.plot_loss_curves(output_dir / "loss_curves.png", history.history)
plotting.plot_reconstructions(
    output_dir / "reconstructions.png",
    test_binary[:32],
    np.asarray(vae.reconstruct(test_binary[:32])),
    title="Binarised test digits (left) and their reconstructions (right)",
)
plotting.plot_samples(
    output_dir / "samples.png",
    np.asarray(vae.sample(64, seed=0)),
    title="Decoded means of z ~ N(0, I)",
)
plotting.plot_samples(
    output_dir / "samples_temperature_0.7.png",
    np.asarray(vae.sample(64, temperature=0.7, seed=0)),
    title="Decoded means of z ~ N(0, 0.7^2 I)",
)

"""
Reconstructions keep each digit's identity and style; they are grey where
the model is unsure of a pixel, since we draw the *mean* of `p(x | z)`.
Samples at temperature 0.7 look cleaner than at 1: they come from the centre
of the prior, where the decoder has seen most codes.

## Saving, reloading and serving

`model.save` writes one `.keras` file with the weights, the optimizer state
and the seed state, so training can resume exactly; `export_saved_model`
writes a SavedModel whose `encode`, `decode`, `sample` and `reconstruct`
endpoints need only TensorFlow.
"""

vae.save(output_dir / "model.keras")
reloaded = keras.saving.load_model(output_dir / "model.keras")
difference = np.abs(
    reloaded.reconstruct(test_binary[:8]) - vae.reconstruct(test_binary[:8])
).max()
print(f"largest difference after reloading: {difference}")
export_path = vae_tf.export_saved_model(vae, output_dir / "saved_model")
served = tf.saved_model.load(export_path)
served_images = served.sample(tf.constant(4), tf.constant(1.0), tf.constant(0))[
    "x_mean"
]
print(
    "served samples equal the Keras model's:",
    np.allclose(served_images, vae.sample(4, seed=0), atol=1e-5),
)
metrics["reload_max_abs_difference"] = float(difference)

"""
## What was measured

Every figure above is written to `metrics.json` next to the figures.
"""

with open(output_dir / "metrics.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(
    json.dumps(
        {
            k: metrics[k]
            for k in ("test_negative_elbo_nats", "test_nll_iwae_nats", "train_seconds")
        },
        indent=2,
    )
)
print(f"figures and metrics.json in {output_dir}")

"""
## Next

`02_latent_space_and_generation.py` looks inside the latent space:
interpolation, temperature and a conditional VAE.
"""
