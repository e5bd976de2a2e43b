"""Figures: digit grids and learning curves, written as PNG without a display."""
import os

import matplotlib

matplotlib.use("Agg")  # no screen needed; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np


def _grid(images, ims_per_row, padding, digit_dimensions, background):
    """Tile (n, 784) images into one array, row-major, with ``padding`` pixels between."""
    images = np.asarray(images, dtype=np.float64).reshape((-1,) + tuple(digit_dimensions))
    n = len(images)
    rows = int(np.ceil(n / ims_per_row))
    h, w = digit_dimensions
    canvas = np.full(((h + padding) * rows + padding, (w + padding) * ims_per_row + padding), background)
    for i, image in enumerate(images):
        r, c = divmod(i, ims_per_row)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        canvas[top:top + h, left:left + w] = image
    return canvas


def save_images(images, file_name, ims_per_row=10, padding=2, digit_dimensions=(28, 28),
                vmin=0.0, vmax=1.0, title=None, row_labels=None, scale=1.0):
    """Write a grid of digits (one per row of ``images``, values in [vmin, vmax]) to a PNG.

    Dark ink on white, as printed digits look. ``row_labels`` puts a caption left of each
    row of the grid; ``scale`` enlarges the figure.
    """
    canvas = _grid(images, ims_per_row, padding, digit_dimensions, background=vmin)
    height, width = canvas.shape
    inches = 0.05 * scale  # per grid pixel
    label_width = 1.2 if row_labels else 0.0
    fig = plt.figure(figsize=(width * inches + label_width, height * inches + (0.4 if title else 0.05)))
    left = label_width / fig.get_figwidth()
    top = 1 - (0.4 if title else 0.05) / fig.get_figheight()
    ax = fig.add_axes([left, 0, 1 - left, top])
    ax.imshow(canvas, cmap="binary", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if row_labels:
        h = digit_dimensions[0]
        ax.set_yticks([padding + r * (h + padding) + h / 2 for r in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
        ax.tick_params(axis="y", length=0)
    if title:
        fig.suptitle(title, y=1 - 0.05 / fig.get_figheight(), va="top", fontsize=10)
    _save(fig, file_name)


def plot_lower_bound(history, file_name):
    """Train and test lower bound per epoch (``history``: list of dicts with epoch, train, test)."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train"] for h in history], "o-", label="train (mean over the epoch's batches)")
    ax.plot(epochs, [h["test"] for h in history], "s-", label="test (after the epoch)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("lower bound per image (nats)")
    ax.set_title("Evidence lower bound during training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, file_name)


def _save(fig, file_name):
    """Write atomically so an interrupted run never leaves half a PNG."""
    directory = os.path.dirname(os.path.abspath(file_name))
    os.makedirs(directory, exist_ok=True)
    tmp = file_name + ".part.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, file_name)
