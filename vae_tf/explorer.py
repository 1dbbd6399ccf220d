"""`vae-tf explore`: a local web page for looking inside a trained run.

One page (`vae_tf/assets/explorer.html`: plain HTML and JavaScript, no build
step, no library) served by the standard library's `ThreadingHTTPServer`,
with a small JSON API that asks the run's model through the
`GenerativeModel` interface. Each view is shown only where it applies:

- **Latent sliders** (a model with a latent space): the dimensions that carry
  the most KL, active units first, each a slider; the decoded image follows
  them. A prior sample (with a temperature) or an encoded test image sets
  them all.
- **Latent map**: test images placed by their posterior means (the two
  dimensions of a 2-D latent, else the first two principal components),
  coloured by class; pointing at a place decodes it.
- **Interpolation** between two test or uploaded images, linear or spherical.
- **Class** of a conditional model, for every decoding.
- **Samples** of a model that generates.
- **Codec**: uploaded (or test) images coded to a real `.vtfz` file and
  decoded back, with the rate beside PNG and WebP lossless (lossless) or
  JPEG and WebP at the same rate (lossy).

Images travel as PNG (decoded latents as `image/png`, the rest as PNG data
URLs in JSON); uploads travel as base64 in JSON.

Safety: the server binds 127.0.0.1 unless told otherwise; it reads no file a
request names (the page comes from the package, the run's files are read at
start), so nothing outside the run directory can be read through it. A body
over `max_upload_bytes` is refused before it is read, an image over
`MAX_PIXELS` from its header (`vae_tf.images`); a bad request gets a JSON
`{"error": ...}` with status 400 and the page shows it; an unexpected error
gets status 500, its traceback goes to the server's stderr, and the server
keeps serving. Requests are served on threads; model calls take one lock, so
concurrent requests queue rather than interleave.
"""

import base64
import binascii
import io
import ipaddress
import json
import math
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

__all__ = [
    "Explorer",
    "ExplorerError",
    "make_server",
    "serve",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
]

MAX_UPLOAD_BYTES = 16 * 2**20  # a request's body
MAX_PIXELS = 4_000_000  # an uploaded image's width x height
MAX_FILES = 16  # images in one codec request
MAX_TEST_CODED = 64  # test images in one codec request
MAP_POINTS = 2000  # test images encoded for the map and the slider ranking
MAX_SLIDERS = 12
MAX_STEPS = 16  # interpolation points
MAX_SAMPLES = 16
# A unit is active when its posterior mean varies over the data (Burda,
# Grosse, Salakhutdinov 2016, arXiv:1509.00519): Cov_x(E_q[z_u]) > 0.01.
ACTIVE_THRESHOLD = 0.01
LATENT_LIMIT = 10.0  # |z| a request may ask to decode (prior sd units)
PAGE = "explorer.html"


class ExplorerError(ValueError):
    """A request the explorer cannot serve; its message is shown on the page."""


