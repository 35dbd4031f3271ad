"""Trained continuous thought (``vecgen train``): COCONUT (Hao et al. 2024) and its controls on any Hugging Face
causal LM or a small model built from a config, on the one decode engine's records, intervals and probes.

* :mod:`.settings` — :class:`TrainSettings` and the training / dev data;
* :mod:`.sequences` — every method's training sequence in COCONUT's layout, and batches;
* :mod:`.forward` — the multi-pass forward through continuous thoughts (differentiable);
* :mod:`.model` — a scratch GPT-2 with a word-level tokenizer, or a pretrained model with the markers added;
* :mod:`.loop` — the curriculum, checkpoints, resume and the run folder.

Trained checkpoints answer through the thinking methods ``coconut``, ``pause``, ``cot`` and ``direct``
(:class:`~vecgen.models.ReasoningFormat` tells prompts and methods how the model was trained).
"""

from .loop import EpochRecord, TrainResult, best_epoch, evaluate_dev, format_at, load_data, train
from .settings import TrainSettings, load_dev_data, load_train_data

__all__ = ["EpochRecord", "TrainResult", "TrainSettings", "best_epoch", "evaluate_dev", "format_at",
           "load_data", "load_dev_data", "load_train_data", "train"]
