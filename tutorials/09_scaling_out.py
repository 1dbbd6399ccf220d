"""
Title: Scaling out: tf.distribute, mixed precision, resuming, your own images
Author: vae_tf developers
Date created: 2026/11/28
Last modified: 2026/11/29
Description: Train the same VAE on several devices and several worker
processes, see what each replica must divide its loss by, run
the networks in half precision, survive a crash, and train on a folder of
your own images, all on a CPU.
"""

"""
## Introduction

One device stops being enough: the data grows, the model grows, or the
machine is pre-empted. TensorFlow's `tf.distribute` runs one *replica* of the
model per device (`MirroredStrategy`) or per machine
(`MultiWorkerMirroredStrategy`); each replica computes gradients on its share
of the batch, and the strategy adds them up before every update. We can try
all of it on a laptop: TensorFlow splits one CPU into two *logical* devices,
and two worker processes on 127.0.0.1 make a cluster.

Run it with `python tutorials/09_scaling_out.py --quick` (about a minute) or
without `--quick` (a few minutes on 2 CPU cores).
"""

"""
## Setup

Logical devices must be configured before TensorFlow touches a device, so
that comes first.
"""

# ruff: noqa: E402  (the keras.io format puts prose before the imports)
import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras
import numpy as np
from PIL import Image

import vae_tf
from vae_tf import data, distribute, image_folders, runs

"""
## Hyperparameters
"""


@dataclasses.dataclass(frozen=True)
class Config:
    num_train_images: int = 20000
    batch_size: int = 128  # global: split across the replicas
    epochs: int = 3
    num_folder_images: int = 400
    seed: int = 0


parser = argparse.ArgumentParser(description="Scaling out VAE training.")
parser.add_argument("--quick", action="store_true", help="a one-minute run")
parser.add_argument("--output-dir", default="outputs/09_scaling_out")
parser.add_argument("--data-dir", help="folder with mnist.npz (else $VAE_TF_DATA_DIR)")
args = parser.parse_args()

config = Config()
if args.quick:
    config = dataclasses.replace(
        config, num_train_images=4000, epochs=2, num_folder_images=60
    )
output_dir = Path(args.output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(config.seed)
metrics = {"quick": args.quick}
print(config)
print("logical devices:", [d.name for d in tf.config.list_logical_devices("CPU")])

images, _ = data.load_arrays("mnist", "train", data_dir=args.data_dir)
images = images[: config.num_train_images]


def small_vae(seed=config.seed):
    model = vae_tf.presets.dense_mnist_vae(16, (256,), "gelu", seed=seed)
    model.build((None, 28, 28, 1))
    return model


"""
## Part 1: what each replica divides its loss by

The strategy *sums* the replicas' gradients. If each replica took the *mean*
loss of its own share of the batch, N replicas would add up N means: an
update N times too large, as if the learning rate had been multiplied by N.
Dividing that mean by N fixes even batches, but not the last, smaller batch
of an epoch: 3 images on 2 replicas split 2 + 1, and the lone image would
weigh double; 1 image leaves a replica with none, whose mean is 0 / 0.

`vae_tf.VAE.training_loss` does what holds for any split: each replica sums
its images' terms and divides by the step's image count over *all*
replicas (`vae_tf.distribute.replica_sum`, an all-reduce of the counts), so
the summed gradients are exactly one device's. The reported metrics are the
step's totals too.

We check it with one plain SGD step from the same weights on the same batch:
on one device, under `MirroredStrategy` with 2 replicas, and under
`MirroredStrategy` with a `train_step` that takes each replica's own mean.
The noise `eps` differs between the runs, so we compare the size of the
update.
"""


class LocalMeanVAE(vae_tf.VAE):
    """The mistake: each replica's own mean; the summed update is 2x too large."""

    def train_step(self, data):
        with tf.GradientTape() as tape:
            reconstruction, kl = self.compute_terms_per_dim(data, training=True)
            loss = keras.ops.mean(reconstruction) + keras.ops.mean(
                keras.ops.sum(kl, axis=-1)
            )
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return {"loss": loss}


def update_norm(strategy, model_class):
    with strategy.scope():
        reference = small_vae()
        model = model_class.from_config(reference.get_config())
        model.build((None, 28, 28, 1))
        model.set_weights(reference.get_weights())
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    before = [w.numpy().copy() for w in model.trainable_weights]
    batch = data.make_dataset(images[: config.batch_size], batch_size=config.batch_size)
    model.fit(batch, epochs=1, verbose=0)
    after = [w.numpy() for w in model.trainable_weights]
    return float(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before))))


