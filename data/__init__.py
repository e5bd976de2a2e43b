"""MNIST loading and image helpers for the VAE kit.

``from data import load_mnist, save_images`` keeps the original coursework's interface.
The plotting helpers import matplotlib only when first used, so importing this package
stays quick.
"""
from .mnist import MNISTError, MNISTUnavailable, describe, load_arrays, load_mnist, read_idx


def save_images(images, file_name, **kwargs):
    """Write a grid of digits to a PNG; see data.images.save_images for the options."""
    from .images import save_images as save
    return save(images, file_name, **kwargs)


def plot_lower_bound(history, file_name):
    """Train and test lower bound per epoch, as a PNG; see data.images.plot_lower_bound."""
    from .images import plot_lower_bound as plot
    return plot(history, file_name)


__all__ = ["load_mnist", "load_arrays", "describe", "save_images", "plot_lower_bound", "read_idx",
           "MNISTError", "MNISTUnavailable"]
