"""Training at scale: `tf.distribute` strategies, mixed precision, resuming.

- `make_strategy("mirrored")`: one replica per local device (GPUs, or the
  logical CPU devices of a test), trained with `fit` as usual.
- `make_strategy("multi-worker")`: `MultiWorkerMirroredStrategy`, one process
  per machine, configured by the `TF_CONFIG` environment variable. `fit`
  fails under it in Keras 3.15 (a `PerReplica` conversion error while it
  builds the model, keras-team/keras#20585), so `fit_distributed` runs the
  model's own `train_step` with `strategy.run` instead.
- `precision_policy("mixed_bfloat16")`: the networks in half precision, the
  ELBO, KL and log-likelihoods in float32 (`vae_tf.VAE` casts the networks'
  outputs); under `mixed_float16` `compile` adds loss scaling.

Why each replica divides by the step's image count over *all* replicas: the
strategy *sums* the replicas' gradients, and a batch does not always split
evenly (the last batch of an epoch of 11 images at batch 8 is 3 images: 2 on
one replica, 1 on the other; 1 image leaves a replica with none). A replica
that averaged its own share would weigh a lone image double, and an empty one
would divide 0 by 0. `VAE.training_loss` therefore sums its replica's
per-image terms and divides by the step's total count (`replica_sum`), so N
replicas make exactly the update of one device for any split, empty replicas
included; the metrics are updated with the step's totals, so `fit` reports
the mean over all images of the step.
"""

import contextlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "STRATEGIES",
    "PRECISIONS",
    "make_strategy",
    "precision_policy",
    "worker_index",
    "is_chief",
    "shard_batches",
    "fit_distributed",
    "HistoryLog",
    "replica_sum",
    "stand_in_for_empty",
    "first_replica_batch",
]

STRATEGIES = ("default", "mirrored", "multi-worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`).

    Create a multi-worker strategy first thing in the program, before any
    other TensorFlow op runs: it configures the process's collective ops.

    Raises:
        ValueError: for an unknown name, or `"multi-worker"` without a
            `TF_CONFIG` that names this worker in a cluster.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        config = _tf_config()
        if not config:
            raise ValueError(
                "--strategy multi-worker needs the TF_CONFIG environment variable: "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": '
                '{"type": "worker", "index": 0}} on each worker.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"Unknown strategy. Expected one of {STRATEGIES}. Received: {name!r}"
    )


def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if task["type"] not in ("worker", "chief") or not workers:
            raise ValueError
        int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            "TF_CONFIG must be JSON with cluster.worker (a list of host:port) and "
            f"task.type and task.index. Received: TF_CONFIG={text!r}"
        ) from None
    return config


def worker_index() -> int:
    """This process's index among the workers of `TF_CONFIG` (0 without one)."""
    config = _tf_config()
    return int(config["task"]["index"]) if config else 0


def is_chief() -> bool:
    """Whether this process writes the run's files: worker 0, or no cluster."""
    config = _tf_config()
    return not config or (
        config["task"]["type"] == "chief"
        or ("chief" not in config["cluster"] and worker_index() == 0)
    )


def replica_sum(value):
    """`value` summed over the replicas of the current step, without a gradient.

    Inside `strategy.run` (as in `fit`'s step under a strategy) this is an
    all-reduce over every replica of every worker; on one device, or in a
    cross-replica context, it is `value` itself. The result is the same on
    every replica, so a loss or metric computed from it is the step's global
    one however the batch was split.

    Args:
        value: a float tensor, e.g. `(sum_of_losses, image_count)` stacked.

    Returns:
        A tensor of `value`'s shape.
    """
    value = tf.stop_gradient(value)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def stand_in_for_empty(*tensors):
    """`(tensors, count)`: a replica's batch with one zero row if it is empty.

    A replica may get no image of a step's last, small batch. oneDNN's
    convolutions return wrong shapes for an empty batch (TensorFlow 2.21), so
    a model runs its networks on one zero image instead and keeps the first
    `count` rows of each per-image result (`count` is 0 there, so the stand-in
    adds nothing to any sum or gradient).

    Args:
        *tensors: batches with a leading batch dimension (images, labels).

    Returns:
        `(padded, count)`: the tensors (a tuple), each with at least one row,
        and the number of real rows, an int32 scalar.
    """
    count = tf.shape(tensors[0])[0]

    def pad(t):
        return tf.cond(
            count > 0,
            lambda: t,
            lambda: tf.zeros(tf.concat([[1], tf.shape(t)[1:]], 0), t.dtype),
        )

    return tuple(t if t is None else pad(t) for t in tensors), count


def first_replica_batch(strategy, iterator):
    """One replica's share of the next batch, for Keras's symbolic build.

    Keras 3.15's `fit` and `evaluate` under a strategy average the first
    batch over the replicas just to learn its shapes
    (`Trainer._maybe_symbolic_build`); that fails when the batch is split
    unevenly (1 image on 2 replicas: shapes (1, ...) and (0, ...)). One
    replica's share has the shapes too. Models call this from their own
    `_maybe_symbolic_build`.
    """
    for _, _, batches in iterator:
        batch = next(batches)
        return tf.nest.map_structure(
            lambda v: (
                strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues)
                else v
            ),
            batch,
        )
    return None


