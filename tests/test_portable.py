"""Files decode anywhere: encoded here, decoded in fresh processes that run
TensorFlow differently (one thread, oneDNN off, XLA on, other batch groups).

Every preset that codes losslessly writes a file here with the default,
fixed-point arithmetic; each other process must give back the same images,
bit for bit.
"""

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from vae_tf import data, presets
from vae_tf.compression import BitsBackCodec, container

HERE = Path(__file__).resolve().parent

RUNTIMES = {
    "one thread": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "XLA on": {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"},
    "other batch groups": {"REGROUP": "3"},
}
LOSSLESS_PRESETS = sorted(
    name
    for name, preset in presets.PRESETS.items()
    if not preset.lossy and "lossless" in preset.build_model(0).coding
)


def codable_images(model, count=13):
    """Real digits, binary for a Bernoulli likelihood, else 8-bit."""
    images, _ = data.load_arrays("mnist", "test", source="bundled")
    images = images[:count]
    try:
        model.likelihood.check_codable(images)
    except ValueError:
        images = np.where(images > 127, 255, 0).astype(np.uint8)
    return images


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """`{preset: (model path, file path, images)}`, each file coded here."""
    folder = tmp_path_factory.mktemp("portable")
    files = {}
    for name in LOSSLESS_PRESETS:
        model = presets.get(name).build_model(0)
        model.build((None, 28, 28, 1))
        images = codable_images(model)
        codec = BitsBackCodec(model, batch_size=4)
        assert codec.arithmetic == "fixed-point"
        (folder / f"{name}.vtfz").write_bytes(codec.compress(images))
        model.save(folder / f"{name}.keras")
        files[name] = (folder / f"{name}.keras", folder / f"{name}.vtfz", images)
    return folder, files


def decode_elsewhere(folder, files, runtime):
    out = folder / f"{runtime.replace(' ', '_')}.npz"
    pairs = [str(p) for model, file, _ in files.values() for p in (model, file)]
    env = {**os.environ, **RUNTIMES[runtime]}
    finished = subprocess.run(
        [sys.executable, str(HERE / "portable_decode.py"), str(out), *pairs],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return np.load(out)


def test_lossless_files_decode_bit_exactly_under_every_runtime(written):
    folder, files = written
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        decoded = dict(
            zip(
                RUNTIMES,
                pool.map(lambda r: decode_elsewhere(folder, files, r), RUNTIMES),
            )
        )
    for runtime, arrays in decoded.items():
        for i, (name, (_, _, images)) in enumerate(files.items()):
            got = np.stack([arrays[f"file{i}_{j}"] for j in range(len(images))])
            np.testing.assert_array_equal(got, images, err_msg=f"{name}, {runtime}")


def test_the_file_records_its_arithmetic_and_old_files_read_as_float(written):
    _, files = written
    _, file, _ = files[LOSSLESS_PRESETS[0]]
    parsed = container.unpack(file.read_bytes())
    assert parsed.params["arithmetic"] == 1  # fixed-point
    # A file from before the setting has none: it was written in float arithmetic.
    model = keras.saving.load_model(files[LOSSLESS_PRESETS[0]][0])
    images = files[LOSSLESS_PRESETS[0]][2]
    float_codec = BitsBackCodec(model, batch_size=4, arithmetic="float")
    encoded = float_codec.encode(images)
    settings = dict(float_codec.settings)
    del settings["arithmetic"]
    old = container.pack(
        container.Container(
            container.LOSSLESS,
            float_codec.fingerprint,
            1,
            np.asarray(encoded.sizes),
            settings,
            encoded.payload,
        )
    )
    codec, _ = BitsBackCodec.from_file(model, old)
    assert codec.arithmetic == "float"
    np.testing.assert_array_equal(BitsBackCodec.decompress_bytes(model, old), images)
    with pytest.raises(ValueError, match="Unknown arithmetic"):
        BitsBackCodec(model, arithmetic="double")
