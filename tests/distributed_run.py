"""Train one small VAE for a few steps: alone, mirrored, or as one of N workers.

Run by tests/test_distribute.py in fresh processes (logical devices and
TF_CONFIG must be set before TensorFlow starts). The noise `eps` is a fixed
function of each example here, so that runs which split a batch differently
across replicas draw the same noise for the same image and must end with the
same weights; everything else is the real `VAE.train_step`.

    python distributed_run.py single OUT.npz
    python distributed_run.py mirrored OUT.npz        # 2 logical CPU devices
    python distributed_run.py worker OUT.npz          # TF_CONFIG names the worker
"""

import sys

import numpy as np

MODE, OUT = sys.argv[1], sys.argv[2]
GLOBAL_BATCH, STEPS = 32, 6

import tensorflow as tf  # noqa: E402

if MODE == "mirrored":
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


def build():
    keras.utils.set_random_seed(0)
    model = FixedNoiseVAE(
        vae_tf.DenseEncoder(4, (32,)),
        vae_tf.DenseDecoder((28, 28, 1), (32,)),
        vae_tf.Bernoulli("static"),
        seed=0,
    )
    model.build((None, 28, 28, 1))
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    return model


images, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
images = images[: GLOBAL_BATCH * STEPS]

strategy = distribute.make_strategy(
    {"single": "default", "mirrored": "mirrored", "worker": "multi-worker"}[MODE]
)
with strategy.scope():
    model = build()
if MODE == "worker":
    dataset_fn = distribute.shard_batches(images, GLOBAL_BATCH, shuffle=False)
    distribute.fit_distributed(model, strategy, dataset_fn, epochs=1, verbose=0)
else:
    dataset = vae_tf.data.make_dataset(images, batch_size=GLOBAL_BATCH)
    model.fit(dataset, epochs=1, verbose=0)
weights = {f"w{i}": np.asarray(w) for i, w in enumerate(model.trainable_weights)}
np.savez(
    OUT,
    replicas=strategy.num_replicas_in_sync,
    iterations=int(model.optimizer.iterations.numpy()),
    **weights,
)
