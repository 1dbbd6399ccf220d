"""The tutorials' --quick runs: each must finish and write its figures and metrics."""

import concurrent.futures
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
# Read before the offline fixture clears it: CI prepares the full MNIST there.
LOCAL_DATA = os.environ.get("VAE_TF_DATA_DIR")


def run_tutorial(name, output_dir):
    command = [
        sys.executable,
        str(TUTORIALS / name),
        "--quick",
        "--output-dir",
        str(output_dir),
    ]
    env = dict(os.environ)
    if LOCAL_DATA:
        command += ["--data-dir", LOCAL_DATA]
    else:
        env.pop("VAE_TF_DATA_DIR", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


HAVE_CIFAR = bool(LOCAL_DATA or os.environ.get("CI"))
# Longest first. CIFAR-10 tutorials need cifar10.npz (CI prepares it).
ORDER = [
    ("05_conv_cifar10_vae.py", True),
    ("09_scaling_out.py", False),
    ("07_compression.py", True),
    ("04_challenges.py", False),
    ("10_vq_vae.py", False),
    ("02_latent_space_and_generation.py", False),
    ("08_model_compression_and_deployment.py", False),
    ("06_denoising_and_test_images.py", False),
    ("01_dense_mnist_vae.py", False),
    ("03_conv_mnist_vae.py", False),
]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Start every tutorial's --quick run, two at a time, and wait for one.

    Much of a quick run is single-threaded (start-up, tracing, Python), so two
    at a time on 2 cores finish the set sooner than one after another.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    futures = {}
    for name, needs_cifar_data in ORDER:
        if needs_cifar_data and not HAVE_CIFAR:
            continue
        out = tmp_path_factory.mktemp(name.split("_", 1)[0])
        futures[name] = (pool.submit(run_tutorial, name, out), out)

    def result(name):
        future, out = futures[name]
        finished = future.result()
        assert finished.returncode == 0, finished.stderr[-4000:]
        return json.loads((out / "metrics.json").read_text()), out

    yield result
    pool.shutdown(wait=True, cancel_futures=True)


def test_dense_mnist_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("01_dense_mnist_vae.py")
    for figure in ("loss_curves.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    assert metrics["quick"] is True
    # A few epochs: well below a blank decoder's 543 nats, above the converged ~90.
    assert (
        90 < metrics["test_nll_iwae_nats"] <= metrics["test_negative_elbo_nats"] < 160
    )
    assert metrics["reload_max_abs_difference"] == pytest.approx(0.0, abs=1e-6)


def test_latent_space_and_generation_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("02_latent_space_and_generation.py")
    for figure in (
        "temperature.png",
        "interpolation_linear.png",
        "interpolation_spherical.png",
        "latent_manifold.png",
        "latent_scatter_2d.png",
        "latent_scatter_pca.png",
        "conditional_samples.png",
        "conditional_style_transfer.png",
    ):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    assert metrics["judge_test_accuracy"] > 0.85
    # Slerp keeps the endpoints' norm; the straight line's midpoint is shorter.
    assert (
        metrics["spherical_midpoint_latent_norm"]
        > metrics["linear_midpoint_latent_norm"]
    )
    # Asked-for digits are recognised far above chance (10%) even after 2 epochs.
    assert metrics["conditional_samples_judged_as_asked"] > 0.3
    assert (
        metrics["latent_2d_test_negative_elbo_nats"]
        > metrics["test_negative_elbo_nats"]
    )


def test_conv_mnist_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("03_conv_mnist_vae.py")
    for figure in ("loss_curves.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    assert metrics["conv_parameters"] < metrics["dense_parameters"]
    assert (
        90 < metrics["test_nll_iwae_nats"] <= metrics["test_negative_elbo_nats"] < 250
    )


def test_challenges_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("04_challenges.py")
    for figure in (
        "kl_per_dimension.png",
        "beta_tradeoff.png",
        "beta_active_units.png",
        "samples_logistic_mixture.png",
    ):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    collapse = metrics["collapse"]
    assert collapse["pixel_mean_loss"]["active_units"] <= 2
    assert (
        collapse["free_bits"]["active_units"]
        > collapse["pixel_mean_loss"]["active_units"]
    )
    assert (
        collapse["elbo"]["test_negative_elbo_nats"]
        < collapse["pixel_mean_loss"]["test_negative_elbo_nats"]
    )
    kls = [row["test_kl_nats"] for row in metrics["beta_sweep"]]
    assert kls == sorted(kls, reverse=True)  # more beta, less information in z
    assert metrics["blur"]["bernoulli_cross_entropy"]["test_bits_per_dim"] is None
    assert metrics["nan_safety"] == {
        "naive_kl_finite": False,
        "vae_tf_kl_finite": True,
        "naive_log_p_finite": False,
        "vae_tf_log_p_finite": True,
        "extreme_weights_loss_finite": True,
        "extreme_weights_gradients_finite": True,
    }


def test_denoising_and_test_images_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("06_denoising_and_test_images.py")
    for figure in ("denoising_noise.png", "denoising_masking.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    for corruption in ("noise", "masking"):
        denoised = metrics[f"{corruption}_psnr_denoising_vae_db"]
        assert denoised > metrics[f"{corruption}_psnr_corrupted_db"]
        assert denoised > metrics[f"{corruption}_psnr_plain_vae_db"]
    assert metrics["generated_files"] == 100
    assert len(list((tmp_path / "test_images").glob("sample_*_class*.png"))) == 100
    assert metrics["same_seed_same_files"] is True


needs_cifar = pytest.mark.skipif(
    not LOCAL_DATA and not os.environ.get("CI"),
    reason="needs cifar10.npz in $VAE_TF_DATA_DIR (CI prepares it, and fails without)",
)


@needs_cifar
def test_conv_cifar10_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("05_conv_cifar10_vae.py")
    for figure in (
        "reconstructions.png",
        "reconstructions_sampled.png",
        "samples.png",
        "reconstructions_mse.png",
        "samples_hierarchical.png",
    ):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    # One short epoch: below a uniform model's 8 bits/dim, far from converged.
    assert (
        3.0 < metrics["test_nll_iwae_bits_per_dim"] <= metrics["test_bits_per_dim"] < 8
    )
    assert 3.0 < metrics["mse_baseline"]["test_bits_per_dim"] < 8
    assert 3.0 < metrics["hierarchical"]["test_bits_per_dim"] < 8
    level_kls = metrics["hierarchical"]["test_kl_per_level_nats"]
    assert len(level_kls) == 2 and min(level_kls) >= 0.0


def test_model_compression_and_deployment_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("08_model_compression_and_deployment.py")
    assert metrics["served_without_vae_tf"] is True
    assert metrics["saved_model_max_abs_difference"] < 1e-4
    rows = metrics["tflite"]
    assert abs(rows["none"]["elbo_relative_change"]) < 1e-5
    assert abs(rows["float16"]["elbo_relative_change"]) < 1e-3
    assert 1.9 < rows["float16"]["size_ratio"] < 2.1
    assert rows["dynamic"]["size_ratio"] > 3 and rows["int8"]["size_ratio"] > 3
    assert (tmp_path / "size_vs_elbo.png").exists()


@needs_cifar
def test_compression_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("07_compression.py")
    for figure in ("rate_distortion.png", "lossy_examples.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
    # The rate is the KL: the box posterior's KL and the rounded latents' cost.
    assert metrics["rounded_bits_per_image"] == pytest.approx(
        metrics["kl_bits_per_image"], rel=0.1
    )
    for point in metrics["vae_points"]:
        # One file per 256x256 mosaic: its header is a fixed cost per file,
        # which at the quick run's low rates is a few percent of the bits.
        payload = point["bits_per_pixel"] - 8 * point["header_bytes"] / 256**2
        assert point["model_bits_per_pixel"] < point["bits_per_pixel"]
        assert payload < 1.02 * point["model_bits_per_pixel"]
    assert len(metrics["classical"]["jpeg"]) == len(metrics["classical"]["webp"]) > 3
    # Bits-back: the pop shrinks the stack, the pushes grow it, the round trip
    # is exact, and many images cost about their negative ELBO.
    stack = [step["stack_bits"] for step in metrics["bitsback_steps"]]
    assert stack[1] < stack[0] and stack[1] < stack[2] < stack[3]
    assert metrics["bitsback_one_image_exact"] is True
    bitsback = metrics["bitsback"]
    assert bitsback["bit_exact"] is True
    assert bitsback["net_bits_per_dim"] == pytest.approx(
        bitsback["negative_elbo_bits_per_dim"], rel=0.05
    )


def test_scaling_out_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("09_scaling_out.py")
    # Dividing by the replica count makes 2 replicas move the weights like one
    # device; without it the update is twice as large.
    assert metrics["update_ratio_scaled"] == pytest.approx(1.0, abs=0.25)
    assert metrics["update_ratio_unscaled"] == pytest.approx(2.0, abs=0.3)
    assert metrics["multi_worker"]["replicas"] == 2  # the chief wrote the run
    assert metrics["multi_worker"]["backups_left"] == []
    assert metrics["multi_worker"]["test_negative_elbo_nats"] < 300
    assert metrics["mixed_bfloat16"]["compute_dtype"] == "bfloat16"
    assert metrics["mixed_bfloat16"]["loss_dtype"] == "<dtype: 'float32'>"
    assert metrics["resume"] == {
        "first_run_epochs": [1, 2],
        "second_run_epochs": [3, 4],
    }
    assert metrics["image_dir"]["files"] == 60
    assert metrics["image_dir"]["num_test_images"] == 3


def test_vq_vae_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs("10_vq_vae.py")
    # The uniform prior's bound is the reconstruction plus 49 log 128 nats.
    assert metrics["vq_negative_elbo_uniform_prior_nats"] == pytest.approx(
        metrics["vq_reconstruction_nats"] + 49 * math.log(128), rel=1e-6
    )
    # The learned prior spends fewer nats than a uniform one...
    assert metrics["vq_prior_nats"] < 49 * math.log(128)
    # ...and the 7x7 code map carries more than the Gaussian's 64 numbers.
    assert metrics["vq_reconstruction_nats"] < metrics["gaussian_reconstruction_nats"]
    assert 1.0 <= metrics["vq_perplexity"] <= 128.0
    assert 0.0 < metrics["vq_codebook_usage"] <= 1.0
    changes = metrics["vq_interpolation_code_changes"]
    assert len(changes) == 7 and all(0 <= c <= 49 for c in changes) and sum(changes)
    for name in ("samples.png", "interpolation.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "saved_model" / "saved_model.pb").exists()
