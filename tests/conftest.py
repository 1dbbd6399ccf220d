"""Shared fixtures: offline data, a tiny model, a briefly trained model, and the
tutorials' --quick runs (started once, beside the other tests)."""

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vae_tf  # noqa: E402
from vae_tf import data  # noqa: E402


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker
        QUICK_RUNS.folder = Path(config.workerinput["vae_tf_quick_runs"])
    config.addinivalue_line(
        "markers",
        "local_network: the test serves a dataset's download host itself, on "
        "127.0.0.1, so the real network check runs (nothing leaves the machine)",
    )
    config.addinivalue_line(
        "markers",
        "tutorial(name): the test checks the --quick run of tutorials/NAME",
    )


TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
# Read before the offline fixture clears it: CI prepares the full MNIST there.
LOCAL_DATA = os.environ.get("VAE_TF_DATA_DIR")
HAVE_CIFAR = bool(LOCAL_DATA or os.environ.get("CI"))
# Longest first. CIFAR-10 tutorials need cifar10.npz (CI prepares it).
ORDER = [
    "05_conv_cifar10_vae.py",
    "07_compression.py",
    "04_challenges.py",
    "01_dense_mnist_vae.py",
    "03_conv_mnist_vae.py",
    "10_vq_vae.py",
    "09_scaling_out.py",
    "02_latent_space_and_generation.py",
    "06_denoising_and_test_images.py",
    "08_model_compression_and_deployment.py",
]
NEEDS_CIFAR = {"05_conv_cifar10_vae.py", "07_compression.py"}
QUICK_RUN_TIMEOUT = 1200  # seconds, for one tutorial's --quick run


