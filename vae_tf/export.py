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
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

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
    if not model.built or model.image_shape is None:
        raise ValueError(
            "The VAE is not built, so its image shape is unknown: train it or call "
            "`build((None, height, width, channels))` before exporting."
        )
    image_spec = tf.TensorSpec((None, *model.image_shape), tf.float32, name="x")
    latent_spec = tf.TensorSpec((None, *model.latent_shape), tf.float32, name="z")

    def encode(x):
        z_mean, z_log_var = model.posterior(x)
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    def decode(z):
        return {"x_mean": model.likelihood.mean(model.decode_params(z))}

    def sample(num_samples, temperature, seed):
        x_params = model.generate_params(num_samples, temperature, seed=seed)
        return {"x_mean": model.likelihood.mean(x_params)}

    def reconstruct(x):
        return {"x_mean": model.likelihood.mean(model.reconstruct_params(x))}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("decode", decode, input_signature=[latent_spec])
    archive.add_endpoint(
        "sample",
        sample,
        input_signature=[
            tf.TensorSpec((), tf.int32, name="num_samples"),
            tf.TensorSpec((), tf.float32, name="temperature"),
            tf.TensorSpec((), tf.int32, name="seed"),
        ],
    )
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])

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
