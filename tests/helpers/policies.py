"""Row policies for engine tests: a row that samples a fixed number of tokens with its own mode."""

from __future__ import annotations

from vecgen.config import SamplingConfig
from vecgen.decoding import Action, MixingConfig, Mode


class SampleN:
    """Samples ``n`` tokens with ``sampling`` and the mixing ``rule`` from the random ``stream``, feeding each one
    back; ``tokens`` holds them."""

    def __init__(self, n: int, sampling: SamplingConfig | None = None, rule: str = "onehot", stream: str = "main"):
        self.n, self.tokens = n, []
        self.mode = Mode("sample", sampling or SamplingConfig(), MixingConfig(rule=rule), stream=stream)

    def next_input(self):
        return self.mode if len(self.tokens) < self.n else None

    def observe(self, obs):
        self.tokens.append(obs.token)
        return Action.feed if len(self.tokens) < self.n else Action.done

    def max_inputs(self):
        return self.n
