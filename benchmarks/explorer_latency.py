"""How long a slider move takes in `vae-tf explore`: request to PNG, over HTTP.

Serves a run's explorer on 127.0.0.1 (as `vae-tf explore` does) and plays a
slider being dragged: each request moves one latent dimension a step further
and asks `/api/decode` for the image, one request at a time, as the page
sends them. Prints the latency distribution (milliseconds, measured in the
client: JSON out, decode, PNG back) after a warm-up.

    python benchmarks/explorer_latency.py --run-dir runs/mnist-dense \
        --data-dir DIR
"""

import argparse
import json
import threading
import time
import urllib.request

import numpy as np

from vae_tf import runs
from vae_tf.explorer import MAP_POINTS, Explorer, make_server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-dir", help="folder of keras-layout .npz files")
    parser.add_argument("--source", default="auto")
    parser.add_argument("--moves", type=int, default=500, help="slider moves timed")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    model, run_config = runs.load_run(args.run_dir)
    images, labels, line = runs.run_test_images(
        run_config, MAP_POINTS, args.data_dir, args.source
    )
    started = time.perf_counter()
    explorer = Explorer(model, "benchmark", images, labels, line)
    print(f"{line} Explorer ready in {time.perf_counter() - started:.1f} s.")
    server = make_server(explorer, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/decode"

    info = explorer.info()
    dims = info["latent"]["dims"]
    sliders = [s["dim"] for s in info["latent"]["sliders"]]
    z = np.asarray(explorer.encode({"image": {"index": 0}})["z"])
    label = 0 if info["num_classes"] else None
    times = []
    for move in range(args.warmup + args.moves):
        dim = sliders[(move // 40) % len(sliders)]  # drag one slider, then the next
        z[dim] = -3 + 6 * (move % 40) / 39
        body = json.dumps({"z": z.tolist(), "label": label}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            png = response.read()
        elapsed = 1000 * (time.perf_counter() - start)
        assert png.startswith(b"\x89PNG")
        if move >= args.warmup:
            times.append(elapsed)
    server.shutdown()
    times = np.array(times)
    print(
        f"{info['family']} {run_config['preset']}, {dims}-d latent, image "
        f"{'x'.join(map(str, info['image_shape']))}: {len(times)} slider moves"
    )
    print(
        "latency ms: "
        + ", ".join(f"p{q} {np.percentile(times, q):.1f}" for q in (50, 90, 99))
        + f", max {times.max():.1f}, mean {times.mean():.1f}"
    )
    print(f"moves within 50 ms: {np.mean(times <= 50):.1%}")


if __name__ == "__main__":
    main()
