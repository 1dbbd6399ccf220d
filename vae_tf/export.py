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

__all__ = ["export_saved_model"]

# What a SavedModel directory holds: only such a directory is replaced.
_SAVED_MODEL_ENTRIES = {"saved_model.pb", "fingerprint.pb", "variables", "assets"}


def _check_replaceable(path: str):
    if os.path.isfile(path):
        raise NotADirectoryError(
            f"--output-dir must be a directory for the SavedModel. Received: {path}"
        )
    if not os.path.isdir(path):
        return
    entries = set(os.listdir(path))
    if entries and not (
        "saved_model.pb" in entries and entries <= _SAVED_MODEL_ENTRIES
    ):
        others = sorted(entries - _SAVED_MODEL_ENTRIES)
        raise FileExistsError(
            f"{path} holds files that are not a SavedModel's (e.g. {others[0]}); "
            "an export replaces its folder, so it only writes into an empty "
            "folder or over an earlier export. Choose another --output-dir."
        )


def export_saved_model(model, path, verbose: bool = False) -> str:
    """Write `model` as a SavedModel with the endpoints of its family.

    The endpoints are the model's own (`model.add_endpoints`): see the module
    docstring. The directory is written next to `path` and moved into place
    at the end, so an existing export is never left half-overwritten.

    Args:
        model: a built `vae_tf` model.
        path: the SavedModel directory to write: absent, empty, or a
            SavedModel (which is replaced). Any other folder is refused, so
            an export never deletes files of yours.
        verbose: print Keras's summary of the endpoints.

    Returns:
        `path`.

    Raises:
        ValueError: if the model is not built (its image shape is unknown).
        vae_tf.models.NotSupportedError: a model family with no SavedModel.
        FileExistsError: `path` holds files that are not a SavedModel's.
        NotADirectoryError: `path` is a file.
    """
    path = os.path.abspath(os.fspath(path))
    _check_replaceable(path)
    archive = keras.export.ExportArchive()
    model.add_endpoints(archive)

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
