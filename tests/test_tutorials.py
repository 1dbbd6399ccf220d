"""The tutorials' --quick runs: each must finish and write its figures and metrics.

The runs themselves start when the suite is collected (conftest.QuickRuns);
each test's `quick_runs` fixture waits for its own."""

import math
import os

import numpy as np
import pytest
from conftest import LOCAL_DATA
from PIL import Image


def assert_drawn(path):
    """`path` is a PNG with a picture in it: an image grid or a plot with data.

    Measured on the tutorials' figures: an image grid differs from its
    background on 17% to 97% of its pixels; a plot's lines and points, in
    matplotlib's colours, are 0.3% to 8% saturated pixels. A blank canvas
    (one colour) and empty axes (2% drawn, all grey) fail both.
    """
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] >= 64 and pixels.shape[1] >= 64, (path.name, pixels.shape)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    drawn = np.mean(np.abs(pixels - background).sum(axis=-1) > 30)
    coloured = np.mean(pixels.max(axis=-1) - pixels.min(axis=-1) > 60)
    assert drawn > 0.15 or coloured > 0.002, (
        f"{path.name}: {drawn:.1%} of the pixels drawn, {coloured:.2%} in colour"
    )


@pytest.mark.tutorial("01_dense_mnist_vae.py")
def test_dense_mnist_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    for figure in ("loss_curves.png", "reconstructions.png", "samples.png"):
        assert_drawn(tmp_path / figure)
    assert metrics["quick"] is True
    # One epoch: well below a blank decoder's 543 nats, above the converged ~90.
    assert (
        90 < metrics["test_nll_iwae_nats"] <= metrics["test_negative_elbo_nats"] < 160
    )
    assert metrics["reload_max_abs_difference"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.tutorial("02_latent_space_and_generation.py")
def test_latent_space_and_generation_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
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
        assert_drawn(tmp_path / figure)
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


@pytest.mark.tutorial("03_conv_mnist_vae.py")
def test_conv_mnist_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    for figure in ("loss_curves.png", "reconstructions.png", "samples.png"):
        assert_drawn(tmp_path / figure)
    assert metrics["conv_parameters"] < metrics["dense_parameters"]
    assert (
        90 < metrics["test_nll_iwae_nats"] <= metrics["test_negative_elbo_nats"] < 250
    )


@pytest.mark.tutorial("04_challenges.py")
def test_challenges_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    for figure in (
        "kl_per_dimension.png",
        "beta_tradeoff.png",
        "beta_active_units.png",
        "samples_logistic_mixture.png",
    ):
        assert_drawn(tmp_path / figure)
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


@pytest.mark.tutorial("06_denoising_and_test_images.py")
def test_denoising_and_test_images_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    for figure in ("denoising_noise.png", "denoising_masking.png"):
        assert_drawn(tmp_path / figure)
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
@pytest.mark.tutorial("05_conv_cifar10_vae.py")
def test_conv_cifar10_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    for figure in (
        "reconstructions.png",
        "reconstructions_sampled.png",
        "samples.png",
        "reconstructions_mse.png",
        "samples_hierarchical.png",
        "lossless_reconstructions.png",
        "lossless_temperatures.png",
        "lossless_one_z_many_draws.png",
    ):
        assert_drawn(tmp_path / figure)
    # One short epoch: below a uniform model's 8 bits/dim, far from converged.
    assert (
        3.0 < metrics["test_nll_iwae_bits_per_dim"] <= metrics["test_bits_per_dim"] < 8
    )
    # The tutorial's claim: the fixed-variance Gaussian (MSE) model, trained the
    # same way, spends more bits than the logistic mixture.
    assert metrics["test_bits_per_dim"] < metrics["mse_baseline"]["test_bits_per_dim"]
    assert 3.0 < metrics["hierarchical"]["test_bits_per_dim"] < 8
    level_kls = metrics["hierarchical"]["test_kl_per_level_nats"]
    assert len(level_kls) == 2 and min(level_kls) >= 0.0
    local = metrics["lossless_preset"]
    assert 3.0 < local["test_bits_per_dim"] < 10 and local["num_latent_dims"] == 1024
    assert 0.0 <= local["test_kl_bits_per_dim"] < local["test_bits_per_dim"]


@pytest.mark.tutorial("08_model_compression_and_deployment.py")
def test_model_compression_and_deployment_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    assert metrics["served_without_vae_tf"] is True
    assert metrics["saved_model_max_abs_difference"] < 1e-4
    rows = metrics["tflite"]
    assert abs(rows["none"]["elbo_relative_change"]) < 1e-5
    assert abs(rows["float16"]["elbo_relative_change"]) < 1e-3
    assert 1.9 < rows["float16"]["size_ratio"] < 2.1
    assert rows["dynamic"]["size_ratio"] > 3 and rows["int8"]["size_ratio"] > 3
    assert_drawn(tmp_path / "size_vs_elbo.png")


@needs_cifar
@pytest.mark.tutorial("07_compression.py")
def test_compression_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
    for figure in ("rate_distortion.png", "lossy_examples.png"):
        assert_drawn(tmp_path / figure)
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
    # Colour, any size: exact, and the net rate is the ELBO (a few images).
    colour = metrics["bitsback_colour"]
    assert colour["bit_exact"] is True and colour["odd_size_exact"] is True
    assert colour["net_bits_per_dim"] == pytest.approx(
        colour["negative_elbo_bits_per_dim"], rel=0.05
    )
    assert colour["first_image_pops_bits"] > 5000  # 1,024 latents
    # A photograph: the file decodes to the encoder's reconstruction, and
    # JPEG and WebP are shown at about its size.
    assert_drawn(tmp_path / "photo.png")
    photo = metrics["photo"]
    assert photo["vae_exact"] is True
    for name in ("jpeg", "webp"):
        assert photo[name]["bits_per_pixel"] == pytest.approx(
            photo["vae"]["bits_per_pixel"], rel=0.5
        )
        assert 5 < photo[name]["psnr_db"] < 60


@pytest.mark.tutorial("09_scaling_out.py")
def test_scaling_out_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
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


@pytest.mark.tutorial("10_vq_vae.py")
def test_vq_vae_tutorial_quick_run(quick_runs):
    metrics, tmp_path = quick_runs
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
        assert_drawn(tmp_path / name)
    assert (tmp_path / "saved_model" / "saved_model.pb").exists()
