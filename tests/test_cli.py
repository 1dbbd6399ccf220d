import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vae_tf import cli, data, runs
from vae_tf.tflite import TFLiteNetwork


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = cli.main(
        [
            "train",
            "--preset",
            "mnist-dense",
            "--epochs",
            "2",
            "--batch-size",
            "256",
            "--output-dir",
            str(out),
            "--source",
            "bundled",
            "--progress",
            "none",
        ]
    )
    assert code == 0
    return out


def test_train_writes_model_export_figures_and_metrics(run_dir):
    for name in (
        "model.keras",
        "saved_model/saved_model.pb",
        "run.json",
        "history.json",
        "loss_curves.png",
        "reconstructions.png",
        "samples.png",
    ):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["preset"] == "mnist-dense"
    assert metrics["train_seconds"] > 0 and metrics["train_images_per_second"] > 0
    # Two epochs on 10k images: far better than a blank decoder (543 nats),
    # far from converged.
    assert 100 < metrics["test_negative_elbo_nats"] < 250
    # The 0.1 name of the key (it held the negative ELBO) stays until 0.3.
    assert metrics["test_elbo_nats"] == metrics["test_negative_elbo_nats"]
    history = json.loads((run_dir / "history.json").read_text())
    assert history["loss"][1] < history["loss"][0]


def test_evaluate_prints_elbo_and_iwae_as_json(run_dir, capsys):
    assert cli.main(["evaluate", str(run_dir), "--iwae-k", "50"]) == 0
    results = json.loads(capsys.readouterr().out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert results["test_negative_elbo_nats"] == pytest.approx(
        metrics["test_negative_elbo_nats"], rel=1e-6
    )
    assert results["test_nll_iwae_nats"] < results["test_negative_elbo_nats"]
    assert results["iwae_k"] == 50


def test_sample_writes_a_grid_and_the_same_seed_writes_the_same_grid(run_dir, tmp_path):
    for name in ("a.png", "b.png"):
        assert (
            cli.main(
                [
                    "sample",
                    str(run_dir),
                    "-n",
                    "16",
                    "-o",
                    str(tmp_path / name),
                    "--seed",
                    "3",
                ]
            )
            == 0
        )
    a, b = (np.asarray(Image.open(tmp_path / name)) for name in ("a.png", "b.png"))
    assert a.shape == (4 * 29 - 1, 4 * 29 - 1)
    np.testing.assert_array_equal(a, b)


def test_sample_out_dir_writes_one_png_per_image_reproducibly(run_dir, tmp_path):
    def sample(out, seed, *extra):
        argv = ["sample", str(run_dir), "-n", "5", "--output-dir", str(out)]
        return cli.main([*argv, "--seed", str(seed), *extra])

    assert sample(tmp_path / "a", 3) == 0
    assert sample(tmp_path / "b", 3, "--temperature", "1.0") == 0
    assert sample(tmp_path / "c", 4) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [f"sample_{i:05d}.png" for i in range(5)]
    for name in names:
        a = np.asarray(Image.open(tmp_path / "a" / name))
        assert a.shape == (28, 28) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, np.asarray(Image.open(tmp_path / "b" / name)))
    assert not all(
        np.array_equal(
            np.asarray(Image.open(tmp_path / "a" / n)),
            np.asarray(Image.open(tmp_path / "c" / n)),
        )
        for n in names
    )
    # Writing again into the same folder would replace files: refused by default.
    assert sample(tmp_path / "a", 5) == 2
    assert sample(tmp_path / "a", 5, "--overwrite") == 0


def test_sample_files_match_the_grid_of_the_same_seed(run_dir, tmp_path):
    assert (
        cli.main(["sample", str(run_dir), "-n", "4", "--output-dir", str(tmp_path)])
        == 0
    )
    assert (
        cli.main(["sample", str(run_dir), "-n", "4", "-o", str(tmp_path / "g.png")])
        == 0
    )
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    first = np.asarray(Image.open(tmp_path / "sample_00000.png"))
    np.testing.assert_array_equal(grid[:28, :28], first)


def test_output_flags_name_a_file_or_a_folder_and_old_folder_flags_still_work(
    run_dir, tmp_path, capsys
):
    # -o/--output is a file and --output-dir a folder in every command; the
    # folder flags of 0.1 (sample --out-dir, export -o) work for one version
    # and say what to use.
    argv = ["sample", str(run_dir), "-n", "2", "--out-dir", str(tmp_path / "old")]
    assert cli.main(argv) == 0
    assert "--out-dir is deprecated here" in capsys.readouterr().err
    argv[-2:] = ["--output-dir", str(tmp_path / "new")]
    assert cli.main(argv) == 0
    assert "deprecated" not in capsys.readouterr().err
    for name in ("sample_00000.png", "sample_00001.png"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "old" / name)),
            np.asarray(Image.open(tmp_path / "new" / name)),
        )
    assert cli.main(["sample", str(run_dir), "-n", "2"]) == 2
    assert "-o FILE.png (a grid) or --output-dir DIR" in capsys.readouterr().err
    assert cli.main(["export", str(run_dir), "-o", str(tmp_path / "sm")]) == 0
    assert "use --output-dir" in capsys.readouterr().err
    assert (tmp_path / "sm" / "saved_model.pb").is_file()


