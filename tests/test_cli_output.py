"""What `vae-tf` prints: the data's source, progress that ends at the real step
count, and none of TensorFlow's start-up lines unless asked (`--verbose`)."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_tf import _tf_logs, cli, data, presets, runs

ROOT = Path(__file__).parent.parent
TIMEOUT = 300  # seconds for any child process
BATCH_SIZE = 128  # 79 steps over the 10,000 bundled images: not a multiple of 50
# TensorFlow's start-up lines (absl's format, or what they say).
TENSORFLOW_LINE = re.compile(
    r"^[IWE]\d{4} |cuInit|cuda drivers|oneDNN|absl::InitializeLog"
)


def child_env(tf_cpp_min_log_level=None) -> dict:
    """This environment with `TF_CPP_MIN_LOG_LEVEL` as given (removed if `None`)."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if tf_cpp_min_log_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = tf_cpp_min_log_level
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def vae_tf_command(*argv, env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "vae_tf.cli", *map(str, argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def tensorflow_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if TENSORFLOW_LINE.search(line)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`vae-tf train` of one epoch on the bundled subset, as a user runs it."""
    out = tmp_path_factory.mktemp("cli_output") / "run"
    result = vae_tf_command(
        "train", "--preset", "mnist-dense", "--epochs", 1,
        "--batch-size", BATCH_SIZE, "--source", "bundled", "--progress", "bar",
        "--output-dir", out,
        env=child_env(tf_cpp_min_log_level=None),
    )  # fmt: skip
    return out, result


def test_train_names_the_bundled_data_and_its_size_on_stderr(trained):
    _, result = trained
    with np.load(data.BUNDLED_MNIST) as bundled:
        num_train, num_test = len(bundled["y_train"]), len(bundled["y_test"])
    assert (num_train, num_test) == (10_000, 2_000)
    expected = (
        "Data: MNIST from the bundled subset (10,000 train / 2,000 test images). "
        "For the full set, pass --data-dir DIR holding mnist.npz or set "
        "$VAE_TF_DATA_DIR."
    )
    assert result.stderr.splitlines().count(expected) == 1
    assert expected not in result.stdout


def test_train_progress_bar_ends_at_the_real_step_count(trained):
    _, result = trained
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # colours
    counts = [
        (int(done), int(total))
        for done, total in re.findall(r"(?:^|[\r\n\b])\s*(\d+)/(\d+) ", text)
    ]
    steps = math.ceil(10_000 / BATCH_SIZE)
    assert steps == 79 and len(counts) >= 2
    assert {total for _, total in counts} == {steps}
    assert max(done for done, _ in counts) == steps
    assert counts[-1] == (steps, steps)
    assert not re.search(r" -\d+s ", text)  # no negative time left


def test_train_prints_none_of_tensorflows_startup_lines(trained):
    _, result = trained
    assert tensorflow_lines(result.stderr) == []
    assert "Wrote the model" in result.stderr


def test_a_command_hides_tensorflows_lines_even_at_log_level_2(trained, tmp_path):
    run_dir, _ = trained
    result = vae_tf_command(
        "sample", run_dir, "-n", 4, "-o", tmp_path / "grid.png",
        env=child_env(tf_cpp_min_log_level="2"),  # as CI exports it
    )  # fmt: skip
    assert tensorflow_lines(result.stderr) == []
    assert result.stderr.splitlines() == [f"Wrote 4 samples to {tmp_path}/grid.png"]


def test_verbose_shows_tensorflows_lines_overriding_log_level_2(trained):
    run_dir, _ = trained
    result = vae_tf_command(
        "evaluate", run_dir, "--iwae-k", 2, "--verbose",
        env=child_env(tf_cpp_min_log_level="2"),
    )  # fmt: skip
    lines = tensorflow_lines(result.stderr)
    assert lines
    # An INFO line logged after TensorFlow read TF_CPP_MIN_LOG_LEVEL (XLA
    # compiling the evaluation): at level 2 it would be hidden.
    assert any(re.match(r"I\d{4} .*XLA", line) for line in lines)
    data_line = "Data: MNIST from the bundled subset (2,000 test images)."
    assert data_line in result.stderr


def test_evaluate_names_a_local_data_file_and_its_size(trained, tmp_path, capsys):
    run_dir, _ = trained
    images = np.random.default_rng(0).integers(0, 256, (30, 28, 28), np.uint8)
    labels = np.arange(30) % 10
    np.savez(
        tmp_path / "mnist.npz",
        x_train=images,
        y_train=labels,
        x_test=images[:25],
        y_test=labels[:25],
    )
    runs.evaluate_run(
        run_dir, iwae_k=None, data_dir=str(tmp_path), print_data_source=True
    )
    assert capsys.readouterr().err.splitlines() == [
        f"Data: MNIST from {tmp_path}/mnist.npz (25 test images)."
    ]
    runs.evaluate_run(run_dir, iwae_k=None, data_dir=str(tmp_path))
    assert capsys.readouterr().err == ""  # quiet as a library


def test_train_on_an_image_folder_from_a_runs_weights(tmp_path, capsys):
    """An image-folder run names its files and split; `init_from` starts it at
    a finished run's weights and is recorded."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(41):
        pixels = rng.integers(0, 256, (20, 24), np.uint8)
        Image.fromarray(pixels).save(photos / f"img{i:03d}.png")
    # A finished run of seed 1, written by hand: its model and run.json.
    preset = presets.get("mnist-dense")
    source = preset.build_model(1)
    source.build((None, 28, 28, 1))
    (tmp_path / "a").mkdir()
    source.save(tmp_path / "a" / runs.MODEL_FILE)
    runs.write_json(tmp_path / "a" / runs.RUN_FILE, {"preset": "mnist-dense"})
    settings = dict(epochs=1, batch_size=32, verbose=0, image_dir=photos)
    settings["figures"] = False
    runs.train(
        "mnist-dense", tmp_path / "b", init_from=tmp_path / "a",
        print_data_source=True, **settings,
    )  # fmt: skip
    # Every 20th file is held out: 2 test files, 39 train files.
    assert f"Data: 41 image files under {photos} (39 train / 2 test)." in (
        capsys.readouterr().err.splitlines()
    )
    scratch = preset.build_model(0)  # what seed 0 starts from without it
    scratch.build((None, 28, 28, 1))
    trained, config = runs.load_run(tmp_path / "b")
    a, b, c = (
        np.concatenate([w.ravel() for w in model.get_weights()])
        for model in (source, trained, scratch)
    )
    # Two steps move the weights far less than two initialisations differ.
    assert np.abs(b - a).max() < 0.1 * np.abs(c - a).max()
    assert config["init_from"] == str(tmp_path / "a")
    with pytest.raises(ValueError, match="is a 'mnist-dense' run.*'mnist-conv' run"):
        runs.train("mnist-conv", tmp_path / "d", init_from=tmp_path / "a", **settings)
    with pytest.raises(FileNotFoundError, match="--init-from: .*not a finished"):
        runs.train("mnist-dense", tmp_path / "e", init_from=photos, **settings)
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


COMMANDS = [
    ["train", "--output-dir", "run"],
    ["evaluate", "run"],
    ["sample", "run", "-o", "grid.png"],
    ["export", "run"],
    ["compress", "run", "a.png", "-o", "a.vtfz"],
    ["decompress", "run", "a.vtfz", "--output-dir", "out"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda argv: argv[0])
@pytest.mark.parametrize(
    "extra, verbose", [([], False), (["--verbose"], True), (["--verb"], True)]
)
def test_every_command_takes_verbose_as_read_before_parsing(command, extra, verbose):
    argv = [*command, *extra]
    assert cli.build_parser().parse_args(argv).verbose is verbose
    assert _tf_logs.asks_for_tensorflow_logs(argv) is verbose


def test_verbose_after_a_double_dash_is_an_argument_not_the_flag():
    argv = ["compress", "run", "-o", "a.vtfz", "--", "--verbose"]
    args = cli.build_parser().parse_args(argv)
    assert args.images == ["--verbose"] and args.verbose is False
    assert _tf_logs.asks_for_tensorflow_logs(argv) is False


def test_a_program_importing_vae_tf_keeps_tensorflows_logging_and_loads_runs(
    tmp_path,
):
    """Only the `vae-tf` command hides TensorFlow's lines: `import vae_tf` in a
    program leaves TF_CPP_MIN_LOG_LEVEL unset, and its classes are registered,
    so `keras.saving.load_model` reads a `.keras` file right after it."""

    import vae_tf

    model = vae_tf.VAE(vae_tf.DenseEncoder(2, (8,)), vae_tf.DenseDecoder((4, 4, 1)))
    model.build((None, 4, 4, 1))
    model.save(tmp_path / "m.keras")
    path = str(tmp_path / "m.keras")
    script = (
        "import os, sys, vae_tf, keras\n"
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
        f"print(type(keras.saving.load_model({path!r})).__name__)\n"
    )
    env = child_env()
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["None", "VAE"]
    assert _tf_logs.cli_arguments() is None  # pytest is not the command
