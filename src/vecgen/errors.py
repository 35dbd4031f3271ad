"""User-facing errors.

Every error a user can cause (bad input, missing weights, unsupported request) is a
:class:`VecgenError`. The CLI prints its message as one line and exits with status 2; it never
shows a traceback for these. Subclasses also derive from the matching builtin (``ValueError``,
``FileNotFoundError``) so library callers can catch either.
"""

from __future__ import annotations


class VecgenError(Exception):
    """Base class of errors caused by input or environment, with a message naming the fix.

    Attributes:
        params: the library parameters the message names (``("batch_size",)``), or empty. Library messages name
            parameters; the command line shows its own flags for them instead (``--batch-size``).
    """

    def __init__(self, message: str = "", *, param: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())


class ConfigError(VecgenError, ValueError):
    """An invalid configuration value (sampling, mixing rule, run options)."""


class ModelNotFoundError(VecgenError, LookupError):
    """A model name is neither in the registry, nor a local path, nor a hub id."""


class WeightsUnavailableError(VecgenError, FileNotFoundError):
    """The weights of a known model are not on this machine and cannot be fetched."""


class BadWeightsError(VecgenError, ValueError):
    """A weight file or model folder that cannot be loaded (not GGUF, truncated, corrupt, pickle-only)."""


class ContextLengthError(VecgenError, ValueError):
    """A prompt plus the tokens to generate does not fit the model's context window."""


class IntegrityError(VecgenError):
    """A packaged weight file has the wrong size or sha256."""


class ThinkingModeError(VecgenError, ValueError):
    """Thinking mode was requested; vecgen supports non-thinking mode only."""


class NoChatTemplateError(VecgenError, ValueError):
    """A chat-formatted prompt was requested from a tokenizer without a chat template."""


class NonFiniteError(VecgenError, FloatingPointError):
    """A NaN or inf appeared in logits or input vectors.

    Attributes:
        step: decode step (0-based) where it appeared, or None (prompt / prefill).
        row: batch row (prompt index), or None.
    """

    def __init__(self, message: str, *, step: int | None = None, row: int | None = None):
        super().__init__(message)
        self.step = step
        self.row = row


class UnsupportedModelError(VecgenError, ValueError):
    """A model architecture that a feature does not support."""


class UnsupportedError(VecgenError, NotImplementedError):
    """A backend lacks a capability a feature needs (e.g. llama.cpp returns no per-layer hidden states and no
    gradients); the message names the backend that has it."""


class ContractError(RuntimeError):
    """A backend or policy broke its contract (a bug in vecgen or in a third-party backend, not bad input).

    The CLI reports it in one line and exits with status 1.
    """
