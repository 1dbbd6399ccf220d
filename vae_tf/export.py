"""Export a trained VAE as a TensorFlow SavedModel that needs no vae_tf to serve.

The SavedModel holds four endpoints, each a plain TensorFlow graph:

| endpoint | inputs | outputs |
| --- | --- | --- |
| `encode` | `x`: float32 `(batch, h, w, c)` in [0, 1] | `z_mean`, `z_log_var` |
| `decode` | `z`: float32 `(batch, *latent_shape)` | `x_mean` |
| `sample` | `num_samples`, `temperature`, `seed` (scalars) | `x_mean` |
| `reconstruct` | `x` | `x_mean` |

`sample` with `seed=s` draws exactly what `VAE.sample(n, temperature, seed=s)`
draws in Python. Load it anywhere with `tf.saved_model.load(path)`.

A `ConditionalVAE`'s endpoints also take `labels`, int32 `(batch,)`: `encode(x,
labels)`, `decode(z, labels)`, `reconstruct(x, labels)` and `sample(labels,
temperature, seed)`, which draws one image per label.

A `LossyVAE` (the lossy codec's model) has `analysis(x) -> y`,
`synthesis(y_hat) -> x_hat` and `reconstruct(x) -> x_hat` (latents rounded),
for images of any size that is a multiple of `model.downsampling`.
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from vae_tf._validation import assert_images, assert_positive, one_label_each

__all__ = ["export_saved_model"]


def export_saved_model(model, path, verbose: bool = False) -> str:
    """Write `model` as a SavedModel with `encode`, `decode`, `sample`, `reconstruct`.

    The directory is written next to `path` and moved into place at the end,
    so an existing export is never left half-overwritten.

    Args:
        model: a built `vae_tf.VAE`.
        path: the SavedModel directory to write (replaced if it exists).
        verbose: print Keras's summary of the endpoints.

    Returns:
        `path`.

    Raises:
        ValueError: if the model is not built (its image shape is unknown).
    """
    lossy = hasattr(model, "synthesis")  # a vae_tf.LossyVAE
    if not model.built or (not lossy and model.image_shape is None):
        raise ValueError(
            "The VAE is not built, so its image shape is unknown: train it or call "
            "`build((None, height, width, channels))` before exporting."
        )
    archive = keras.export.ExportArchive()
    if lossy:
        _add_lossy_endpoints(archive, model)
    elif getattr(model, "num_classes", None):
        _add_conditional_endpoints(archive, model)
    else:
        _add_endpoints(archive, model)

    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".saved_model-", dir=parent)
    try:
        archive.write_out(staging, verbose=verbose)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return path


def _specs(model):
    return (
        tf.TensorSpec((None, *model.image_shape), tf.float32, name="x"),
        tf.TensorSpec((None, *model.latent_shape), tf.float32, name="z"),
        tf.TensorSpec((), tf.float32, name="temperature"),
        tf.TensorSpec((), tf.int32, name="seed"),
    )


def _add_endpoints(archive, model):
    image_spec, latent_spec, temperature_spec, seed_spec = _specs(model)

    def encode(x):
        z_mean, z_log_var = model.posterior(assert_images(x))
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    def decode(z):
        return {"x_mean": model.likelihood.mean(model.decode_params(z))}

    def sample(num_samples, temperature, seed):
        x_params = model.generate_params(
            assert_positive(num_samples, "num_samples"),
            assert_positive(temperature, "temperature"),
            seed=seed,
        )
        return {"x_mean": model.likelihood.mean(x_params)}

    def reconstruct(x):
        x_params = model.reconstruct_params(assert_images(x))
        return {"x_mean": model.likelihood.mean(x_params)}

    archive.track(model)
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("decode", decode, input_signature=[latent_spec])
    archive.add_endpoint(
        "sample",
        sample,
        input_signature=[
            tf.TensorSpec((), tf.int32, name="num_samples"),
            temperature_spec,
            seed_spec,
        ],
    )
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])


def _add_conditional_endpoints(archive, model):
    image_spec, latent_spec, temperature_spec, seed_spec = _specs(model)
    label_spec = tf.TensorSpec((None,), tf.int32, name="labels")

    # The labels are checked in the graph as in Python: ids in [0, num_classes),
    # one per image (`ConditionalVAE.check_batch`, `prepare_labels`).
    def encode(x, labels):
        x, labels = model.check_batch(x, labels)
        z_mean, z_log_var = model.posterior(x, labels=model.prepare_labels(labels))
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    def decode(z, labels):
        labels = model.prepare_labels(one_label_each(labels, z, "latent"))
        x_params = model.decode_params(z, labels=labels)
        return {"x_mean": model.likelihood.mean(x_params)}

    def sample(labels, temperature, seed):
        x_params = model.generate_params(
            tf.shape(labels)[0],
            assert_positive(temperature, "temperature"),
            seed=seed,
            labels=model.prepare_labels(labels),
        )
        return {"x_mean": model.likelihood.mean(x_params)}

    def reconstruct(x, labels):
        x, labels = model.check_batch(x, labels)
        x_params = model.reconstruct_params(x, labels=model.prepare_labels(labels))
        return {"x_mean": model.likelihood.mean(x_params)}

    archive.track(model)
    archive.add_endpoint("encode", encode, input_signature=[image_spec, label_spec])
    archive.add_endpoint("decode", decode, input_signature=[latent_spec, label_spec])
    archive.add_endpoint(
        "sample", sample, input_signature=[label_spec, temperature_spec, seed_spec]
    )
    archive.add_endpoint(
        "reconstruct", reconstruct, input_signature=[image_spec, label_spec]
    )


def _add_lossy_endpoints(archive, model):
    image_spec = tf.TensorSpec((None, None, None, model.channels), tf.float32, "x")
    latent_spec = tf.TensorSpec(
        (None, None, None, model.latent_channels), tf.float32, name="y_hat"
    )

    def checked(x):  # images in [0, 1], sized a multiple of the downsampling
        factor = model.downsampling
        sized = tf.debugging.assert_equal(
            tf.shape(x)[1:3] % factor,
            0,
            message=f"x's height and width must be multiples of {factor}",
        )
        with tf.control_dependencies([sized]):
            return assert_images(x)

    def analysis(x):
        return {"y": model.analysis(checked(x))}

    def synthesis(y_hat):
        return {"x_hat": tf.clip_by_value(model.synthesis(y_hat), 0.0, 1.0)}

    def reconstruct(x):
        return synthesis(tf.round(model.analysis(checked(x))))

    archive.track(model)
    archive.add_endpoint("analysis", analysis, input_signature=[image_spec])
    archive.add_endpoint("synthesis", synthesis, input_signature=[latent_spec])
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])
