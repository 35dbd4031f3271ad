"""``vecgen generate``: discrete generation through vecgen's decode loop, streamed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from .common import (
    BackendOptions,
    EnglishOnlyOpt,
    MaxNewTokensOpt,
    ModelOptions,
    PlacementOptions,
    SamplingOptions,
    check_load,
    load,
    with_options,
)


#: Prompt tokens above which ``vecgen generate`` on a CPU asks for ``--allow-large``: attention makes a prefill
#: about quadratic in its length, and 32k tokens ran past 7 minutes on a 2-core CPU.
LONG_PROMPT_TOKENS = 16_384


@dataclass
class GenerateOptions(ModelOptions, SamplingOptions, PlacementOptions, BackendOptions):
    """The flags of ``vecgen generate`` (the prompt is an argument)."""

    prompt: Annotated[str, typer.Argument(help="Text to continue (or the user message with --chat).")] = ...  # type: ignore[assignment]
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template (one user turn).")] = False  # noqa: E501
    system: Annotated[Optional[str], typer.Option("--system", help="System message for --chat.")] = None
    max_new_tokens: MaxNewTokensOpt = None
    english_only: EnglishOnlyOpt = False
    truncate_prompt: Annotated[bool, typer.Option(
        "--truncate-prompt", help="When the prompt plus --max-new-tokens exceeds the model's context, keep the "
        "prompt's last tokens (with a warning) instead of refusing.")] = False
    allow_large: Annotated[bool, typer.Option(
        "--allow-large", help=f"Go ahead with a prompt of more than {LONG_PROMPT_TOKENS:,} tokens on a CPU (its "
        "prefill alone takes minutes there); without it such a prompt is refused, with its length.")] = False


@with_options(GenerateOptions, context=False)
def generate(o: GenerateOptions) -> None:
    """Print the model's continuation of PROMPT, streamed token by token (greedy unless told otherwise)."""
    import logging
    import sys

    from ..decoding import generate as run_generate
    from ..decoding.engine import truncate_to_context
    from ..errors import ConfigError
    from ..models import format_prompt
    from ..vocab import english_only_mask

    sampling = o.sampling({"max_new_tokens": 64}, max_new_tokens=o.max_new_tokens)
    if not o.prompt.strip():
        raise ConfigError("empty prompt: give some text to continue, e.g. \"The capital of France is\"")
    check_load(o)
    lm = load(o)
    prompt = o.prompt
    ids = lm.encode(format_prompt(lm.tokenizer, prompt, chat=o.chat, system=o.system))
    if o.truncate_prompt:
        ids, dropped = truncate_to_context(lm, ids, sampling.max_new_tokens - 1)
        if dropped:
            logging.getLogger("vecgen").warning("dropped the first %d prompt tokens to fit the model's context "
                                                "(--truncate-prompt)", dropped)
            prompt = lm.tokenizer.decode(ids)
    if len(ids) > LONG_PROMPT_TOKENS and lm.device.type == "cpu" and not o.allow_large:
        raise ConfigError(f"the prompt is {len(ids):,} tokens, more than {LONG_PROMPT_TOKENS:,}: its prefill alone takes "
                          "minutes on a CPU; shorten it, or pass --allow-large to go ahead")
    tokens: list[int] = []
    printed = ""
    started = False  # set before the prompt is written: a Ctrl-C between the two still ends the line

    def stream(row: int, token: int) -> None:
        nonlocal printed, started
        if not started and not o.chat:
            started = True
            sys.stdout.write(prompt)  # once decoding has started (bad requests fail before any output)
        tokens.append(token)
        decoded = lm.tokenizer.decode(tokens, skip_special_tokens=True)
        if not decoded.endswith("\ufffd"):  # wait for the rest of a multi-byte character
            sys.stdout.write(decoded[len(printed):])
            sys.stdout.flush()
            printed = decoded

    try:
        run_generate(lm, [ids], sampling=sampling, mixing="onehot", on_token=stream, record_top_k=0,
                     allowed=english_only_mask(lm, o.english_only))
    finally:  # also on Ctrl-C: the "interrupted" line then starts a line of its own
        if started or tokens or printed:
            sys.stdout.write("\n")
            sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
