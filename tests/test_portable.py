"""Files decode anywhere: encoded here, decoded in fresh processes that run
TensorFlow differently (one thread, oneDNN off, XLA on, other batch groups,
the fixed point's own XLA graph).

Every preset that can code writes a file here with the default, fixed-point
arithmetic (and one lossless and one lossy preset a file with the first
fixed point, `fixed-point-v1`); each other process must give back, bit for
bit, the images (lossless) or the reconstructions this process decodes
(lossy).
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
from vae_tf.compression import BitsBackCodec, LossyCodec, container

HERE = Path(__file__).resolve().parent

RUNTIMES = {
    "one thread": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "XLA on": {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"},
    "other batch groups": {"REGROUP": "3"},
    # The fixed point's XLA graph (float32 digit products), which the
    # encoding process, a short job, did not run.
    "XLA graph, one thread, oneDNN off": {
        "FIXED_POINT_XLA": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_ENABLE_ONEDNN_OPTS": "0",
    },
}
LOSSLESS_PRESETS = sorted(
    name
    for name, preset in presets.PRESETS.items()
    if not preset.lossy and "lossless" in preset.build_model(0).coding
)
LOSSY_PRESETS = sorted(name for name, preset in presets.PRESETS.items() if preset.lossy)


def codable_images(model, count=13):
    """Real digits, binary for a Bernoulli likelihood, else 8-bit; for a
    colour model, digits as colour channels, of the model's size and of
    another (coded as tiles)."""
    images, _ = data.load_arrays("mnist", "test", source="bundled")
    images = images[: 3 * count]
    if model.image_shape[-1] == 3:
        rgb = np.pad(images[..., 0], ((0, 0), (2, 2), (2, 2)))  # 32x32 digits
        rgb = np.stack([rgb[0::3], rgb[1::3], rgb[2::3]], axis=-1)[: count - 1]
        ragged = np.concatenate([rgb[0], rgb[1]], axis=1)[:, :45]  # 32x45
        return [*rgb, np.concatenate([ragged, ragged[:13]], axis=0)]  # + 45x45
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
        preset = presets.get(name)
        model = preset.build_model(0)
        model.build((None, *data.DATASETS[preset.dataset].image_shape))
        images = codable_images(model)
        codec = BitsBackCodec(model, batch_size=4)
        assert codec.arithmetic == "fixed-point"
        (folder / f"{name}.vtfz").write_bytes(codec.compress(images))
        model.save(folder / f"{name}.keras")
        files[name] = (folder / f"{name}.keras", folder / f"{name}.vtfz", images)
    for name in LOSSY_PRESETS:
        model, images = lossy_model_and_images(name)
        payload = LossyCodec(model, batch_size=2).compress(images)
        (folder / f"{name}.vtfz").write_bytes(payload)
        model.save(folder / f"{name}.keras")
        expected = LossyCodec.decompress_bytes(model, payload)  # as this one decodes
        files[name] = (folder / f"{name}.keras", folder / f"{name}.vtfz", expected)
    # Files of the first fixed-point arithmetic, which this version still
    # decodes: one lossless, one lossy.
    lossless, lossy = "mnist-8bit", LOSSY_PRESETS[0]
    model = keras.saving.load_model(files[lossless][0])
    images = files[lossless][2]
    old = BitsBackCodec(model, batch_size=4, arithmetic="fixed-point-v1")
    v1 = {lossless: (old.compress(images), images)}
    model = keras.saving.load_model(files[lossy][0])
    old = LossyCodec(model, batch_size=2, arithmetic="fixed-point-v1")
    payload = old.compress(lossy_model_and_images(lossy)[1])
    v1[lossy] = (payload, LossyCodec.decompress_bytes(model, payload))
    for name, (payload, expected) in v1.items():
        assert container.unpack(payload).params["arithmetic"] == 1
        (folder / f"{name}-v1.vtfz").write_bytes(payload)
        files[f"{name} v1"] = (files[name][0], folder / f"{name}-v1.vtfz", expected)
    return folder, files


def lossy_model_and_images(name):
    """An untrained lossy preset with random biases (so that its latents,
    side information and predicted scales vary), and 5 photos-like images
    of two sizes."""
    model = presets.get(name).build_model(0)
    model.build((None, 32, 32, 3))
    rng = np.random.default_rng(2)
    for weight in model.weights:
        if "bias" in weight.path:
            weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    ramp = np.linspace(0, 255, 48)
    smooth = np.stack([*np.meshgrid(ramp, ramp[:40]), np.full((40, 48), 90.0)], -1)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    images += [smooth.astype(np.uint8), smooth[::-1, ::-1].astype(np.uint8)]
    return model, images


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
            for j, image in enumerate(images):
                np.testing.assert_array_equal(
                    arrays[f"file{i}_{j}"], image, err_msg=f"{name}, {runtime}"
                )


def test_lossy_files_code_varying_scales_and_record_their_arithmetic(written):
    """The test above means something for the lossy presets: their side
    information predicts many different scales, and the pictures vary."""
    _, files = written
    for name in LOSSY_PRESETS:
        model_path, file, expected = files[name]
        model = keras.saving.load_model(model_path)
        codec, parsed = LossyCodec.from_file(model, file.read_bytes())
        assert codec.arithmetic == "fixed-point" == LossyCodec(model).arithmetic
        assert parsed.params["arithmetic"] == 2
        assert all(np.std(image) > 5 for image in expected)
        if codec.hyperprior:
            _, images = lossy_model_and_images(name)
            batch = model.pad(np.stack(images[:3])).astype("float32") / 255.0
            z_hat = np.round(model.hyper_analysis(model.analysis(batch)).numpy())
            assert len(np.unique(codec._latent_scales(z_hat))) >= 8


def test_the_file_records_its_arithmetic_and_old_files_read_as_float(written):
    _, files = written
    _, file, _ = files["mnist-8bit"]
    parsed = container.unpack(file.read_bytes())
    assert parsed.params["arithmetic"] == 2  # fixed-point
    # A file from before the setting has none: it was written in float
    # arithmetic (and, older than the posterior window, over the whole range).
    model = keras.saving.load_model(files["mnist-8bit"][0])
    images = files["mnist-8bit"][2]
    float_codec = BitsBackCodec(
        model, batch_size=4, arithmetic="float", latent_window=0, seed_words=32
    )
    encoded = float_codec.encode(images)
    settings = dict(encoded.settings)
    del settings["arithmetic"], settings["latent_window"]
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
    # A file from a version with an arithmetic this one does not know.
    newer = container.pack(
        container.Container(
            container.LOSSLESS,
            float_codec.fingerprint,
            1,
            np.asarray(encoded.sizes),
            {**settings, "arithmetic": 3},
            encoded.payload,
        )
    )
    with pytest.raises(container.CorruptFileError, match="newer vae_tf"):
        BitsBackCodec.decompress_bytes(model, newer)
