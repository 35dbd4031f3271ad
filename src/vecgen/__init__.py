"""vecgen: vector-space generation with causal language models.

Run a model at the level of its embedding space: feed back probability-weighted mixtures of token embeddings
("concept tokens"), read them back, think in them, learn soft prompts, analyse the vocabulary::

    import vecgen
    m = vecgen.load()                                    # vecgen.Model (the embedded default model)
    c = m.concept("The capital of France is", n=2)       # vecgen.ConceptTokens
    print(c.top[0][0])                                   # TokenWeight(token=' Paris', weight=0.96...)
    out = m.think("What is 17 + 25?", method="soft")     # vecgen.ThinkOutput
    ev = vecgen.evaluate(m, "gsm8k", limit=4, methods=["direct", "soft"])   # vecgen.Evaluation, in memory
    r = vecgen.train("coconut", epochs=6, epochs_per_stage=1)   # COCONUT from scratch on ProsQA: runs/train-*/
    vecgen.probes.superposition(m)                       # the probes take a Model

The names below are imported on first use (PEP 562), so ``vecgen --help`` does not pay for torch and
transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "load": "vecgen.api",
    "check_load": "vecgen.api",
    "Model": "vecgen.api",
    "train": "vecgen.api",
    "TrainSettings": "vecgen.training.settings",
    "TrainResult": "vecgen.training.loop",
    "ConceptTokens": "vecgen.concept.tokens",
    "TokenWeight": "vecgen.concept.tokens",
    "ThinkOutput": "vecgen.thinking.runner",
    "ThinkConfig": "vecgen.thinking.runner",
    "evaluate": "vecgen.thinking.evaluate",
    "Evaluation": "vecgen.thinking.evaluate",
    "EvaluationSettings": "vecgen.thinking.settings",
    "Task": "vecgen.benchmarks_data.task",
    "load_benchmark": "vecgen.benchmarks_data",
    "SamplingConfig": "vecgen.config",
    "MixingConfig": "vecgen.decoding.mixing",
    "Translation": "vecgen.decoding.translate",
    "VecgenError": "vecgen.errors",
    "ConfigError": "vecgen.errors",
}
#: Subpackages reachable as attributes (``vecgen.probes.superposition``: a function; ``vecgen.thinking``: a package).
_SUBMODULES = ("probes", "models", "decoding", "thinking", "concept", "softprompt", "vocab", "backends", "reference",
               "training")

__all__ = ["__version__", *_EXPORTS, *_SUBMODULES]

if TYPE_CHECKING:
    from . import (
        backends,
        concept,
        decoding,
        models,
        probes,
        reference,
        softprompt,
        thinking,
        training,
        vocab,
    )
    from .api import Model, check_load, load, train
    from .training.loop import TrainResult
    from .training.settings import TrainSettings
    from .benchmarks_data import load_benchmark
    from .benchmarks_data.task import Task
    from .concept.tokens import ConceptTokens, TokenWeight
    from .config import SamplingConfig
    from .decoding.mixing import MixingConfig
    from .decoding.translate import Translation
    from .errors import ConfigError, VecgenError
    from .thinking.evaluate import Evaluation, evaluate
    from .thinking.runner import ThinkConfig, ThinkOutput
    from .thinking.settings import EvaluationSettings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        importlib.import_module("vecgen.api")  # the library is whole (the reference backend registered) first
        value = importlib.import_module(f"vecgen.{name}")
    else:
        raise AttributeError(f"module 'vecgen' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
