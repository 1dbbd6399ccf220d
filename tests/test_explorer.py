"""`vae-tf explore`: the API over HTTP, its limits, and the page in a real
headless Chromium (Debian's `chromium`, driven by Playwright)."""

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
from PIL import Image

import vae_tf
from vae_tf import cli, data, explorer
from vae_tf.explorer import Explorer, make_server


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8).squeeze()).save(buffer, "PNG")
    return buffer.getvalue()


def upload(name, raw: bytes) -> dict:
    return {"name": name, "data": base64.b64encode(raw).decode("ascii")}


@pytest.fixture(scope="module")
def test_set():
    images, labels = data.load_arrays("mnist", "test", source="bundled")
    return data.binarize(images[:300], seed=0), labels[:300].astype(np.int64)


class Served:
    """An explorer served on a free port of 127.0.0.1, in a thread."""

    def __init__(self, model, images=None, labels=None, **options):
        self.explorer = Explorer(model, "test run", images, labels, "test images")
        self.server = make_server(self.explorer, "127.0.0.1", 0, **options)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, path, payload=None, raw=None, headers=None):
        """`(status, content type, body bytes)`; errors are answers too."""
        body = (
            raw
            if raw is not None
            else (None if payload is None else json.dumps(payload).encode())
        )
        request = urllib.request.Request(
            self.url + path, data=body, headers=headers or {}
        )
        if body is not None and "Content-Type" not in (headers or {}):
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return (
                    response.status,
                    response.headers["Content-Type"],
                    response.read(),
                )
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read()

    def json(self, path, payload=None):
        status, kind, body = self.request(path, payload)
        assert kind == "application/json", body
        return status, json.loads(body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def dense(trained_vae, test_set):
    served = Served(trained_vae, *test_set)
    yield served
    served.close()


@pytest.fixture(scope="module")
def conv(test_set):
    keras.utils.set_random_seed(0)
    model = vae_tf.VAE(
        vae_tf.ConvEncoder(latent_channels=2, filters=(8, 16)),
        vae_tf.ConvDecoder((28, 28, 1), latent_channels=2, filters=(16, 8)),
        vae_tf.Bernoulli("dynamic"),
        seed=0,
    )
    model.build((None, 28, 28, 1))
    served = Served(model, *test_set)
    yield served
    served.close()


@pytest.fixture(scope="module")
def lossy():
    keras.utils.set_random_seed(0)
    model = vae_tf.LossyVAE(filters=8, latent_channels=6, num_layers=2, seed=0)
    model.build((None, 32, 32, 3))
    served = Served(model)
    yield served
    served.close()


def decode_png(body) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


# -- The API -----------------------------------------------------------------


def test_info_shows_what_applies_to_each_family(dense, lossy):
    _, info = dense.json("/api/info")
    assert info["views"] == {
        "sliders": True,
        "map": True,
        "interpolation": True,
        "classes": False,
        "samples": True,
        "codec": ["lossless"],
    }
    latent = info["latent"]
    assert latent["dims"] == 8 and latent["shape"] == [8]
    kls = [s["kl_nats"] for s in latent["sliders"] if s["active"]]
    assert kls == sorted(kls, reverse=True) and kls[0] > 0.1
    assert 1 <= latent["active_units"] <= 8
    _, info = lossy.json("/api/info")
    assert info["views"] == {
        "sliders": False,
        "map": False,
        "interpolation": False,
        "classes": False,
        "samples": False,
        "codec": ["lossy"],
    }
    assert info["latent"] is None and info["image_shape"] is None


def test_the_map_places_the_test_images_by_their_posterior_means(
    dense, trained_vae, test_set
):
    _, answer = dense.json("/api/map")
    images, labels = test_set
    assert len(answer["points"]) == len(images)
    assert answer["labels"] == labels.tolist()
    z_mean, _ = trained_vae.encode(images)
    z_mean = np.asarray(z_mean, np.float64)
    centre, components = np.array(answer["centre"]), np.array(answer["components"])
    np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-6)
    np.testing.assert_allclose(
        answer["points"], (z_mean - centre) @ components.T, atol=1e-3
    )


