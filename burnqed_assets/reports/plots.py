"""Small matplotlib helpers: save a figure as PNG and embed it in Dagster markdown metadata."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: assets run in workers without a display
import matplotlib.pyplot as plt  # noqa: E402

from burnqed_assets.data.io import atomic_path  # noqa: E402


def save_figure(fig: "plt.Figure", dest: str | Path, dpi: int = 80) -> Path:
    """Write `fig` atomically as PNG and close it."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return dest


def png_markdown(path: str | Path, title: str = "") -> str:
    """Markdown with the PNG inlined as a data URI, which the Dagster UI renders."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"**{title}**\n\n![{title}](data:image/png;base64,{data})" if title else f"![plot](data:image/png;base64,{data})"
