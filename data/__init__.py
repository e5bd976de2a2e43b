"""MNIST loading and image helpers for the VAE kit.

``from data import load_mnist, save_images`` keeps the original coursework's interface.
"""
from .images import plot_lower_bound, save_images
from .mnist import MNISTError, MNISTUnavailable, load_arrays, load_mnist, read_idx

__all__ = ["load_mnist", "load_arrays", "save_images", "plot_lower_bound", "read_idx",
           "MNISTError", "MNISTUnavailable"]