def _png(image) -> bytes:
    """PNG bytes of one image, `(h, w, c)` floats in [0, 1] or uint8."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
        buffer, format="PNG", compress_level=1
    )
    return buffer.getvalue()


def _data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(_png(image)).decode("ascii")


def _number(payload: dict, key: str, default, low, high, kind=float):
    """`payload[key]` as a `kind` in `[low, high]`, or a clear error."""
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExplorerError(f"{key} must be a number. Received: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExplorerError(f"{key} must be a finite number. Received: {value}")
    if not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 20 else repr(value)[:17] + "..."
        raise ExplorerError(
            f"{key} must be between {low} and {high}. Received: {shown}"
        )
    if kind is int and value != int(value):
        raise ExplorerError(f"{key} must be an integer. Received: {value!r}")
    return kind(value)


def _safe_name(name, index: int) -> str:
    """An upload's file name, for messages and a temporary file's name."""
    name = Path(str(name or f"upload {index + 1}")).name
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip(" .")[:80]
    return name or f"upload {index + 1}"


class _Uploads:
    """Uploaded files written to a private temporary folder, read by
    `vae_tf.images` (the package's one image reader), then deleted."""

    def __init__(self, uploads, limit: int):
        if not isinstance(uploads, list) or not uploads:
            raise ExplorerError("No image file was uploaded.")
        if len(uploads) > limit:
            raise ExplorerError(
                f"At most {limit} images at a time. Received: {len(uploads)}"
            )
        self._folder = tempfile.TemporaryDirectory(prefix="vae-tf-explore-")
        self.paths, self.names = [], []
        try:
            for i, upload in enumerate(uploads):
                if not isinstance(upload, dict) or not isinstance(
                    upload.get("data"), str
                ):
                    raise ExplorerError(
                        "An upload must be {name, data} with the file's bytes as "
                        "base64."
                    )
                try:
                    data = base64.b64decode(upload["data"], validate=True)
                except (binascii.Error, ValueError):
                    raise ExplorerError(
                        f"{_safe_name(upload.get('name'), i)}: the upload is not "
                        "valid base64."
                    ) from None
                name = _safe_name(upload.get("name"), i)
                path = Path(self._folder.name) / f"{i:02d}-{name}"
                path.write_bytes(data)
                self.paths.append(path)
                self.names.append(name)
        except BaseException:
            self.close()
            raise

    def message(self, error) -> str:
        """An error's message with the temporary paths as the upload names."""
        text = str(error)
        for path, name in zip(self.paths, self.names):
            text = text.replace(str(path), name)
        return text

    def close(self):
        self._folder.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _closest_quality(image, fmt: dict, target_bytes: int) -> tuple:
    """The Pillow quality whose file size is closest to `target_bytes`:
    `(quality, data, decoded)`, by bisection (sizes grow with quality)."""
    from vae_tf.compression.baselines import pillow_round_trip

    cache = {}

    def at(quality):
        if quality not in cache:
            cache[quality] = pillow_round_trip(image, quality=quality, **fmt)
        return cache[quality]

    low, high = 1, 100
    while high - low > 1:
        middle = (low + high) // 2
        if len(at(middle)[0]) <= target_bytes:
            low = middle
        else:
            high = middle
    quality = min((low, high), key=lambda q: (abs(len(at(q)[0]) - target_bytes), q))
    return (quality, *at(quality))


class Explorer:
    """The explorer's views of one model: what the web page's API calls.

    Every method takes and returns plain Python data (JSON-ready) or PNG
    bytes, checks its arguments, and raises `ExplorerError` (a `ValueError`)
    with a message for the page on a bad request.

    Args:
        model: a trained `vae_tf.models.GenerativeModel`.
        title: what the page calls the run (e.g. its directory's name).
        test_images: float32 `(N, height, width, channels)` in [0, 1] of the
            data the model was trained on, or `None` (then the map and the
            test-image pickers are not shown).
        test_labels: int `(N,)` classes of `test_images`, or `None`.
        data_line: one line naming where the test images come from.

    Raises:
        ValueError: test images whose shape the model does not take.
    """

    def __init__(
        self, model, title: str = "", test_images=None, test_labels=None, data_line=""
    ):
        self.model = model
        self.title = title
        self.lock = threading.Lock()
        self.test_images = None if test_images is None else np.asarray(test_images)
        self.test_labels = None if test_labels is None else np.asarray(test_labels)
        self.data_line = data_line
        shape = model.image_shape
        if self.test_images is not None:
            if shape is not None and tuple(self.test_images.shape[1:]) != tuple(shape):
                raise ValueError(
                    f"The test images are {self.test_images.shape[1:]}; the model "
                    f"takes {tuple(shape)} images."
                )
            shape = tuple(self.test_images.shape[1:])
        self.image_shape = None if shape is None else tuple(int(d) for d in shape)
        self._map = None  # set by _latent_views when there are test images
        self.latent = self._latent_views() if model.has_latent_space else None

    # -- Set-up -----------------------------------------------------------

    def _latent_views(self) -> dict:
        """The slider ranking, the active units and the map's projection."""
        from vae_tf.generation import pca

        if self.image_shape is None:
            raise ValueError("The model is not built: its image size is unknown.")
        if self.test_images is not None:
            images = self.test_images[:MAP_POINTS]
            labels = None if self.test_labels is None else self.test_labels[:MAP_POINTS]
        else:
            images, labels = np.zeros((1, *self.image_shape), np.float32), [0]
            if not self.model.num_classes:
                labels = None
        means, log_vars = [], []
        for start in range(0, len(images), 500):
            batch = images[start : start + 500]
            batch_labels = None
            if self.model.num_classes:
                batch_labels = np.asarray(labels[start : start + 500], np.int64)
            mean, log_var = self.model.encode(batch, labels=batch_labels)
            means.append(np.asarray(mean))
            log_vars.append(np.asarray(log_var))
        mean, log_var = np.concatenate(means), np.concatenate(log_vars)
        shape = mean.shape[1:]
        mean = mean.reshape(len(mean), -1).astype(np.float64)
        log_var = log_var.reshape(len(log_var), -1).astype(np.float64)
        dims = mean.shape[1]
        views = {"shape": [int(d) for d in shape], "dims": dims}
        if self.test_images is None:
            views["sliders"] = [
                {"dim": d, "kl_nats": None, "active": None}
                for d in range(min(dims, MAX_SLIDERS))
            ]
            views["active_units"] = None
            return views
        kl = 0.5 * np.mean(mean**2 + np.exp(log_var) - 1.0 - log_var, axis=0)
        activity = mean.var(axis=0) if len(mean) > 1 else np.zeros(dims)
        active = activity > ACTIVE_THRESHOLD
        # Active units first, then by KL.
        order = sorted(range(dims), key=lambda d: (not active[d], -kl[d]))
        views["sliders"] = [
            {"dim": int(d), "kl_nats": float(kl[d]), "active": bool(active[d])}
            for d in order[:MAX_SLIDERS]
        ]
        views["active_units"] = int(active.sum())
        views["kl_nats"] = float(kl.sum())
        if len(mean) >= 2:
            if dims == 2:
                centre, components = np.zeros(2), np.eye(2)
                explained = mean.var(axis=0) / (mean.var(axis=0).sum() or 1.0)
                axes = ["z[0]", "z[1]"]
            else:
                centre, components, explained = pca(mean, 2)
                axes = [f"PC{i + 1}" for i in range(len(components))]
            points = (mean - centre) @ components.T
            self._map = {
                "points": np.round(points, 4).tolist(),
                "labels": None if labels is None else [int(v) for v in labels],
                "centre": centre.tolist(),
                "components": components.tolist(),
                "explained": [float(e) for e in explained],
                "axes": axes,
            }
        return views

    # -- What the page asks -------------------------------------------------

    def info(self) -> dict:
        """What the page shows: the run, its views and their settings."""
        model = self.model
        has_tests = self.test_images is not None
        latent = self.latent
        views = {
            "sliders": latent is not None,
            "map": self._map is not None,
            "interpolation": latent is not None,
            "classes": bool(model.num_classes),
            "samples": bool(model.can_generate),
            "codec": list(model.coding)[:1] or None,
        }
        return {
            "title": self.title,
            "family": type(model).__name__,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "num_classes": int(model.num_classes),
            "autoregressive": bool(model.autoregressive),
            "test_images": 0 if not has_tests else len(self.test_images),
            "data": self.data_line,
            "latent": latent,
            "views": views,
            "limits": {
                "upload_bytes": MAX_UPLOAD_BYTES,
                "pixels": MAX_PIXELS,
                "files": MAX_FILES,
                "test_coded": MAX_TEST_CODED,
                "steps": MAX_STEPS,
                "samples": MAX_SAMPLES,
            },
        }

    def latent_map(self) -> dict:
        """The map: each test image's 2-D position and class, and the plane
        (`centre`, `components`) a position decodes from."""
        if self.latent is None:
            raise ExplorerError(
                f"A {type(self.model).__name__} has no Gaussian latent to map."
            )
        if not self.info()["views"]["map"]:
            raise ExplorerError("This run has no latent map: no test images here.")
        return self._map

    def _need(self, view: str):
        if not self.info()["views"][view]:
            raise ExplorerError(f"This run has no {view} view.")

    def _label(self, payload: dict):
        """The request's class as the model takes labels: `[label]` or `None`."""
        if not self.model.num_classes:
            if payload.get("label") is not None:
                raise ExplorerError("This model is unconditional: it takes no class.")
            return None
        return [_number(payload, "label", 0, 0, self.model.num_classes - 1, int)]

    def _test_index(self, value) -> int:
        if self.test_images is None:
            raise ExplorerError("This run has no test images here; upload one.")
        count = len(self.test_images)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExplorerError(f"index must be an integer. Received: {value!r}")
        if not 0 <= value < count:
            raise ExplorerError(
                f"index must be between 0 and {count - 1}. Received: {value}"
            )
        return value

    def test_image(self, index) -> bytes:
        """PNG of test image `index`."""
        return _png(self.test_images[self._test_index(index)])

    def _image(self, source: dict) -> tuple:
        """`(image, label)` of `{"index": i}` or `{"upload": {name, data}}`:
        float32 `(height, width, channels)` and the test image's class."""
        from vae_tf.image_folders import fit_image
        from vae_tf.images import read_image

        if not isinstance(source, dict):
            raise ExplorerError("An image is {index} or {upload}.")
        if source.get("upload") is not None:
            height, width, channels = self.image_shape
            with _Uploads([source["upload"]], 1) as uploads:
                try:
                    pixels, _ = read_image(
                        uploads.paths[0], channels, False, MAX_PIXELS
                    )
                except ValueError as error:
                    raise ExplorerError(uploads.message(error)) from None
            return np.asarray(fit_image(pixels, height, width)), None
        index = self._test_index(source.get("index"))
        label = None if self.test_labels is None else int(self.test_labels[index])
        return self.test_images[index], label

    def _latents(self, payload: dict) -> np.ndarray:
        z = payload.get("z")
        dims = self.latent["dims"]
        if (
            not isinstance(z, list)
            or len(z) != dims
            or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in z
            )
        ):
            raise ExplorerError(f"z must be a flat list of {dims} numbers.")
        if not all(abs(v) <= LATENT_LIMIT for v in z):  # NaN fails this too
            raise ExplorerError(
                f"z must hold finite numbers within +-{LATENT_LIMIT:g}."
            )
        return np.asarray(z, np.float32).reshape(1, *self.latent["shape"])

    def decode(self, payload: dict) -> bytes:
        """PNG of the decoding of `{"z": [...], "label", "seed"}`."""
        self._need("sliders")
        z = self._latents(payload)
        labels = self._label(payload)
        seed = _number(payload, "seed", 0, 0, 2**31 - 1, int)
        with self.lock:
            image = self.model.decode(z, labels=labels, seed=seed)
        return _png(np.asarray(image)[0])

    def prior(self, payload: dict) -> dict:
        """`{"z"}`: a draw from the prior N(0, temperature^2 I)."""
        self._need("sliders")
        temperature = _number(payload, "temperature", 1.0, 0.0, 2.0)
        seed = _number(payload, "seed", 0, 0, 2**31 - 1, int)
        z = temperature * np.random.default_rng(seed).standard_normal(
            self.latent["dims"]
        )
        z = np.clip(z, -LATENT_LIMIT, LATENT_LIMIT)
        return {"z": np.round(z, 4).tolist()}

    def encode(self, payload: dict) -> dict:
        """`{"z", "image", "label"}`: the posterior mean of a test or uploaded
        image (`{"image": {...}, "label"}`), the image as it was encoded, and
        its class (a test image's own, else the request's)."""
        self._need("sliders")
        image, label = self._image(payload.get("image"))
        labels = self._label(payload) if label is None else [label]
        if not self.model.num_classes:
            labels, label = None, None
        with self.lock:
            z_mean, _ = self.model.encode(image[None], labels=labels)
        z = np.clip(np.asarray(z_mean).reshape(-1), -LATENT_LIMIT, LATENT_LIMIT)
        return {
            "z": np.round(z, 4).tolist(),
            "image": _data_url(image),
            "label": None if labels is None else int(labels[0]),
        }

    def interpolate(self, payload: dict) -> dict:
        """`{"strip", "ends"}`: decodings along the path between two images'
        posterior means (`{"a", "b", "method", "steps", "label"}`)."""
        from vae_tf.images import tile

        self._need("interpolation")
        method = payload.get("method", "linear")
        if method not in ("linear", "spherical"):
            raise ExplorerError(
                f"method must be linear or spherical. Received: {method!r}"
            )
        steps = _number(payload, "steps", 8, 2, MAX_STEPS, int)
        (a, _), (b, _) = self._image(payload.get("a")), self._image(payload.get("b"))
        labels = self._label(payload)
        with self.lock:
            path = self.model.interpolate(
                a[None], b[None], num_steps=steps, method=method, labels=labels
            )
        strip = np.asarray(tile(np.asarray(path)[0], columns=steps, pad=2))
        return {"strip": _data_url(strip), "ends": [_data_url(a), _data_url(b)]}

    def samples(self, payload: dict) -> dict:
        """`{"grid"}`: samples from the prior at a temperature."""
        from vae_tf.images import tile

        self._need("samples")
        count = _number(payload, "count", MAX_SAMPLES, 1, MAX_SAMPLES, int)
        temperature = _number(payload, "temperature", 1.0, 0.05, 2.0)
        seed = _number(payload, "seed", 0, 0, 2**31 - 1, int)
        labels = self._label(payload)
        if labels is not None:
            labels = labels * count
        with self.lock:
            images = self.model.sample(
                count, temperature=temperature, seed=seed, labels=labels
            )
        columns = min(count, 8)
        return {"grid": _data_url(np.asarray(tile(np.asarray(images), columns, 2)))}

    def code(self, payload: dict) -> dict:
        """Code uploaded images (`{"uploads": [...]}`) or the first test
        images (`{"test_images": n}`) into one `.vtfz` file, decode it, and
        compare with classical codecs."""
        from PIL import Image

        from vae_tf.compression.files import code_files, decode_bytes
        from vae_tf.images import check_image_file

        codec = self.info()["views"]["codec"]
        if codec is None:
            raise ExplorerError("This run's model codes no files.")
        kind = codec[0]
        if payload.get("uploads") is not None:
            uploads = _Uploads(payload["uploads"], MAX_FILES)
        else:
            count = _number(payload, "test_images", 8, 1, MAX_TEST_CODED, int)
            if self.test_images is None:
                raise ExplorerError("This run has no test images here; upload some.")
            pictures = np.round(self.test_images[:count] * 255).astype(np.uint8)
            files = []
            for i, picture in enumerate(pictures):
                buffer = io.BytesIO()
                Image.fromarray(
                    picture[..., 0] if picture.shape[-1] == 1 else picture
                ).save(buffer, format="PNG")
                data = base64.b64encode(buffer.getvalue()).decode("ascii")
                files.append({"name": f"test image {i}.png", "data": data})
            uploads = _Uploads(files, MAX_TEST_CODED)
        with uploads:
            for path in uploads.paths:
                try:
                    check_image_file(path, MAX_PIXELS)
                except ValueError as error:
                    raise ExplorerError(uploads.message(error)) from None
            started = time.perf_counter()
            with self.lock:
                try:
                    data, originals, figures = code_files(
                        self.model, uploads.paths, lossless=kind == "lossless"
                    )
                except ValueError as error:
                    raise ExplorerError(uploads.message(error)) from None
                coded = time.perf_counter()
                decoded = decode_bytes(self.model, data)
            finished = time.perf_counter()
            names = uploads.names
            conversions = {
                uploads.message(path): notes
                for path, notes in figures["conversions"].items()
            }
        return self._comparison(
            kind,
            data,
            originals,
            decoded,
            names,
            conversions,
            (coded - started, finished - coded),
        )

    def _comparison(self, kind, data, originals, decoded, names, notes, seconds):
        from vae_tf.compression.baselines import (
            LOSSY_FORMATS,
            pillow_round_trip,
        )

        pixels = sum(o.shape[0] * o.shape[1] for o in originals)
        values = sum(o.size for o in originals)
        shown = [
            {
                "name": name,
                "size": [int(o.shape[1]), int(o.shape[0])],
                "original": _data_url(o),
                "decoded": _data_url(d),
                "notes": notes.get(name, []),
            }
            for name, o, d in list(zip(names, originals, decoded))[:8]
        ]
        result = {
            "kind": kind,
            "images": len(originals),
            "shown": shown,
            "bytes": len(data),
            "bits_per_dim": 8 * len(data) / values,
            "bits_per_pixel": 8 * len(data) / pixels,
            "encode_seconds": seconds[0],
            "decode_seconds": seconds[1],
        }
        if kind == "lossless":
            exact = all(np.array_equal(o, d) for o, d in zip(originals, decoded))
            if not exact:
                raise RuntimeError(
                    "The lossless round trip did not give the images back."
                )
            baselines = []
            for label, options in (
                ("PNG", {"format": "PNG", "optimize": True}),
                (
                    "WebP lossless",
                    {"format": "WEBP", "lossless": True, "quality": 100, "method": 6},
                ),
            ):
                size = sum(len(pillow_round_trip(o, **options)[0]) for o in originals)
                baselines.append(
                    {"codec": label, "bytes": size, "bits_per_dim": 8 * size / values}
                )
            result["exact"] = exact
            result["baselines"] = baselines
            return result
        result["psnr_db"] = _psnr(originals, decoded)
        first = originals[0]
        baselines = []
        for label, key in (("JPEG (4:2:0)", "jpeg"), ("WebP", "webp")):
            size, outs, qualities, first_bytes = 0, [], [], 0
            for original in originals:
                # Each image's share of our file, by its pixels.
                share = len(data) * original.shape[0] * original.shape[1] / pixels
                quality, out_data, out = _closest_quality(
                    original, LOSSY_FORMATS[key], share
                )
                size += len(out_data)
                first_bytes = first_bytes or len(out_data)
                outs.append(out)
                qualities.append(quality)
            baselines.append(
                {
                    "codec": label,
                    "qualities": qualities,
                    "bytes": size,
                    "bits_per_pixel": 8 * size / pixels,
                    "psnr_db": _psnr(originals, outs),
                    "image": _data_url(outs[0]),
                    "first": {
                        "bits_per_pixel": 8
                        * first_bytes
                        / (first.shape[0] * first.shape[1]),
                        "psnr_db": _psnr(originals[:1], outs[:1]),
                    },
                }
            )
        result["baselines"] = baselines
        return result


