"""Soft prompts trained online on a reasoning arena (prompt tuning with a frozen model).

* :mod:`~vecgen.benchmarks_data.arena` — task families (reasoning-gym where it covers one), held-out set,
  training schedule, the arena's prompt (answers are checked by :mod:`vecgen.benchmarks_data.checkers`);
* :mod:`~vecgen.softprompt.prompt` — :class:`SoftPrompt` (init, placement, PEFT interoperability);
* :mod:`~vecgen.softprompt.config` — :class:`TrainConfig` and a resumed run's settings;
* :mod:`~vecgen.softprompt.train` — the online loop and resume; :mod:`~vecgen.softprompt.evaluate` — held-out
  accuracy with and without a soft prompt; :mod:`~vecgen.softprompt.report` — curves, report, viewer data;
* :mod:`~vecgen.checkpoints` — atomic checkpoints checked against the model.
"""

from ..benchmarks_data.arena import (
    FAMILIES,
    TaskFamily,
    arena_prompt,
    get_family,
    heldout_set,
    register_family,
)
from ..checkpoints import load_checkpoint, model_identity
from .config import TrainConfig, resume_config
from .evaluate import evaluate, evaluate_checkpoint, respond
from .prompt import (
    InitMethod,
    Placement,
    PromptParts,
    SoftPrompt,
    assemble,
    describe_vectors,
    prompt_parts,
    target_ids,
)
from .report import learning_curves_figure, report_markdown
from .train import answer_loss, train, training_step

__all__ = [
    "FAMILIES",
    "InitMethod",
    "Placement",
    "PromptParts",
    "SoftPrompt",
    "TaskFamily",
    "TrainConfig",
    "answer_loss",
    "assemble",
    "arena_prompt",
    "describe_vectors",
    "evaluate",
    "evaluate_checkpoint",
    "get_family",
    "heldout_set",
    "load_checkpoint",
    "model_identity",
    "prompt_parts",
    "register_family",
    "respond",
    "resume_config",
    "target_ids",
    "train",
    "training_step",
]