mirrored = tf.distribute.MirroredStrategy()
print("replicas:", mirrored.num_replicas_in_sync)
one_device = update_norm(tf.distribute.get_strategy(), vae_tf.VAE)
scaled = update_norm(mirrored, vae_tf.VAE)
unscaled = update_norm(mirrored, LocalMeanVAE)
print(f"update size, 1 device:                         {one_device:.4f}")
print(f"update size, 2 replicas, global count:         {scaled:.4f}")
print(f"update size, 2 replicas, each replica's mean:  {unscaled:.4f}")
metrics["update_ratio_scaled"] = scaled / one_device
metrics["update_ratio_unscaled"] = unscaled / one_device

"""
The package's step moves the weights as far as one device does; the
per-replica mean twice as far. (`tests/test_distribute.py` checks the
stronger statement: with the same noise, mirrored and multi-worker training
end with the same weights as one device, to 1e-5, for datasets of 1, 3, 9
and 11 images at batch 8, whose last batch splits unevenly or leaves a
replica empty.)

## Part 2: `fit` under `MirroredStrategy`

Build and compile the model inside `strategy.scope()` (its variables are then
mirrored on every device) and call `fit` as usual, with the *global* batch
size. Two settings differ from one device: `jit_compile=False`, since XLA
fails under `MirroredStrategy` on CPU devices in TF 2.21 (on GPUs you may try
it). Batches need not split evenly: the last, smaller batch of an epoch is
shared out as it comes, and the loss is still the mean over its images.
"""

with mirrored.scope():
    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
train = data.make_dataset(images, batch_size=config.batch_size, shuffle=True, seed=0)
start = time.perf_counter()
history = model.fit(train, epochs=config.epochs, verbose=2)
metrics["mirrored"] = {
    "final_loss": history.history["loss"][-1],
    "seconds": time.perf_counter() - start,
}

"""
The command line does the same with `vae-tf train --preset mnist-dense
--strategy mirrored --output-dir runs/m`: on a machine with 4 GPUs the batch
is split 4 ways.

## Part 3: several machines

`MultiWorkerMirroredStrategy` runs one process per machine; each learns the
cluster from the `TF_CONFIG` environment variable:

```
TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
            "task": {"type": "worker", "index": 0}}'  # index 1 on host2
vae-tf train --preset mnist-dense --strategy multi-worker --output-dir runs/mw
```

Worker 0 (the chief) writes the run directory; the others keep only a
backup of their own. Keras 3.15's `fit` fails under this strategy
(keras-team/keras#20585), so `vae-tf` runs `vae_tf.distribute.fit_distributed`:
`strategy.run(model.train_step)` over each worker's share of every global
batch. We launch two workers on this machine:
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ports = [free_port(), free_port()]
cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
run_dir = output_dir / "multi_worker_run"
command = [
    sys.executable, "-m", "vae_tf.cli", "train", "--preset", "mnist-dense",
    "--epochs", "1", "--batch-size", "256", "--strategy", "multi-worker",
    "--output-dir", str(run_dir), "--overwrite", "--progress", "none",
]  # fmt: skip
if args.quick:
    command += ["--source", "bundled"]  # the 10,000-image MNIST subset
elif args.data_dir:
    command += ["--data-dir", args.data_dir]
workers = []
for index in range(2):
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}
    )
    workers.append(
        subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    )
for index, worker in enumerate(workers):
    _, err = worker.communicate(timeout=900)
    if worker.returncode:
        raise RuntimeError(f"worker {index} failed:\n{err.decode()[-3000:]}")
worker_metrics = json.loads((run_dir / "metrics.json").read_text())
worker_elbo = worker_metrics["test_negative_elbo_nats"]
print(f"2 workers, 1 epoch: test -ELBO {worker_elbo:.1f} nats")
metrics["multi_worker"] = {
    "test_negative_elbo_nats": worker_metrics["test_negative_elbo_nats"],
    "replicas": json.loads((run_dir / "run.json").read_text())["replicas"],
    "backups_left": sorted(p.name for p in run_dir.glob("backup*")),
}

"""
## Part 4: mixed precision

