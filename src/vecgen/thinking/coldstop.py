"""Cold Stop (Soft Thinking, Zhang et al. 2025, arXiv 2505.15778, Sec. 3.3).

While thinking, track the entropy ``H(p)`` in nats of the full next-token distribution
``p = softmax(logits / T)`` (before top-k / top-p / min-p truncation). When ``H < τ`` for ``L``
consecutive thinking steps the model is confidently repeating itself, and thinking is ended by
forcing the end-of-thinking marker. The paper uses ``τ = 0.01``, ``L = 256`` for 32B–70B models
with thinking budgets of tens of thousands of tokens; vecgen's defaults for small models and short
budgets are in :mod:`vecgen.thinking.runner`.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


class ColdStop:
    """Per-row counters of consecutive low-entropy thinking steps.

    Args:
        tau: entropy threshold τ in nats (>= 0); ``0`` disables Cold Stop (no entropy is below 0).
        steps: L, consecutive steps below τ that end thinking (>= 1).
        batch_size: rows tracked (row indices are the original batch positions).

    Raises:
        ConfigError: ``tau < 0`` or ``steps < 1``.
    """

    def __init__(self, tau: float, steps: int, batch_size: int):
        if tau < 0:
            raise ConfigError(f"cold-stop tau={tau}: allowed range is >= 0 (0 = off)")
        if steps < 1:
            raise ConfigError(f"cold-stop steps={steps}: allowed range is >= 1")
        self.tau = float(tau)
        self.steps = int(steps)
        self.count = torch.zeros(batch_size, dtype=torch.long)  # (B,)

    def update(self, entropy: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Record one thinking step and say which rows fire.

        Args:
            entropy: ``(b,)`` nats, the entropy of this step's full distribution for each row.
            rows: ``(b,)`` long original row indices of ``entropy`` (default ``0..b-1``).

        Returns:
            ``(b,)`` bool: rows whose run of steps with ``H < τ`` has reached ``L`` (they should stop).
        """
        entropy = entropy.detach().float().cpu()
        rows = torch.arange(entropy.shape[0]) if rows is None else rows.cpu()
        low = entropy < self.tau  # (b,)
        count = (self.count[rows] + 1) * low  # a step at or above τ resets the run
        self.count[rows] = count
        return count >= self.steps

    def step(self, row: int, entropy: float) -> bool:
        """:meth:`update` for one row and one step: True when ``row`` should stop."""
        count = int(self.count[row]) + 1 if entropy < self.tau else 0
        self.count[row] = count
        return count >= self.steps

    def run_length(self, row: int) -> int:
        """Current run of consecutive low-entropy steps of ``row``."""
        return int(self.count[row])
