"""The ``reference`` backend's registration: the model loaded by transformers, then run by vecgen's from-scratch
Qwen2/Qwen3 forward pass on the same weights (:func:`~vecgen.reference.weights.from_transformers`). Registered
through the ``vecgen.backends`` entry point (``pyproject.toml``), like every backend but ``transformers``."""

from __future__ import annotations

from ..models import LoadedModel
from ..models.backends import BackendSpec, LoadRequest, get_backend, register_backend
from .weights import from_transformers


def load(request: LoadRequest) -> LoadedModel:
    """The transformers load of ``request``, with its module swapped for :class:`~vecgen.reference.ReferenceModel`.

    Raises:
        UnsupportedModelError: a family other than Qwen2/Qwen3 (before the swap; the transformers load has run).
    """
    lm: LoadedModel = get_backend("transformers").load(request)
    return lm.with_model(from_transformers(lm))


SPEC = register_backend(BackendSpec(
    "reference", "vecgen's from-scratch Qwen2/Qwen3 forward pass on the same weights", load=load,
    families=("qwen2", "qwen3")))
