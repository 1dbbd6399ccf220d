import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_images

import vae_tf

# Runs in a fresh interpreter in which `import vae_tf` fails: the SavedModel
# must serve with TensorFlow alone.
SERVE = r"""
import json, sys
sys.modules["vae_tf"] = None
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = {
    "z_mean": loaded.encode(tf.constant(x))["z_mean"].numpy().tolist(),
    "reconstruct": loaded.reconstruct(tf.constant(x))["x_mean"].numpy().tolist(),
    "decode": loaded.decode(tf.zeros((2, 4)))["x_mean"].numpy().tolist(),
    "sample": loaded.sample(tf.constant(3), tf.constant(0.7), tf.constant(11))[
        "x_mean"
    ].numpy().tolist(),
}
print(json.dumps(out))
"""


def test_saved_model_serves_without_vae_tf_and_matches_keras(tmp_path, tiny_vae):
    path = vae_tf.export_saved_model(tiny_vae, tmp_path / "saved_model")
    x = random_images(5)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", SERVE, path, str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    z_mean, _ = tiny_vae.encode(x)
    np.testing.assert_allclose(served["z_mean"], z_mean, atol=1e-5)
    np.testing.assert_allclose(
        served["reconstruct"], tiny_vae.reconstruct(x), atol=1e-5
    )
    np.testing.assert_allclose(
        served["decode"], tiny_vae.decode(np.zeros((2, 4), "float32")), atol=1e-5
    )
    np.testing.assert_allclose(
        served["sample"], tiny_vae.sample(3, temperature=0.7, seed=11), atol=1e-5
    )


def test_export_replaces_an_old_export_and_rejects_an_unbuilt_model(tmp_path, tiny_vae):
    target = tmp_path / "saved_model"
    vae_tf.export_saved_model(tiny_vae, target)
    (target / "variables" / "stale.index").write_text("old")  # an old export's
    vae_tf.export_saved_model(tiny_vae, target)
    assert not (target / "variables" / "stale.index").exists()
    assert (target / "saved_model.pb").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]  # no staging left
    # A folder with anything else in it is not an export: refused, untouched.
    (target / "stale.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a SavedModel's"):
        vae_tf.export_saved_model(tiny_vae, target)
    assert (target / "stale.txt").read_text() == "mine"
    unbuilt = vae_tf.VAE(vae_tf.DenseEncoder(2), vae_tf.DenseDecoder((28, 28, 1)))
    with pytest.raises(ValueError, match="not built"):
        vae_tf.export_saved_model(unbuilt, tmp_path / "other")
