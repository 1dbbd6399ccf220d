"""Encoders `q(z | x)`: networks that map images to a diagonal Gaussian posterior."""

import keras
from keras import layers, ops

from vae_tf._validation import positive_int, positive_ints

__all__ = ["DenseEncoder", "bound_log_var"]


def bound_log_var(raw, bound: float):
    """Softly bound a log-variance to `(-bound, bound)`.

    ```
    log sigma^2 = bound * tanh(raw / bound)
    ```

    The identity near zero, smooth everywhere, so gradients never vanish
    abruptly as with a hard clip; `exp(log sigma^2)` can then neither overflow
    nor reach zero, which keeps the KL and the reparameterised sample finite.
    """
    return bound * ops.tanh(raw / bound)


@keras.saving.register_keras_serializable(package="vae_tf")
class DenseEncoder(keras.Model):
    """A multilayer perceptron that maps images to `(z_mean, z_log_var)`.

    The image is flattened, passed through `hidden_units` dense layers and
    projected to the mean and (softly bounded) log-variance of a diagonal
    Gaussian over `latent_dim` dimensions.

    Args:
        latent_dim: size of the latent vector `z`.
        hidden_units: widths of the hidden layers, input side first.
        activation: activation of the hidden layers.
        log_var_bound: `z_log_var` is kept in `(-log_var_bound, log_var_bound)`.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        inputs: images, shape `(batch, height, width, channels)`.

    Returns:
        `(z_mean, z_log_var)`, each of shape `(batch, latent_dim)`.

    Example:

    >>> encoder = vae_tf.DenseEncoder(latent_dim=32, hidden_units=(512, 256))
    >>> z_mean, z_log_var = encoder(images)
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_units: tuple = (512, 256),
        activation: str = "relu",
        log_var_bound: float = 10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        latent_dim = positive_int("latent_dim", latent_dim)
        hidden_units = positive_ints("hidden_units", hidden_units)
        if not log_var_bound > 0:
            raise ValueError(
                "log_var_bound must be positive. Received: "
                f"log_var_bound={log_var_bound!r}"
            )
        self.latent_dim = latent_dim
        self.hidden_units = hidden_units
        self.activation = activation
        self.log_var_bound = float(log_var_bound)
        self.flatten = layers.Flatten()
        self.hidden = [
            layers.Dense(units, activation=activation, name=f"hidden_{i}")
            for i, units in enumerate(hidden_units)
        ]
        self.posterior = layers.Dense(2 * latent_dim, name="posterior")

    def call(self, inputs, training=False):
        h = self.flatten(inputs)  # (batch, height * width * channels)
        for layer in self.hidden:
            h = layer(h)  # (batch, units)
        z_mean, raw_log_var = ops.split(self.posterior(h), 2, axis=-1)
        z_log_var = bound_log_var(raw_log_var, self.log_var_bound)
        return z_mean, z_log_var  # (batch, latent_dim) each

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            log_var_bound=self.log_var_bound,
        )
        return config
