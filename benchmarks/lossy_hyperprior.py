"""The mean-scale hyperprior against the scale hyperprior, trained alike.

Trains `photo-lossy`'s model (`vae-tf train --preset photo-lossy`: the same
transforms, crops, flips, epochs, seed and lmbda) with the hyperprior
predicting each latent's scale only (`--hyperprior scale`, Ballé et al.
2018, arXiv:1802.01436) or its mean and scale (`--hyperprior mean-scale`,
the preset's, Minnen, Ballé & Toderici 2018, arXiv:1809.02736), writes the
run to `--output-dir` and prints its metrics (one JSON line) with the
training time. The two can train side by side, one thread each
(`TF_NUM_INTRAOP_THREADS=1`). Compare the runs on whole test photos with
`compress_lossy.py --run-dirs SCALE MEAN_SCALE --dataset photos`.

    python benchmarks/lossy_hyperprior.py --hyperprior scale \\
        --image-dir photos/train --epochs 10 --output-dir runs/hp-scale
"""

import argparse
import dataclasses
import functools
import json

from vae_tf import presets, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hyperprior", choices=["scale", "mean-scale"], required=True)
    parser.add_argument("--image-dir", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lmbda", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    preset = presets.get("photo-lossy")
    name = f"photo-lossy ({args.hyperprior} hyperprior)"
    presets.PRESETS[name] = dataclasses.replace(
        preset,
        name=name,
        model_fn=functools.partial(
            preset.model_fn, mean_scale=args.hyperprior == "mean-scale"
        ),
    )
    metrics = runs.train(
        name,
        args.output_dir,
        epochs=args.epochs,
        lmbda=args.lmbda,
        seed=args.seed,
        image_dir=args.image_dir,
        verbose=2,
        overwrite=True,
    )
    keys = ("test_bpp", "test_psnr_db", "train_seconds", "epochs", "lmbda")
    print(json.dumps({"hyperprior": args.hyperprior, **{k: metrics[k] for k in keys}}))


if __name__ == "__main__":
    main()