def _psnr(originals, decoded):
    """PSNR (dB) over all the pixels of uint8 images of any sizes, from their
    pooled squared error (so each image counts by its pixels), or `None` when
    every pixel came back exactly."""
    squared = sum(
        float(np.sum((o.astype(np.float64) - d.astype(np.float64)) ** 2))
        for o, d in zip(originals, decoded)
    )
    values = sum(o.size for o in originals)
    if squared == 0:
        return None
    return 10 * math.log10(255.0**2 / (squared / values))


# -- The server -------------------------------------------------------------

_GET = {"/api/info", "/api/map", "/api/test-image"}
_POST = {
    "/api/decode": "decode",
    "/api/prior": "prior",
    "/api/encode": "encode",
    "/api/interpolate": "interpolate",
    "/api/samples": "samples",
    "/api/code": "code",
}


class _Handler(BaseHTTPRequestHandler):
    server_version = "vae-tf-explore"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status=HTTPStatus.OK):
        body = json.dumps(payload, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json")

    def _error(self, status, message: str):
        self._json({"error": message}, status)

    def _serve(self, work):
        try:
            work()
        except ExplorerError as error:
            self._error(HTTPStatus.BAD_REQUEST, str(error))
        except Exception as error:  # a bug: say so, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"The explorer failed ({type(error).__name__}: {error}); the "
                "server's log has the traceback.",
            )

    def _refused(self) -> bool:
        """Refuse (403) a request another site made: a Host that is not this
        server's loopback name (DNS rebinding) or an Origin that is not this
        page's."""
        port = self.server.server_address[1]
        allowed = {f"{name}:{port}" for name in self.server.names}
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        reason = None
        if self.server.names and host not in allowed:
            reason = f"the Host {host!r} is not this server's"
        elif origin is not None and urlsplit(origin).netloc not in allowed | {host}:
            reason = f"requests from {origin} are not served"
        if reason is None:
            return False
        self.close_connection = True
        self._error(HTTPStatus.FORBIDDEN, f"Refused: {reason}.")
        return True

    def do_GET(self):
        url = urlsplit(self.path)
        explorer = self.server.explorer
        if self._refused():
            return

        def work():
            if url.path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif url.path == "/":
                self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
            elif url.path == "/api/info":
                self._json(explorer.info())
            elif url.path == "/api/map":
                self._json(explorer.latent_map())
            elif url.path == "/api/test-image":
                query = parse_qs(url.query)
                try:
                    index = int(query.get("index", [""])[0])
                except ValueError:
                    raise ExplorerError("index must be an integer.") from None
                self._send(HTTPStatus.OK, explorer.test_image(index), "image/png")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"Nothing at {url.path}.")

        self._serve(work)

    do_HEAD = do_GET

    def do_POST(self):
        url = urlsplit(self.path)
        method = _POST.get(url.path)
        length = self.headers.get("Content-Length")
        if self._refused():
            return
        if method is None:
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, f"Nothing to post to at {url.path}.")
            return
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(
                HTTPStatus.LENGTH_REQUIRED, "The request has no Content-Length."
            )
            return
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        if kind != "application/json":  # not a form another site can post
            self.close_connection = True
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"The API takes application/json. Received: {kind or 'none'}.",
            )
            return
        if int(length) > self.server.max_upload_bytes:
            self.close_connection = True  # the body is not read
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"The upload is {int(length) / 2**20:.1f} MiB; the limit is "
                f"{self.server.max_upload_bytes / 2**20:.0f} MiB.",
            )
            return
        body = self.rfile.read(int(length))

        def work():
            try:
                payload = json.loads(body or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ExplorerError("The request is not JSON.") from None
            except RecursionError:
                raise ExplorerError(
                    "The request's JSON is nested too deeply."
                ) from None
            if not isinstance(payload, dict):
                raise ExplorerError("The request must be a JSON object.")
            answer = getattr(self.server.explorer, method)(payload)
            if isinstance(answer, bytes):
                self._send(HTTPStatus.OK, answer, "image/png")
            else:
                self._json(answer)

        self._serve(work)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # connections waiting to be accepted (default 5)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    explorer: Explorer,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    verbose: bool = False,
):
    """An HTTP server of the explorer's page and API (not yet serving).

    Call `serve_forever()` on it (in a thread, for tests), `shutdown()` to
    stop; `server_address` gives the port when `port=0` chose a free one.

    Args:
        explorer: an `Explorer`.
        host: the address to bind; 127.0.0.1 keeps it to this machine.
        port: the port (0: any free port).
        max_upload_bytes: the largest request body read.
        verbose: log every request on stderr.

    Raises:
        OSError: the address cannot be bound (e.g. the port is in use).
    """
    server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
    server.explorer = explorer
    # Bound to loopback, only these Host names are served (a page of another
    # site that rebinds its name to 127.0.0.1 sends its own).
    server.names = (
        {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host}
        if _loopback(host)
        else set()
    )
    server.page = resources.files("vae_tf").joinpath("assets", PAGE).read_bytes()
    server.max_upload_bytes = int(max_upload_bytes)
    server.verbose = verbose
    return server


