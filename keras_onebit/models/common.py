"""What every model factory ends with: the classifier activation, the
Keras model, and pretrained weights when asked for."""

import keras
from keras import layers


def classifier_model(inputs, logits, classifier_activation, name, weights):
    """keras.Model(inputs, activation(logits)) named `name`, with `weights`
    (None, a hub model id, a data set name or a path) loaded."""
    x = logits
    if classifier_activation is not None:
        x = layers.Activation(classifier_activation, name="predictions",
                              dtype="float32")(x)  # float32 under mixed precision too
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        from keras_onebit import hub

        hub.load_weights_into(model, weights)
    return model
