"""jaxcnn: convolutional networks from scratch as pure JAX functions."""

__version__ = "0.1.0"
