"""Soft prompts trained online on a reasoning arena (prompt tuning with a frozen model).

* :mod:`~vecgen.softprompt.arena` — task families (reasoning-gym where it covers one), held-out set,
  training schedule, the arena's prompt (answers are checked by :mod:`vecgen.benchmarks_data.checkers`);
* :mod:`~vecgen.softprompt.prompt` — :class:`SoftPrompt` (init, placement, PEFT interoperability);
* :mod:`~vecgen.softprompt.train` — the online loop, evaluation, resume;
* :mod:`~vecgen.softprompt.checkpoint` — atomic checkpoints checked against the model.
"""

from .arena import FAMILIES, TaskFamily, arena_prompt, get_family, heldout_set, register_family
from .checkpoint import load_checkpoint, model_identity
from .prompt import InitMethod, Placement, PromptParts, SoftPrompt, assemble, describe_vectors, prompt_parts, target_ids
from .train import TrainConfig, answer_loss, evaluate, evaluate_checkpoint, resume_config, train, training_step

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
    "resume_config",
    "target_ids",
    "train",
    "training_step",
]