def test_outputs_are_never_replaced_or_deleted_unasked(run_dir, tmp_path, capsys):
    # An export replaces its folder: only an empty one or an earlier export.
    mine = tmp_path / "documents"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("important")
    for target in (mine, run_dir):
        assert cli.main(["export", str(run_dir), "--output-dir", str(target)]) == 2
        assert "not a SavedModel's" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "important" and (mine / "sub").is_dir()
    assert (run_dir / "model.keras").is_file()
    again = tmp_path / "export"
    for _ in range(2):  # over an earlier export: replaced
        assert cli.main(["export", str(run_dir), "--output-dir", str(again)]) == 0
    # sample -o keeps an existing file unless --overwrite.
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"mine")
    argv = ["sample", str(run_dir), "-n", "2", "-o", str(grid)]
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert grid.read_bytes() == b"mine"
    assert cli.main([*argv, "--overwrite"]) == 0
    assert Image.open(grid).size == (2 * 29 - 1, 29 - 1)
    # An old folder flag and --output-dir that disagree: refused, not dropped.
    argv = ["export", str(run_dir), "-o", str(tmp_path / "a"), "--output-dir"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, str(tmp_path / "b")])
    assert exit_info.value.code == 2
    assert "not allowed with the old folder flag" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_data_no_source_can_provide_is_one_line(tmp_path, capsys):
    argv = ["train", "--preset", "cifar10-lossy", "--output-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "Cannot get 'cifar10'" in err
    assert not (tmp_path / "r").exists()


def run_images(count=4):
    test, _ = data.load_arrays("mnist", "test", source="bundled")
    return (test[:count] > 127).astype("float32")  # binary digits


def test_export_command_rewrites_the_saved_model(run_dir, tmp_path):
    out = tmp_path / "exported"
    assert cli.main(["export", str(run_dir), "--output-dir", str(out)]) == 0
    # Served without vae_tf's Python classes: the same numbers as the model.
    served = tf.saved_model.load(str(out))
    model, _ = runs.load_run(run_dir)
    x = run_images()
    np.testing.assert_allclose(
        served.reconstruct(x)["x_mean"], model.reconstruct(x), atol=1e-5
    )
    z_mean, z_log_var = model.encode(x)
    encoded = served.encode(x)
    np.testing.assert_allclose(encoded["z_mean"], z_mean, atol=1e-5)
    np.testing.assert_allclose(encoded["z_log_var"], z_log_var, atol=1e-5)


def test_export_command_writes_quantised_tflite_networks(run_dir, tmp_path, capsys):
    out = tmp_path / "lite"
    argv = ["export", str(run_dir), "--format", "tflite", "--quantize", "float16"]
    assert cli.main([*argv, "--output-dir", str(out)]) == 0
    assert "decoder.tflite" in capsys.readouterr().err
    # float16 weights: the networks compute what the model does, to half
    # precision, and the files are about half the float32 size.
    model, _ = runs.load_run(run_dir)
    x = run_images()
    z_mean, _ = model.encode(x)
    lite_z = TFLiteNetwork(out / "encoder.tflite")(x=x)["z_mean"]
    np.testing.assert_allclose(lite_z, z_mean, rtol=2e-2, atol=2e-2)
    logits = TFLiteNetwork(out / "decoder.tflite")(z=np.asarray(z_mean))["x_params"]
    np.testing.assert_allclose(logits, model.decoder(z_mean), rtol=2e-2, atol=5e-2)
    weights = sum(w.numpy().nbytes for w in model.decoder.weights)
    assert (out / "decoder.tflite").stat().st_size < 0.6 * weights


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--preset", "imagenet-huge", "--output-dir", "{tmp}/x"],
            "Unknown preset",
        ),
        (["evaluate", "{tmp}/missing"], "No run directory"),
        (["sample", "{tmp}", "-o", "{tmp}/g.png"], "no model.keras"),
        (["sample", "{run}", "-o", "{tmp}/grid.jpg"], ".png"),
        (
            ["sample", "{run}", "--labels", "3", "--output-dir", "{tmp}/s"],
            "unconditional",
        ),
        (
            ["train", "--output-dir", "{run}", "--epochs", "1"],
            "already holds a trained model",
        ),
        (["export", "{run}", "--quantize", "int8"], "--format tflite only"),
    ],
)
def test_bad_commands_exit_2_with_a_clear_message(
    argv, message, run_dir, tmp_path, capsys
):
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in argv]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "x", "-n", "0", "-o", "g.png"],
        ["train", "--epochs", "-3", "--output-dir", "x"],
    ],
)
def test_invalid_numbers_are_rejected_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    for command in (["train"], ["evaluate"], ["sample"], ["export"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: vae-tf {command[0]}" in capsys.readouterr().out


def test_the_module_runs_as_the_vae_tf_command():
    result = subprocess.run(
        [sys.executable, "-m", "vae_tf.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "usage: vae-tf" in result.stdout
    assert all(c in result.stdout for c in ("train", "evaluate", "sample", "export"))
