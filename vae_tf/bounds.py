"""The terms of the variational bound: Gaussian KL, log-densities, IWAE, bits/dim.

Every formula of the bound lives here once, so the VAE's `train_step`, the
evaluation code and the tutorials all compute the same numbers.

References:
    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
    arXiv:1312.6114.
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders",
    ICLR 2016, arXiv:1509.00519.
"""

import math

from keras import ops

__all__ = [
    "LOG_2PI",
    "gaussian_kl",
    "gaussian_kl_between",
    "gaussian_log_prob",
    "standard_normal_log_prob",
    "iwae_bound",
    "bits_per_dim",
    "sum_per_example",
]

LOG_2PI = math.log(2.0 * math.pi)


def sum_per_example(values):
    """Sum every axis but the first: `(batch, ...) -> (batch,)`."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


def gaussian_kl(z_mean, z_log_var):
    """KL divergence from a diagonal Gaussian posterior to the standard normal prior.

    Closed form per latent dimension (Kingma & Welling 2014, appendix B):

    ```
    KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2)
    ```

    Args:
        z_mean: posterior means, shape `(batch, latent_dim)`.
        z_log_var: posterior log-variances, same shape.

    Returns:
        The KL of each dimension in nats, shape `(batch, latent_dim)`; sum over
        the last axis for the KL of the whole latent.
    """
    return 0.5 * (ops.square(z_mean) + ops.exp(z_log_var) - 1.0 - z_log_var)


def gaussian_kl_between(q_mean, q_log_var, p_mean, p_log_var):
    """KL divergence between two diagonal Gaussians, per dimension.

    ```
    KL(N(mu_q, s_q^2) || N(mu_p, s_p^2))
        = 0.5 * (log s_p^2 - log s_q^2 + (s_q^2 + (mu_q - mu_p)^2) / s_p^2 - 1)
    ```

    With `p = N(0, 1)` it is `gaussian_kl`. Used for the lower levels of a
    hierarchical VAE, whose prior `p(z_i | z_{i+1})` is itself a Gaussian.

    Returns:
        The KL of each element in nats (not summed).
    """
    return 0.5 * (
        p_log_var
        - q_log_var
        + (ops.exp(q_log_var) + ops.square(q_mean - p_mean)) * ops.exp(-p_log_var)
        - 1.0
    )


def gaussian_log_prob(z, mean, log_var):
    """Log-density of a diagonal Gaussian, per dimension.

    ```
    log N(z; mu, sigma^2) = -0.5 * (log(2 pi) + log sigma^2 + (z - mu)^2 / sigma^2)
    ```

    Args:
        z: points, any shape broadcastable with `mean` and `log_var`.
        mean: Gaussian means.
        log_var: Gaussian log-variances.

    Returns:
        The log-density of each element in nats (not summed).
    """
    return -0.5 * (LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var))


def standard_normal_log_prob(z):
    """Log-density of the standard normal prior, per dimension.

    ```
    log N(z; 0, 1) = -0.5 * (log(2 pi) + z^2)
    ```
    """
    return -0.5 * (LOG_2PI + ops.square(z))


def iwae_bound(log_weights, axis: int = -1):
    """Importance-weighted lower bound on `log p(x)` (Burda et al. 2016).

    With `k` samples `z_i ~ q(z | x)` and log-weights
    `log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x)`:

    ```
    L_k = log (1/k) sum_i w_i = logsumexp_i(log w_i) - log k
    ```

    `L_1` is the ELBO; `E[L_k]` does not decrease with `k` and tends to
    `log p(x)`.

    Args:
        log_weights: log importance weights, with the `k` samples on `axis`.
        axis: the sample axis.

    Returns:
        `L_k` with `axis` reduced.
    """
    k = ops.shape(log_weights)[axis]
    return ops.logsumexp(log_weights, axis=axis) - ops.log(ops.cast(k, "float32"))


def bits_per_dim(nll_nats, num_dims: int):
    """Convert a negative log-likelihood in nats per example to bits per dimension.

    ```
    bits/dim = nll / (D * ln 2)
    ```

    Args:
        nll_nats: negative log-likelihood (or bound) per example, in nats.
        num_dims: number of dimensions `D` of one example (pixels x channels).

    Returns:
        The same quantity in bits per dimension.
    """
    return nll_nats / (num_dims * math.log(2.0))
