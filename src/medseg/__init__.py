"""medseg: medical image segmentation and registration with convolutional networks."""

__version__ = "0.1.0"
