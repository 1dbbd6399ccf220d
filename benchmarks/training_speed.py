"""Training speed of every preset, with each speed lever on and off.

For each preset, images/s of `fit` in five settings, measured in one process
one after another (compare them as ratios; the machine is shared):

- `all_on`: the preset's settings: its XLA choice (`jit_compile`), its
  `steps_per_execution`, and the tuned input pipeline of `vae_tf.data`
  (one vectorised gather per batch, float conversion after batching, a
  fixed prefetch);
- `no_xla`: the same without XLA (only for presets that use it);
- `steps_per_execution_1`: one step per compiled call;
- `naive_pipeline`: `from_tensor_slices(images).map(to_float).batch(...)`, one
  map call per image and no prefetch;
- `mixed_bfloat16`: `all_on` with the networks in bfloat16 (the loss terms
  stay float32). On a CPU this is a speed-up only where the CPU has bfloat16
  instructions (AVX512-BF16 / AMX); on GPUs use `mixed_float16`.

Prints one JSON line per preset and setting: `preset`, `setting`,
`images_per_second`, `speedup_vs_all_on` (ratio to `all_on` measured in the
same run), `batch_size`, `jit_compile`, `steps_per_execution`.

    python benchmarks/training_speed.py --data-dir DIR [--presets NAME ...]

A preset of a folder dataset (`photo-lossy`) trains on fixed random crops
of the files of `--image-dir`; without it, the preset is skipped with a
line saying so.
"""

import argparse
import json
import math
import time

import numpy as np
import tensorflow as tf

from vae_tf import data, distribute, image_folders, presets


def emit(**fields):
    print(json.dumps(fields), flush=True)


def naive_dataset(images, labels, batch_size):
    def to_float(x):
        return tf.cast(x, tf.float32) / 255.0

    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(images).map(to_float)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).map(
            lambda x, y: (to_float(x), y)
        )
    return dataset.batch(batch_size)


def measure(preset, images, labels, setting: str, min_seconds: float) -> dict:
    jit = preset.jit_compile and setting != "no_xla"
    spe = 1 if setting == "steps_per_execution_1" else preset.steps_per_execution
    precision = "mixed_bfloat16" if setting == "mixed_bfloat16" else "float32"
    batch = preset.batch_size
    if setting == "naive_pipeline":
        dataset = naive_dataset(images, labels, batch)
    else:
        dataset = data.make_dataset(images, labels, batch_size=batch, shuffle=True)
    dataset = dataset.repeat()
    with distribute.precision_policy(precision):
        model = preset.build_model(seed=0)
        model.compile(
            optimizer=preset.optimizer(1000, 1),
            jit_compile=jit,
            steps_per_execution=spe,
        )
    steps = 2 * spe
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)  # compile
    while True:
        start = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            break
        grow = max(2.0, 1.2 * min_seconds / max(seconds, 1e-3))
        steps = spe * math.ceil(steps * grow / spe)
    return {
        "images_per_second": steps * batch / seconds,
        "batch_size": batch,
        "jit_compile": jit,
        "steps_per_execution": spe,
        "precision": precision,
        "steps_timed": steps,
    }


def folder_crops(preset, image_dir, count):
    """uint8 random crops of the preset's size (fixed, seed 0) of the files
    of `image_dir`, `preset.crops_per_image` of each, up to `count`."""
    files = image_folders.list_images(image_dir)
    crops = image_folders.folder_dataset(
        files,
        data.DATASETS[preset.dataset].image_shape,
        batch_size=64,
        shuffle=False,
        seed=0,
        crop="random",
        crops_per_image=preset.crops_per_image,
    ).unbatch()
    return np.stack([np.round(255 * c.numpy()) for c in crops.take(count)]).astype(
        np.uint8
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="folder with mnist.npz and cifar10.npz")
    parser.add_argument("--presets", nargs="+", default=sorted(presets.PRESETS))
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--images", type=int, default=10000, help="training images")
    parser.add_argument("--image-dir", help="photos for a folder preset's crops")
    args = parser.parse_args()

    for name in args.presets:
        preset = presets.get(name)
        if data.DATASETS[preset.dataset].folder:
            if args.image_dir is None:
                emit(preset=name, error="a folder preset: give --image-dir")
                continue
            images, labels = folder_crops(preset, args.image_dir, args.images), None
        else:
            images, labels = data.load_arrays(preset.dataset, "train", args.data_dir)
        images = images[: args.images]
        labels = labels[: args.images] if preset.conditional else None
        settings = ["all_on", "steps_per_execution_1", "naive_pipeline"]
        if preset.jit_compile:
            settings.insert(1, "no_xla")
        settings.append("mixed_bfloat16")
        reference = None
        for setting in settings:
            try:
                result = measure(preset, images, labels, setting, args.seconds)
            except (TypeError, ValueError) as error:  # e.g. a dtype the model lacks
                emit(preset=name, setting=setting, error=str(error).splitlines()[0])
                continue
            reference = reference or result["images_per_second"]
            emit(
                preset=name,
                setting=setting,
                speedup_vs_all_on=result["images_per_second"] / reference,
                **result,
            )


if __name__ == "__main__":
    main()