def serve(
    run_dir,
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir=None,
    source: str = "auto",
    verbose: bool = False,
):
    """Serve the explorer of a run directory until interrupted (Ctrl+C).

    Loads the run's model and up to `MAP_POINTS` test images of its data
    (without them, the map and the test-image pickers are left out, and the
    page says why), prints the page's address, and serves.

    Raises:
        FileNotFoundError: `run_dir` is not a finished run directory.
        ValueError: the address cannot be bound (e.g. the port is in use).
    """
    from vae_tf import runs
    from vae_tf.data import DataUnavailableError

    model, run_config = runs.load_run(run_dir)
    try:
        images, labels, line = runs.run_test_images(
            run_config, MAP_POINTS, data_dir, source
        )
    except (DataUnavailableError, OSError, ValueError) as error:
        images, labels = None, None
        line = f"No test images ({error}); upload images instead."
    print(line, file=sys.stderr, flush=True)
    explorer = Explorer(model, Path(run_dir).name, images, labels, line)
    try:
        server = make_server(explorer, host, port, verbose=verbose)
    except OSError as error:
        raise ValueError(
            f"Cannot listen on {host}:{port} ({error.strerror or error}): choose "
            "another --port (0 picks a free one) or --host."
        ) from None
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not _loopback(host):
        print(
            f"Warning: bound to {host}, so anyone who can reach this machine can use "
            "the explorer.",
            file=sys.stderr,
        )
    print(
        f"Exploring {run_dir} at http://{shown}:{bound_port}/ (Ctrl+C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