Half-precision arithmetic is 2 to 8 times faster on recent GPUs, and its
tensors take half the memory. A mixed policy computes the layers in half
precision and keeps the variables in float32; `vae_tf.VAE` casts the
networks' outputs to float32, so the KL, the log-likelihood and the ELBO are
summed in float32, where 784 terms of a few nats each lose nothing.
`mixed_float16` (GPUs) also needs loss scaling, which `compile` adds by
wrapping the optimizer in a `LossScaleOptimizer`; `mixed_bfloat16` (TPUs,
recent CPUs) has float32's range and needs none.
"""

with distribute.precision_policy("mixed_bfloat16"):
    half = small_vae()
    half.compile(optimizer=keras.optimizers.Adam(2e-3))
print(
    "encoder computes in",
    half.encoder.compute_dtype,
    "; weights are",
    half.weights[0].dtype,
)
reconstruction, kl = half.compute_terms(images[:64].astype("float32") / 255.0, seed=0)
print("loss terms are", reconstruction.dtype)
history = half.fit(train, epochs=1, verbose=2)
metrics["mixed_bfloat16"] = {
    "compute_dtype": half.encoder.compute_dtype,
    "loss_dtype": str(reconstruction.dtype),
    "final_loss": history.history["loss"][-1],
}

"""
On the command line: `vae-tf train --precision mixed_float16 ...`.
`benchmarks/training_speed.py` measures what it gains per preset; on a CPU
without bfloat16 instructions it is slower, not faster.

## Part 5: surviving a crash

`keras.callbacks.BackupAndRestore` saves the model and optimizer after every
epoch and, when `fit` starts again with the same backup folder, restores the
last one and trains only the epochs left. `vae-tf train` always keeps such a
backup in the run directory (and a log of every epoch's metrics); running
the same command after a crash resumes. Here we simulate a crash with a
callback that raises after the second epoch:
"""


class Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash after epoch 2")


backup_dir = output_dir / "backup"
epochs_run = []
record = keras.callbacks.LambdaCallback(
    on_epoch_begin=lambda epoch, logs: epochs_run.append(epoch + 1)
)
model = small_vae()
model.compile(optimizer=keras.optimizers.Adam(2e-3))
try:
    model.fit(
        train,
        epochs=4,
        verbose=0,
        callbacks=[record, keras.callbacks.BackupAndRestore(backup_dir), Crash()],
    )
except RuntimeError as error:
    print("first run:", error, "- epochs run:", epochs_run)
first_run = list(epochs_run)
epochs_run.clear()
model = small_vae()  # a fresh process would start from scratch like this
model.compile(optimizer=keras.optimizers.Adam(2e-3))
model.fit(
    train,
    epochs=4,
    verbose=0,
    callbacks=[record, keras.callbacks.BackupAndRestore(backup_dir)],
)
print("second run, epochs run:", epochs_run)
metrics["resume"] = {"first_run_epochs": first_run, "second_run_epochs": epochs_run}

"""
The second run trained epochs 3 and 4 only, from the weights and optimizer
state saved after epoch 2. `tests/test_distribute.py` does it for real: it
kills `vae-tf train` with SIGKILL mid-run and checks that the rerun finishes
only the remaining epochs and that the optimizer's step count shows no lost
or repeated epoch.

## Part 6: your own images

`vae-tf train --image-dir photos/` trains on a folder of PNG and JPEG files:
listed once, read and decoded batch by batch as training runs (any number of
files in constant memory), each scaled so its shorter side fits the preset's
image size and centre-cropped to it. Every 20th file is held out as the test
set. We save some digits as PNG files and train on the folder:
"""

folder = output_dir / "my_images"
folder.mkdir(exist_ok=True)
for i, image in enumerate(images[: config.num_folder_images]):
    big = np.kron(image[..., 0], np.ones((2, 2), np.uint8))  # 56x56: gets resized
    Image.fromarray(big).save(folder / f"digit_{i:04d}.png")
files = image_folders.list_images(folder)
folder_metrics = runs.train(
    "mnist-dense",
    output_dir / "image_dir_run",
    epochs=config.epochs,
    image_dir=folder,
    overwrite=True,
    verbose=0,
)
print(
    f"{len(files)} files: trained on {len(files) - folder_metrics['num_test_images']},"
    f" test -ELBO {folder_metrics['test_negative_elbo_nats']:.1f} nats on the held-out "
    f"{folder_metrics['num_test_images']}"
)
metrics["image_dir"] = {
    "files": len(files),
    "num_test_images": folder_metrics["num_test_images"],
    "test_negative_elbo_nats": folder_metrics["test_negative_elbo_nats"],
}

"""
## Conclusion

A strategy changes where the replicas run, not what a step computes, as long
as the loss is divided by the number of replicas; `vae_tf` does that in its
`train_step`, runs `fit` under `MirroredStrategy` and its own loop under
`MultiWorkerMirroredStrategy`, computes the ELBO in float32 under mixed
precision, resumes after a crash, and streams your folders. The README's
"GPUs and clusters" section lists the commands.
"""

with open(output_dir / "metrics.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(f"metrics.json in {output_dir}")