def test_decoding_a_latent_gives_the_models_image_as_png(dense, trained_vae):
    z = np.linspace(-1, 1, 8).astype(np.float32)
    status, kind, body = dense.request("/api/decode", {"z": z.tolist()})
    assert status == 200 and kind == "image/png"
    expected = np.round(np.asarray(trained_vae.decode(z[None]))[0, ..., 0] * 255)
    np.testing.assert_array_equal(decode_png(body), expected.astype(np.uint8))
    _, _, other = dense.request("/api/decode", {"z": (-z).tolist()})
    assert other != body


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"z": [0.0] * 7}, "z must be a flat list of 8 numbers"),
        ({"z": "zeros"}, "z must be a flat list of 8 numbers"),
        ({"z": [0.0] * 7 + [1e9]}, "within"),
        ({"z": [0.0] * 8, "label": 3}, "unconditional"),
        ({"z": [0.0] * 8, "seed": -1}, "seed must be between"),
        ({"z": [0.0] * 8, "seed": float("nan")}, "seed must be a finite number"),
        ({"z": [0.0] * 8, "seed": float("-inf")}, "seed must be a finite number"),
        ({"z": [0.0] * 8, "seed": 10**400}, "seed must be between"),
        ({"z": [0.0] * 8, "seed": 1.5}, "seed must be an integer"),
        ({"z": [0.0] * 7 + [10**400]}, "within"),
        ({"z": [0.0] * 7 + [float("nan")]}, "within"),
        ({"z": [[0.0, 0.0]] * 4}, "flat list of 8 numbers"),
        ({"z": [True] * 8}, "flat list of 8 numbers"),
    ],
)
def test_bad_latents_are_clear_errors(dense, payload, message):
    status, answer = dense.json("/api/decode", payload)
    assert status == 400 and message in answer["error"]


