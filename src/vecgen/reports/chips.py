"""Token chips in HTML: the run viewer's look (entropy colour, weights on hover) for Jupyter's ``_repr_html_``.

A chip is one token or concept token, its background the entropy of its step on the viewer's scale (viridis, 0 to
:data:`H_MAX` nats, clamped; ``vecgen/data/view/view.js`` uses the same constants, and a test holds them equal),
its text black or white by WCAG contrast, and its ``title`` (shown on hover) the step's largest weights. The
``.chip`` styles are the viewer's own (``view.css``), inlined with the chips.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

#: Entropy (nats) at the top of the colour scale; larger values are clamped.
H_MAX = 3.0
#: matplotlib's viridis in 10 steps: colour-blind safe and monotone in lightness.
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
           "#fde725")
#: The background of a chip without an entropy.
MISSING = "#cccccc"


def entropy_colour(h: float | None) -> str:
    """The chip background of a step with entropy ``h`` nats (``None``: grey)."""
    if h is None or h != h:
        return MISSING
    t = max(0.0, min(1.0, h / H_MAX))
    return VIRIDIS[min(len(VIRIDIS) - 1, int(t * len(VIRIDIS)))]


def ink(background: str) -> str:
    """``#000000`` or ``#ffffff``, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    c = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
    lum = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    return "#000000" if (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) else "#ffffff"


@lru_cache(maxsize=1)
def chip_css() -> str:
    """The viewer's ``.chips`` / ``.chip`` rules (from ``view.css``)."""
    css = resources.files("vecgen").joinpath("data", "view", "view.css").read_text(encoding="utf-8")
    rules = re.findall(r"^\.chips?[^{]*\{[^}]*\}", css, flags=re.MULTILINE)
    return "\n".join(rules)


def weights_title(pairs: Sequence[tuple[str, float]], entropy: float | None = None) -> str:
    """A chip's hover text: ``' Paris' 0.961`` per line, then the entropy."""
    lines = [f"{t!r} {w:.3f}" for t, w in pairs]
    if entropy is not None:
        lines.append(f"H = {entropy:.3f} nats")
    return "\n".join(lines)


def chip(label: str, entropy: float | None, title: str = "", *, forced: bool = False) -> str:
    """One chip's HTML (``label`` shown as written, white space kept)."""
    if forced:
        return f'<span class="chip forced" title="{html.escape(title)}">{html.escape(label)}</span>'
    bg = entropy_colour(entropy)
    return (f'<span class="chip" style="background:{bg};color:{ink(bg)}" title="{html.escape(title)}">'
            f"{html.escape(label)}</span>")


def chips_block(chips: Sequence[str], *, caption: str = "") -> str:
    """Chips in one block with the viewer's styles and a caption line (escaped)."""
    head = f"<div><b>{html.escape(caption)}</b></div>" if caption else ""
    return f'<div><style>{chip_css()}</style>{head}<div class="chips">{"".join(chips)}</div></div>'


__all__ = ["H_MAX", "MISSING", "VIRIDIS", "chip", "chip_css", "chips_block", "entropy_colour", "ink", "weights_title"]
