"""Plot helpers (matplotlib, headless ``Agg`` backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 8.0, height: float = 3.2):
    """A figure with ``nrows × ncols`` axes sized ``width × height·nrows`` inches."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False)
    return fig, axes