def test_encode_prior_interpolate_and_samples(dense, test_set):
    images, _ = test_set
    status, answer = dense.json("/api/encode", {"image": {"index": 5}})
    assert status == 200 and len(answer["z"]) == 8
    assert answer["image"].startswith("data:image/png;base64,")
    original = decode_png(base64.b64decode(answer["image"].split(",")[1]))
    np.testing.assert_array_equal(original, images[5, ..., 0] * 255)
    _, a = dense.json("/api/prior", {"temperature": 1.0, "seed": 3})
    _, b = dense.json("/api/prior", {"temperature": 1.0, "seed": 3})
    _, c = dense.json("/api/prior", {"temperature": 0.5, "seed": 3})
    assert a == b and np.allclose(np.array(c["z"]), 0.5 * np.array(a["z"]), atol=1e-3)
    digit = png_bytes(images[7, ..., 0] * 255)
    status, answer = dense.json(
        "/api/interpolate",
        {
            "a": {"index": 0},
            "b": {"upload": upload("seven.png", digit)},
            "steps": 6,
            "method": "spherical",
        },
    )
    assert status == 200
    strip = decode_png(base64.b64decode(answer["strip"].split(",")[1]))
    assert strip.shape == (28, 6 * 30 - 2)
    status, answer = dense.json("/api/samples", {"count": 4, "seed": 1})
    grid = decode_png(base64.b64decode(answer["grid"].split(",")[1]))
    assert status == 200 and grid.shape == (28, 4 * 30 - 2)


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/api/../../etc/passwd",
        "/api/info/../../../etc/hostname",
        "/explorer.html",
        "/assets/explorer.html",
        "/model.keras",
        "/vae_tf/explorer.py",
    ],
)
def test_no_file_can_be_read_through_the_server(dense, path):
    port = int(dense.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404"), answer[:100]
    assert b"root:" not in answer and b"import" not in answer


def test_uploads_over_the_limits_are_refused_with_a_message(
    trained_vae, test_set, dense, monkeypatch
):
    small = Served(trained_vae, *test_set, max_upload_bytes=2000)
    try:
        big = upload("big.png", bytes(3000))
        status, kind, body = small.request("/api/code", {"uploads": [big]})
        assert status == 413 and "the limit is" in json.loads(body)["error"]
        assert small.json("/api/info")[0] == 200  # still serving
    finally:
        small.close()
    monkeypatch.setattr(explorer, "MAX_PIXELS", 500)
    digit = upload("digit.png", png_bytes(np.zeros((28, 28))))
    status, answer = dense.json("/api/code", {"uploads": [digit]})
    assert status == 400
    assert answer["error"] == (
        "digit.png is 28x28 pixels (784), over the limit of 500 pixels "
        "(max_pixels); it was not decoded."
    )


def test_a_broken_upload_is_a_clear_error_and_the_server_keeps_serving(dense):
    noise = np.random.default_rng(0).integers(0, 256, (28, 28))
    digit = png_bytes(noise)  # a cut falls inside its pixel data
    for name, raw, message in [
        ("notes.txt", b"not an image at all", "notes.txt is not a readable image"),
        ("cut.png", digit[: len(digit) // 2], "cut.png is truncated or damaged"),
        ("empty.png", b"", "empty.png is empty (0 bytes)"),
    ]:
        status, answer = dense.json("/api/code", {"uploads": [upload(name, raw)]})
        assert status == 400 and message in answer["error"], answer
        assert "vae-tf-explore-" not in answer["error"]  # no temporary paths
    status, answer = dense.json("/api/code", {"uploads": [{"name": "x", "data": "@@"}]})
    assert status == 400 and "not valid base64" in answer["error"]
    status, kind, body = dense.request("/api/decode", raw=b"{not json")
    assert status == 400 and b"not JSON" in body
    status, kind, body = dense.request("/api/decode", raw=b"[" * 200_000)
    assert status == 400 and b"nested too deeply" in body
    assert dense.json("/api/info")[0] == 200


def test_requests_of_other_sites_are_refused(dense):
    # Another page's form or fetch: not JSON, or a foreign Origin; a name
    # rebound to 127.0.0.1: a foreign Host.
    status, _, body = dense.request(
        "/api/prior", raw=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and b"application/json" in body
    status, _, body = dense.request(
        "/api/prior", {}, headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and b"evil.example" in body
    status, _, body = dense.request("/api/info", headers={"Host": "evil.example"})
    assert status == 403
    origin = {"Origin": dense.url}
    assert dense.request("/api/prior", {}, headers=origin)[0] == 200
    status, kind, body = dense.request("/favicon.ico")
    assert status == 204 and body == b""


def test_a_refused_request_says_that_the_connection_closes(dense):
    port = int(dense.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            f"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 404") and b"Connection: close" in answer


def test_the_map_of_a_model_without_a_latent_says_why(lossy):
    status, answer = lossy.json("/api/map")
    assert status == 400 and "no Gaussian latent" in answer["error"]


def test_an_unexpected_failure_is_a_500_and_the_server_keeps_serving(
    dense, monkeypatch, capsys
):
    def broken(payload):
        raise RuntimeError("a bug")

    monkeypatch.setattr(dense.explorer, "prior", broken)
    status, answer = dense.json("/api/prior", {})
    assert status == 500 and "RuntimeError: a bug" in answer["error"]
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.undo()
    assert dense.json("/api/prior", {"seed": 1})[0] == 200


def test_concurrent_requests_are_all_answered_alike(dense):
    z = [0.3] * 8

    def decode(_):
        return dense.request("/api/decode", {"z": z})

    with ThreadPoolExecutor(32) as pool:  # more than a default listen backlog
        answers = list(pool.map(decode, range(96)))
    assert {status for status, _, _ in answers} == {200}
    assert len({body for _, _, body in answers}) == 1


def test_lossless_coding_of_uploads_and_test_images(dense, test_set):
    images, _ = test_set
    files = [upload(f"{i}.png", png_bytes(images[i, ..., 0] * 255)) for i in range(3)]
    status, answer = dense.json("/api/code", {"uploads": files})
    assert status == 200 and answer["kind"] == "lossless" and answer["exact"]
    assert answer["bits_per_dim"] == pytest.approx(8 * answer["bytes"] / (3 * 784))
    assert [b["codec"] for b in answer["baselines"]] == ["PNG", "WebP lossless"]
    shown = answer["shown"][0]
    assert shown["name"] == "0.png" and shown["size"] == [28, 28]
    status, answer = dense.json("/api/code", {"test_images": 10})
    assert status == 200 and answer["images"] == 10 and answer["exact"]
    grey = upload("grey.png", png_bytes(np.full((28, 28), 128)))
    status, answer = dense.json("/api/code", {"uploads": [grey]})
    assert status == 400 and "grey.png" in answer["error"]
    assert "binary images" in answer["error"]


def test_lossy_coding_compares_jpeg_and_webp_at_the_same_rate(lossy):
    rng = np.random.default_rng(0)
    photo = (rng.random((24, 40, 3)) * 255).astype(np.uint8)
    status, answer = lossy.json(
        "/api/code", {"uploads": [upload("p.png", png_bytes(photo))]}
    )
    assert status == 200 and answer["kind"] == "lossy"
    assert answer["bits_per_pixel"] == pytest.approx(8 * answer["bytes"] / (24 * 40))
    assert answer["shown"][0]["size"] == [40, 24]
    for baseline in answer["baselines"]:
        assert 1 <= baseline["qualities"][0] <= 100
        assert baseline["psnr_db"] > 0
        assert baseline["first"]["psnr_db"] == pytest.approx(baseline["psnr_db"])
    # With a second image, each counts by its pixels: a tiny flat image that
    # a classical codec copies exactly does not lift the PSNR.
    flat = upload("flat.png", png_bytes(np.full((4, 4, 3), 128)))
    status, both = lossy.json(
        "/api/code", {"uploads": [upload("p.png", png_bytes(photo)), flat]}
    )
    for alone, pair in zip(answer["baselines"], both["baselines"]):
        assert pair["psnr_db"] < alone["psnr_db"] + 1.0
    codecs = [b["codec"] for b in answer["baselines"]]
    assert codecs == ["JPEG (4:2:0)", "WebP"]
    status, answer = lossy.json("/api/decode", {"z": [0.0]})
    assert status == 400 and "no sliders view" in answer["error"]


def test_a_conditional_model_takes_the_chosen_class(test_set):
    keras.utils.set_random_seed(0)
    model = vae_tf.ConditionalVAE(
        vae_tf.DenseEncoder(4, (32,)),
        vae_tf.DenseDecoder((28, 28, 1), (32,)),
        num_classes=10,
    )
    model.build((None, 28, 28, 1))
    served = Served(model, *test_set)
    try:
        _, info = served.json("/api/info")
        assert info["views"]["classes"] and info["num_classes"] == 10
        assert info["views"]["codec"] is None
        bodies = {
            served.request("/api/decode", {"z": [0.0] * 4, "label": c})[2]
            for c in (0, 1)
        }
        assert len(bodies) == 2
        status, answer = served.json("/api/decode", {"z": [0.0] * 4, "label": 10})
        assert status == 400 and "label must be between 0 and 9" in answer["error"]
        _, answer = served.json("/api/encode", {"image": {"index": 2}})
        assert answer["label"] == int(test_set[1][2])
    finally:
        served.close()


def test_the_cli_serves_a_run_and_says_where(run_dir_of, tmp_path):
    run = run_dir_of(tmp_path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vae_tf",
            "explore",
            str(run),
            "--port",
            "0",
            "--source",
            "bundled",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, (line, process.stderr.read() if process.poll() else "")
        with urllib.request.urlopen(match.group(1) + "api/info", timeout=60) as r:
            info = json.loads(r.read())
        assert info["title"] == run.name and info["test_images"] == 2000
        with urllib.request.urlopen(match.group(1), timeout=60) as r:
            assert b"<title>vae-tf explore</title>" in r.read()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_port_in_use_is_a_clear_error(run_dir_of, tmp_path, capsys):
    run = run_dir_of(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(
            ["explore", str(run), "--port", str(port), "--source", "bundled"]
        )
    assert code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def run_dir_of(trained_vae):
    """A run directory holding `trained_vae`, as `vae-tf train` writes one."""

    def write(folder):
        folder = folder / "dense-run"
        folder.mkdir()
        trained_vae.save(folder / "model.keras")
        (folder / "run.json").write_text(
            json.dumps({"preset": "mnist-dense", "data_source": "bundled"})
        )
        return folder

    return write


# -- The page in a real browser ----------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, or a skip saying what is missing; with
    VAE_TF_REQUIRE_BROWSER=1 (CI) a missing browser fails instead."""
    executable = os.environ.get("VAE_TF_CHROMIUM") or shutil.which("chromium")
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package (pip install -e '.[test]')"
    if executable is None:
        missing = "Chromium (Debian: apt-get install chromium)"
    if missing:
        if os.environ.get("VAE_TF_REQUIRE_BROWSER"):
            pytest.fail(f"The browser tests need {missing}.")
        pytest.skip(f"The browser tests need {missing}.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def open_page(browser, served):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(served.url + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    return page, errors


def image_bytes(page, selector) -> bytes:
    """The bytes of an <img>'s current source, read in the page."""
    return bytes(
        page.evaluate(
            """async (selector) => {
                const r = await fetch(document.querySelector(selector).src);
                return Array.from(new Uint8Array(await r.arrayBuffer()));
            }""",
            selector,
        )
    )


def move_slider_and_wait(page, index, value):
    decodes = page.get_attribute("#decoded", "data-decodes")
    page.locator("#slider-list input").nth(index).fill(str(value))
    page.wait_for_function(
        f"document.querySelector('#decoded').dataset.decodes !== '{decodes}'",
        timeout=30_000,
    )


def test_the_dense_page_sliders_map_interpolation_and_codec(browser, dense, tmp_path):
    page, errors = open_page(browser, dense)
    for view in ("sliders", "map", "interpolation", "samples", "codec"):
        assert page.is_visible(f"#{view}"), view
    assert not page.is_visible("#classes")
    assert page.locator("#slider-list input").count() == 8
    # Let the decodings the page started with settle, then move a slider.
    page.wait_for_function("document.querySelector('#decoded').dataset.decodes")
    move_slider_and_wait(page, 0, -3.5)
    before = image_bytes(page, "#decoded")
    move_slider_and_wait(page, 0, 3.5)
    after = image_bytes(page, "#decoded")
    assert before != after
    assert decode_png(after).shape == (28, 28)
    # Pointing at the map decodes that place.
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 120)
    page.wait_for_function("document.querySelector('#map-decoded').dataset.decodes")
    # An interpolation strip of the chosen length.
    page.fill("#steps", "5")
    page.click("#interpolate")
    page.wait_for_selector("#strip:not([hidden])")
    page.wait_for_function("document.querySelector('#strip').naturalWidth > 0")
    assert page.evaluate("document.querySelector('#strip').naturalWidth") == 5 * 30 - 2
    # An uploaded binary digit is coded, decoded, and its rate reported.
    digit = (np.arange(784).reshape(28, 28) % 7 == 0) * 255
    (tmp_path / "digit.png").write_bytes(png_bytes(digit))
    page.set_input_files("#codec-files", str(tmp_path / "digit.png"))
    page.click("#code-files")
    page.wait_for_selector("#codec-table", timeout=60_000)
    rate = float(page.get_attribute("#codec-result", "data-rate"))
    status, answer = dense.json(
        "/api/code", {"uploads": [upload("digit.png", png_bytes(digit))]}
    )
    assert rate == pytest.approx(answer["bits_per_dim"]) and rate > 0
    assert "every pixel came back exactly" in page.inner_text("#codec-result")
    # A broken file: a clear message on the page.
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    page.set_input_files("#codec-files", str(tmp_path / "broken.png"))
    page.click("#code-files")
    page.wait_for_function("document.querySelector('#codec-error').textContent")
    assert "broken.png is" in page.inner_text("#codec-error")
    assert errors == []
    page.close()


def test_the_conv_page_decodes_a_spatial_latent(browser, conv):
    page, errors = open_page(browser, conv)
    _, info = conv.json("/api/info")
    assert info["latent"]["shape"] == [7, 7, 2]
    assert page.locator("#slider-list input").count() == explorer.MAX_SLIDERS
    page.wait_for_function("document.querySelector('#decoded').dataset.decodes")
    move_slider_and_wait(page, 0, -4)
    before = image_bytes(page, "#decoded")
    move_slider_and_wait(page, 0, 4)
    assert image_bytes(page, "#decoded") != before
    page.click("#sample")
    page.wait_for_function(
        "Number(document.querySelector('#decoded').dataset.decodes) > 3"
    )
    assert errors == []
    page.close()
