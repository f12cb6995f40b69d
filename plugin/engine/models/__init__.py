"""Models: the networks. The model zoo (classification and super-resolution architectures, their adversarial trainer,
image losses), the model card that travels with every model, loading models for training and inference, and the
model gate that refuses unsafe models before TensorFlow touches them.
"""