class QuickRuns:
    """The tutorials' --quick runs, as subprocesses, two at a time.

    The runs of the selected tutorial tests start as soon as the suite is
    collected, so they run beside the in-process tests (much of which is
    single-threaded tracing and Python) instead of after them; each test then
    waits for its own run. Each run leaves `run.json` (its return code and
    stderr) in its output folder when it ends.

    With pytest-xdist (`-n 2`) the controller starts the runs, once, and the
    workers, which share its folder, wait for the `run.json` of theirs.
    """

    def __init__(self):
        self.pool = None
        self.futures = {}
        self.processes = []
        self.folder = None  # the runs' output folders are in it
        self._temporary = None
        self._lock = threading.Lock()  # no run starts once close() began
        self._closed = False

    def make_folder(self):
        if self.folder is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="vae_tf_tutorials_")
            self.folder = Path(self._temporary.name)
        return self.folder

    def output_dir(self, name):
        return self.folder / name.split("_", 1)[0]

    def start(self, names):
        if self.pool is not None:
            return
        # The environment as the session started: tests later change it
        # (monkeypatch), and the runs must not see that.
        self.env = dict(os.environ)
        if not LOCAL_DATA:
            self.env.pop("VAE_TF_DATA_DIR", None)
        self.make_folder()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        for name in ORDER:
            if name in names and (HAVE_CIFAR or name not in NEEDS_CIFAR):
                self.output_dir(name).mkdir()
                (self.output_dir(name) / "scheduled").touch()  # for the workers
                self.futures[name] = self.pool.submit(self._run, name)

    def _run(self, name):
        """Run one tutorial; whatever happens, leave its `run.json`."""
        try:
            record = self._run_process(name)
        except Exception:  # e.g. the photos or the process could not be made
            record = {"returncode": None, "stderr": traceback.format_exc()}
        if record is not None:
            partial = self.output_dir(name) / "run.json.partial"
            partial.write_text(json.dumps(record))
            partial.replace(self.output_dir(name) / "run.json")  # whole, at once

    def _run_process(self, name):
        output_dir = self.output_dir(name)
        command = [
            sys.executable,
            str(TUTORIALS / name),
            "--quick",
            "--output-dir",
            str(output_dir),
        ]
        if LOCAL_DATA:
            command += ["--data-dir", LOCAL_DATA]
        if name == "07_compression.py":  # Part 6 trains on photos, codes one
            photos = self.folder / "photos"
            write_photos(photos / "train", count=16)
            write_photos(photos / "test", count=2, seed=1, size=(160, 240))
            command += ["--photos", str(photos)]
        with self._lock:
            if self._closed:
                return None
            (output_dir / "started").touch()
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
                start_new_session=True,  # killed with the processes it starts
            )
            self.processes.append(process)
        try:
            _, stderr = process.communicate(timeout=QUICK_RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _, stderr = process.communicate()
            stderr += f"\n(killed: still running after {QUICK_RUN_TIMEOUT} s)"
        return {"returncode": process.returncode, "stderr": stderr[-4000:]}

    def result(self, name):
        """The run's metrics.json and its output folder."""
        out = self.output_dir(name)
        if name in self.futures:
            self.futures[name].result()
        elif self.pool is not None or not (out / "scheduled").exists():
            raise AssertionError(f"{name}: its quick run was not started")
        else:  # an xdist worker: the controller started the run
            while not (out / "run.json").exists():
                started = out / "started"
                if started.exists():  # the controller kills it at the timeout
                    waited = time.time() - started.stat().st_mtime
                    assert waited < QUICK_RUN_TIMEOUT + 300, f"{name}: no run.json"
                time.sleep(1)
        run = json.loads((out / "run.json").read_text())
        assert run["returncode"] == 0, run["stderr"]
        return json.loads((out / "metrics.json").read_text()), out

    def close(self):
        """Stop the runs still going (the session is over) and remove their
        folder."""
        with self._lock:
            self._closed = True
            for process in self.processes:
                if process.poll() is None:
                    _kill_group(process)
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self._temporary is not None:
            self._temporary.cleanup()


QUICK_RUNS = QuickRuns()


def _kill_group(process):
    """Kill a run and the processes it started (its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone
        pass


def pytest_collection_finish(session):
    """Start the selected tutorials' --quick runs now, beside the other tests
    (an xdist worker leaves that to the controller)."""
    config = session.config
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        names = {
            marker.args[0]
            for item in session.items
            for marker in item.iter_markers("tutorial")
        }
        if names:
            QUICK_RUNS.start(names)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: give each worker the quick runs' folder."""
    node.workerinput["vae_tf_quick_runs"] = str(QUICK_RUNS.make_folder())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist controller: start the quick runs of the tutorial tests selected
    (every worker collects the same tests, so the first one to report says)."""
    chosen = [
        nodeid.split("::")[1].split("[")[0]
        for nodeid in ids
        if nodeid.split("::")[0].rsplit("/", 1)[-1] == "test_tutorials.py"
    ]
    if not chosen:
        return
    import test_tutorials  # it imported in the workers, which collected it

    tests = [getattr(test_tutorials, name) for name in chosen]
    names = {
        mark.args[0]
        for test in tests
        for mark in getattr(test, "pytestmark", [])
        if mark.name == "tutorial"
    }
    if names:
        QUICK_RUNS.start(names)


def pytest_sessionfinish(session):
    QUICK_RUNS.close()


@pytest.fixture
def quick_runs(request):
    """The --quick run of this test's tutorial (`@pytest.mark.tutorial`)."""
    name = request.node.get_closest_marker("tutorial").args[0]
    return QUICK_RUNS.result(name)


@pytest.fixture(autouse=True)
def offline(request, monkeypatch):
    """Tests never download: no download host answers (unless the test serves
    it on 127.0.0.1 itself), no data folder is set."""
    if request.node.get_closest_marker("local_network") is None:
        monkeypatch.setattr(data, "_host_answers", lambda host, timeout=3.0: False)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


@pytest.fixture(scope="session")
def mnist_subset():
    """The bundled real MNIST subset as float32 in [0, 1]: (train, test) images."""
    train, _ = data.load_arrays("mnist", "train", source="bundled")
    test, _ = data.load_arrays("mnist", "test", source="bundled")
    return train.astype("float32") / 255.0, test.astype("float32") / 255.0


def make_tiny_vae(latent_dim=4, seed=0, binarization="dynamic", beta=1.0):
    return vae_tf.VAE(
        vae_tf.DenseEncoder(latent_dim, (32,)),
        vae_tf.DenseDecoder((28, 28, 1), (32,)),
        vae_tf.Bernoulli(binarization),
        beta=beta,
        seed=seed,
    )


@pytest.fixture
def tiny_vae():
    keras.utils.set_random_seed(0)
    model = make_tiny_vae()
    model.build((None, 28, 28, 1))
    return model


@pytest.fixture(scope="session")
def trained_vae(mnist_subset):
    """A small VAE trained for two epochs on the bundled subset."""
    keras.utils.set_random_seed(1)
    train, _ = mnist_subset
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(8, (128,)),
        vae_tf.DenseDecoder((28, 28, 1), (128,)),
        vae_tf.Bernoulli("dynamic"),
        seed=1,
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=True)
    model.fit(
        data.make_dataset(train, batch_size=100, shuffle=True, seed=0),
        epochs=2,
        verbose=0,
        shuffle=False,
    )
    return model


@pytest.fixture(scope="session")
def binary_test_images(mnist_subset):
    return data.binarize(mnist_subset[1][:400], seed=0)


def random_images(n=8, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def write_photos(folder, count=40, seed=0, size=(40, 48)):
    """`count` colour pictures (smooth gradients and noise) of a few sizes
    from `size` (height, width) up, as PNG files in `folder`, for the presets
    that train on an image folder; returns `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = size[0] + 4 * (i % 3), size[1] + 8 * (i % 2)
        ramp = np.linspace(0, 200, width)[None, :, None] + rng.integers(0, 50, 3)
        noise = rng.normal(0, 12, (height, width, 3))
        image = np.clip(ramp + noise, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"photo_{i:02d}.png")
    return folder
