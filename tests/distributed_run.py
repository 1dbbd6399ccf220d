"""Train small models alone, mirrored, or as one of N workers; save what they did.

Run by tests/test_distribute.py in fresh processes (logical devices and
TF_CONFIG must be set before TensorFlow starts). The noise (`eps` of the VAE,
the uniform noise of the lossy VAE) is a fixed function of each example here,
so that runs which split a batch differently across replicas draw the same
noise for the same image and must end with the same weights; everything else
is the real `train_step` / `test_step`.

Cases: the VAE for 6 even steps of 32 images; then, at batch 8, datasets of
1, 3, 9 and 11 images (so the last batch splits unevenly, or leaves a replica
with no image) for a VAE with free bits, and of 1 and 11 (a replica with no
image; an uneven last batch after a full one) for a lossy VAE with a
hyperprior; after each, the VAE is evaluated with `evaluate` (Keras's
`test_step`) and `vae_tf.evaluate` (ELBO and IWAE). Alone and mirrored, a
conditional VAE that is not built yet trains on 9 images with labels. Mode
`runs-mirrored` trains a preset with `vae_tf.runs.train` on 2 devices, as
`vae-tf train --strategy mirrored` does.

    python distributed_run.py single OUT.npz
    python distributed_run.py mirrored OUT.npz        # 2 logical CPU devices
    python distributed_run.py worker OUT.npz          # TF_CONFIG names the worker
    python distributed_run.py runs-mirrored OUT.npz   # runs.train, 2 devices
"""

import json
import sys
from pathlib import Path

import numpy as np

MODE, OUT = sys.argv[1], sys.argv[2]
EVEN_BATCH, EVEN_STEPS = 32, 6
UNEVEN_BATCH, UNEVEN_SIZES, LOSSY_SIZES = 8, (1, 9, 11), (1, 11)

import tensorflow as tf  # noqa: E402

if MODE in ("mirrored", "runs-mirrored"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
from keras import ops  # noqa: E402

import vae_tf  # noqa: E402
from vae_tf import distribute  # noqa: E402


class FixedNoiseVAE(vae_tf.VAE):
    def reparameterize(self, z_mean, z_log_var, seed=None):
        eps = ops.stop_gradient(ops.sin(3.0 * z_mean + 1.0))  # a function of the image
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class FixedNoiseConditionalVAE(vae_tf.ConditionalVAE):
    def reparameterize(self, z_mean, z_log_var, seed=None):
        eps = ops.stop_gradient(ops.sin(3.0 * z_mean + 1.0))
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class FixedNoiseLossyVAE(vae_tf.LossyVAE):
    def quantize_latents(self, y, training=False):
        if training:
            return y + ops.stop_gradient(0.5 * ops.sin(7.0 * y))  # in (-1/2, 1/2)
        return ops.round(y)


def build_vae(free_bits=0.0):
    keras.utils.set_random_seed(0)
    model = FixedNoiseVAE(
        vae_tf.DenseEncoder(4, (32,)),
        vae_tf.DenseDecoder((28, 28, 1), (32,)),
        vae_tf.Bernoulli("threshold"),
        seed=0,
        free_bits=free_bits,
    )
    model.build((None, 28, 28, 1))
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    return model


def build_lossy():
    keras.utils.set_random_seed(0)
    model = FixedNoiseLossyVAE(
        lmbda=0.01,
        filters=8,
        latent_channels=8,
        num_layers=2,
        channels=1,
        hyperprior_channels=4,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    return model


if MODE == "runs-mirrored":
    # What `vae-tf train --strategy mirrored` runs, in a process of its own (a
    # second MirroredStrategy in one process would share collective keys):
    # the preset's compile (one step per call under a strategy) and fit.
    import tempfile

    run_dir = Path(tempfile.mkdtemp())
    metrics = vae_tf.runs.train(
        "mnist-dense",
        run_dir,
        epochs=1,
        batch_size=500,
        source="bundled",
        strategy="mirrored",
        verbose=0,
    )
    run = json.loads((run_dir / "run.json").read_text())
    np.savez(
        OUT,
        replicas=run["replicas"],
        test_negative_elbo_nats=metrics["test_negative_elbo_nats"],
    )
    sys.exit(0)

mnist, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
strategy = distribute.make_strategy(
    {"single": "default", "mirrored": "mirrored", "worker": "multi-worker"}[MODE]
)


def train(build, images, batch_size):
    """The trained model and the `fit` logs of its one epoch."""
    with strategy.scope():
        model = build()
    if MODE == "worker":
        dataset_fn = distribute.shard_batches(images, batch_size, shuffle=False)
        history = distribute.fit_distributed(
            model, strategy, dataset_fn, epochs=1, verbose=0
        )
    else:
        dataset = vae_tf.data.make_dataset(images, batch_size=batch_size)
        history = model.fit(dataset, epochs=1, verbose=0)
    return model, {k: v[-1] for k, v in history.history.items()}


results = {"replicas": strategy.num_replicas_in_sync}


def record(name, model, logs):
    for i, weight in enumerate(model.trainable_weights):
        results[f"{name}/w{i}"] = np.asarray(weight)
    for key, value in logs.items():
        results[f"{name}/log/{key}"] = float(value)
    results[f"{name}/iterations"] = int(model.optimizer.iterations.numpy())


model, logs = train(build_vae, mnist[: EVEN_BATCH * EVEN_STEPS], EVEN_BATCH)
record("even", model, logs)

for size in UNEVEN_SIZES:
    images = mnist[:size]
    model, logs = train(lambda: build_vae(free_bits=0.2), images, UNEVEN_BATCH)
    record(f"vae{size}", model, logs)
    dataset = vae_tf.data.make_dataset(images, batch_size=UNEVEN_BATCH)
    if MODE != "worker":  # Keras's evaluate fails under multi-worker (as fit)
        evaluated = model.evaluate(dataset, verbose=0, return_dict=True)
        for key, value in evaluated.items():
            results[f"vae{size}/evaluate/{key}"] = float(value)
    with strategy.scope():
        figures = vae_tf.evaluate(model, dataset, iwae_k=4)
    for key in ("test_negative_elbo_nats", "test_nll_iwae_nats", "test_kl_nats"):
        results[f"vae{size}/vae_tf.evaluate/{key}"] = figures[key]

    if size in LOSSY_SIZES:
        crops = mnist[:size, 2:26, 2:26]  # 24x24: a multiple of the downsampling
        model, logs = train(build_lossy, crops, UNEVEN_BATCH)
        record(f"lossy{size}", model, logs)

if MODE != "worker":
    # A conditional model that is not built yet: fit builds it from a batch of
    # (images, labels), also when Keras builds it from one replica's share.
    labels = vae_tf.data.load_arrays("mnist", "train", source="bundled")[1][:9]
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = FixedNoiseConditionalVAE(
            vae_tf.DenseEncoder(4, (32,)),
            vae_tf.DenseDecoder((28, 28, 1), (32,)),
            num_classes=10,
            likelihood=vae_tf.Bernoulli("threshold"),
            seed=0,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    dataset = vae_tf.data.make_dataset(mnist[:9], labels, batch_size=UNEVEN_BATCH)
    history = model.fit(dataset, epochs=1, verbose=0)
    record("cvae9", model, {k: v[-1] for k, v in history.history.items()})

np.savez(OUT, **results)
