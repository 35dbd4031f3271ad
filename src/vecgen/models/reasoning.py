"""What a model trained by ``vecgen train`` knows about its own prompt format: :class:`ReasoningFormat`.

A trained checkpoint folder (an ordinary Hugging Face folder: ``config.json``, ``model.safetensors``, tokenizer
files) carries ``vecgen_reasoning.json``; :func:`~vecgen.models.load_model` reads it into
:attr:`LoadedModel.reasoning <vecgen.models.LoadedModel>`, so thinking, evaluation and serving prompt the model the
way it was trained. Every method shares one layout (COCONUT's, Hao et al. 2024)::

    question <bot> [thinking] <eot> ### answer <eos>

``thinking`` is the chain-of-thought (``cot``), nothing (``nocot``), ``n_thoughts`` continuous thoughts (``coconut``:
last hidden states fed back as the next input embeddings) or ``n_thoughts`` learned ``<pause>`` tokens (``pause``).

A training run folder holds its final model in ``model/``; a run folder names that model wherever a model is asked
for (:func:`trained_model_folder`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BadWeightsError

#: The file in a checkpoint folder that holds its :class:`ReasoningFormat`.
FORMAT_FILE = "vecgen_reasoning.json"
#: The subfolder of a training run folder that holds its final model.
RUN_MODEL_FOLDER = "model"
#: The training methods (``vecgen train --method``).
TRAINED_METHODS = ("nocot", "cot", "coconut", "pause")


@dataclass(frozen=True)
class ReasoningFormat:
    """The prompt layout of a trained checkpoint.

    Attributes:
        method: the training method (:data:`TRAINED_METHODS`).
        n_thoughts: thoughts (``coconut``) or pause tokens (``pause``) between ``bot`` and ``eot`` at the last
            stage, 0 for ``nocot`` / ``cot``.
        thoughts_per_step: COCONUT's ``c``.
        stages: the curriculum's last stage (``max_latent_stage``).
        bot, eot, pause: the marker tokens.
        answer_prefix: the text before the answer (``###``).
        stage: the curriculum stage the checkpoint was saved at (the last stage for a finished run).
    """

    method: str
    n_thoughts: int = 0
    thoughts_per_step: int = 1
    stages: int = 0
    bot: str = "<bot>"
    eot: str = "<eot>"
    pause: str = "<pause>"
    answer_prefix: str = "###"
    stage: int = 0

    @property
    def thinking_method(self) -> str:
        """The ``vecgen think`` method that answers like training did: ``coconut`` and ``pause`` their own,
        ``cot`` chain-of-thought, ``nocot`` ``direct``."""
        return {"nocot": "direct"}.get(self.method, self.method)

    def save(self, folder: str | Path) -> Path:
        """Write ``vecgen_reasoning.json`` into ``folder``."""
        from ..io import atomic_write_json

        path = Path(folder) / FORMAT_FILE
        atomic_write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, folder: str | Path) -> "ReasoningFormat | None":
        """The format saved in ``folder``, or None when it has none.

        Raises:
            BadWeightsError: the file is not a format this version reads.
        """
        path = Path(folder) / FORMAT_FILE
        if not path.is_file():
            return None
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            fmt = cls(**data)
        except (ValueError, TypeError) as exc:
            raise BadWeightsError(f"{path}: not a vecgen training format ({exc}); was it written by vecgen train?") \
                from None
        if fmt.method not in TRAINED_METHODS:
            raise BadWeightsError(f"{path}: unknown training method {fmt.method!r}")
        return fmt


def trained_model_folder(path: str | Path) -> Path | None:
    """The model folder a training run folder names (``RUN/model``), or None when ``path`` is not such a run."""
    folder = Path(path).expanduser()
    inner = folder / RUN_MODEL_FOLDER
    if folder.is_dir() and not (folder / "config.json").exists() and (inner / FORMAT_FILE).is_file():
        return inner
    return None


__all__ = ["FORMAT_FILE", "RUN_MODEL_FOLDER", "ReasoningFormat", "TRAINED_METHODS", "trained_model_folder"]