@contextlib.contextmanager
def precision_policy(name: str = "float32"):
    """Set Keras's global dtype policy inside the block, then restore it.

    Models built inside the block compute in `name`'s compute dtype; their
    variables stay float32.

    Raises:
        ValueError: for a name not in `PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise ValueError(
            f"Unknown precision. Expected one of {PRECISIONS}. Received: {name!r}"
        )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def shard_batches(images, global_batch_size: int, shuffle: bool = True, seed: int = 0):
    """A `dataset_fn` for `fit_distributed`: each replica's share of each batch.

    Every worker shuffles the same index order (same seed) and cuts it into
    the global batches one process would see with `global_batch_size`; replica
    `r` of the `R` in sync takes images `r, r + R, r + 2R, ...` of each. The
    last, smaller batch of an epoch is shared out the same way, so a replica
    may get fewer images than the others or none: every replica still runs
    every step, and `VAE.training_loss` divides by the step's total count, so
    the update is one device's for any number of images.

    Args:
        images: uint8 `(N, h, w, c)` or floats in [0, 1].
        global_batch_size: the batch size summed over all replicas.
        shuffle: reshuffle every epoch (the same order on every worker).
        seed: the shuffle seed.

    Returns:
        `dataset_fn(input_context) -> tf.data.Dataset`, giving this worker's
        replicas' batches in turn.
    """
    images = np.asarray(images)
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0

    def dataset_fn(context: tf.distribute.InputContext):
        replicas = context.num_replicas_in_sync
        local = replicas // context.num_input_pipelines  # replicas on this worker
        first = context.input_pipeline_id * local
        images_t = tf.constant(images)
        indices = tf.data.Dataset.range(len(images))
        if shuffle:
            indices = indices.shuffle(
                len(images), seed=seed, reshuffle_each_iteration=True
            )

        def shares(batch):  # this worker's replicas' shares of one global batch
            return tf.data.Dataset.range(first, first + local).map(
                lambda replica: batch[replica::replicas]
            )

        return (
            indices.batch(global_batch_size)
            .flat_map(shares)
            .map(lambda i: tf.cast(tf.gather(images_t, i), tf.float32) * scale)
            .prefetch(2)
        )

    return dataset_fn


def fit_distributed(
    model,
    strategy: tf.distribute.Strategy,
    dataset_fn,
    epochs: int,
    callbacks=(),
    verbose: int = 1,
) -> keras.callbacks.History:
    """Train with `strategy.run(model.train_step)`: `fit`'s loop for any strategy.

    The model must be built and compiled inside `strategy.scope()`. Each step
    runs `model.train_step` on every replica's share of the batch; a vae_tf
    model's logs are then the step's global figures on every replica.
    Callbacks get the usual calls, so `vae_tf.callbacks.EpochBackup` (or
    `keras.callbacks.BackupAndRestore`) resumes a run here as in `fit`.

    Args:
        model: a compiled `vae_tf.VAE` (or any model with a `train_step`).
        strategy: the strategy the model was built in.
        dataset_fn: `dataset_fn(input_context)` giving this input pipeline's
            per-replica batches (e.g. `shard_batches`).
        epochs: the total epochs (a resumed run trains the remaining ones).
        callbacks: Keras callbacks.
        verbose: print each epoch's logs (on the chief worker only).

    Returns:
        The `History` of the epochs run.
    """
    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, history], model=model, epochs=epochs
    )

    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {
            name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in logs.items()
        }

    model.stop_training = False
    if not model.optimizer.built:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    model._initial_epoch = None
    callback_list.on_train_begin()
    initial_epoch = model._initial_epoch or 0  # set by the backup callback
    logs = {}
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        for index, batch in enumerate(dataset):
            callback_list.on_train_batch_begin(index)
            logs = step(batch)
            callback_list.on_train_batch_end(index)
        logs = {name: float(value) for name, value in logs.items()}
        callback_list.on_epoch_end(epoch, logs)
        if verbose and is_chief():
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"Epoch {epoch + 1}/{epochs} - {shown}", flush=True)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history


class HistoryLog(keras.callbacks.Callback):
    """Append each epoch's logs to a JSON-lines file that survives a restart.

    `fit`'s `History` only holds the epochs of the current process; this log
    holds every epoch of a run that was interrupted and resumed. An epoch that
    was logged but not backed up (the process died in between) is trained
    again after the restart, and its stale line is dropped then.

    Args:
        path: the `.jsonl` file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first:  # drop lines of epochs being trained again
            self._first = False
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            kept = [e for e in self.read(self.path) if e["epoch"] < epoch]
            with open(self.path, "w") as f:
                f.writelines(json.dumps(e) + "\n" for e in kept)

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def read(path) -> list:
        """The logged epochs, in order (`[]` if there is no file)."""
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    @classmethod
    def history(cls, path) -> dict:
        """The log as a `History.history`-style dict of lists."""
        entries = cls.read(path)
        keys = [k for k in (entries[0] if entries else {}) if k != "epoch"]
        return {k: [e[k] for e in entries] for k in keys}
