"""Adversarial training of the super-resolution generator (SR4RS trains its generator against a
discriminator): a patch discriminator and an LSGAN trainer that Train model fits like any model.

* ``build_discriminator``: strided 3 x 3 convolutions with leaky ReLU down to a map of realness
  scores (a "PatchGAN": any image size, one score per region).
* ``AdversarialTrainer``: a Keras model around the generator and the discriminator. Its loss is the
  content loss (L1/L2/SSIM, LOSS_WEIGHTS) plus ``adversarial`` x the generator's LSGAN loss
  (mean (D(G(x)) - 1)^2); the discriminator learns mean (D(y) - 1)^2 + mean D(G(x))^2 with its own
  Adam. The first ``pretrain_epochs`` epochs train the generator on the content loss alone.
  Checkpoints (.keras) hold both networks and both optimisers, so RESUME continues exactly.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .imageloss import ImageLoss, psnr, ssim


def build_discriminator(bands: int, width: int = 32, seed: int | None = None) -> keras.Model:
    counter = iter(range(1, 1000))

    def init():
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + 500 + next(counter))

    inputs = keras.Input((None, None, bands), name="image")
    x = inputs
    for index, (channels, stride) in enumerate(((width, 1), (width, 2), (2 * width, 2), (4 * width, 2))):
        x = keras.layers.Conv2D(channels, 3, strides=stride, padding="same", kernel_initializer=init(),
                                name=f"d_conv{index + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"d_relu{index + 1}")(x)
    scores = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=init(), name="d_scores")(x)
    return keras.Model(inputs, scores, name="discriminator")


@keras.saving.register_keras_serializable(package="patchflow")
class AdversarialTrainer(keras.Model):
    def __init__(self, generator: keras.Model, discriminator: keras.Model, content_weights: dict[str, float],
                 adversarial: float, pretrain_epochs: int, discriminator_learning_rate: float = 1e-4, **options):
        super().__init__(**options)
        self.generator, self.discriminator = generator, discriminator
        self.content_weights, self.adversarial = dict(content_weights), float(adversarial)
        self.pretrain_epochs = int(pretrain_epochs)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.content = ImageLoss(self.content_weights)
        self.d_optimizer = keras.optimizers.Adam(self.discriminator_learning_rate, beta_1=0.5)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.adversarial_on = False  # switched by AdversarialSchedule after the pre-training epochs
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "content_loss", "adversarial_loss", "discriminator_loss", "psnr",
                                      "ssim")}
        self.built = True  # both networks are functional models, built already

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def compile_from_config(self, config):
        """On loading a checkpoint: the optimizer updates the generator only (the discriminator has
        its own), so it is built on the generator's variables, as it was saved, and its state loads."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _content(self, y, fake, weights):
        return self.content(y, fake, sample_weight=weights)

    def train_step(self, data):
        x, y, weights = data
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(x, training=True)
            content = self._content(y, fake, weights)
            if self.adversarial_on:
                fake_scores = self.discriminator(fake, training=True)
                real_scores = self.discriminator(y, training=True)
                g_adversarial = tf.reduce_mean(tf.square(fake_scores - 1.0))
                d_loss = tf.reduce_mean(tf.square(real_scores - 1.0)) + tf.reduce_mean(tf.square(fake_scores))
                total = content + self.adversarial * g_adversarial
            else:
                g_adversarial = d_loss = tf.constant(0.0)
                total = content
        g_variables = self.generator.trainable_variables
        self.optimizer.apply(g_tape.gradient(total, g_variables), g_variables)
        if self.adversarial_on:
            d_variables = self.discriminator.trainable_variables
            self.d_optimizer.apply(d_tape.gradient(d_loss, d_variables), d_variables)
        return self._track(total, content, g_adversarial, d_loss, y, fake)

    def test_step(self, data):
        x, y, weights = data
        fake = self.generator(x, training=False)
        content = self._content(y, fake, weights)
        return self._track(content, content, tf.constant(0.0), tf.constant(0.0), y, fake)

    def _track(self, total, content, adversarial, discriminator, y, fake):
        values = {"loss": total, "content_loss": content, "adversarial_loss": adversarial,
                  "discriminator_loss": discriminator, "psnr": tf.reduce_mean(psnr(y, fake)),
                  "ssim": tf.reduce_mean(ssim(y, fake))}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        return {**super().get_config(), "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "content_weights": self.content_weights, "adversarial": self.adversarial,
                "pretrain_epochs": self.pretrain_epochs,
                "discriminator_learning_rate": self.discriminator_learning_rate}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)


class AdversarialSchedule(keras.callbacks.Callback):
    """Turns the adversarial loss on after the pre-training epochs (the train step is traced again)."""

    def on_epoch_begin(self, epoch, logs=None):
        trainer = self.model
        wanted = epoch >= trainer.pretrain_epochs and trainer.adversarial > 0
        if wanted != trainer.adversarial_on:
            trainer.adversarial_on = wanted
            trainer.make_train_function(force=True)
