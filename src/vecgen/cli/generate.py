"""``vecgen generate``: discrete generation through vecgen's decode loop, streamed."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import (
    BackendOpt,
    NCtxOpt,
    ThreadsOpt,
    backend_options,
    DeviceMapOpt,
    MaxMemoryOpt,
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
    EnglishOnlyOpt,
    MaxNewTokensOpt,
    MinPOpt,
    ModelOpt,
    PresetOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    build_sampling,
    english_only_mask,
)


def generate(
    prompt: Annotated[str, typer.Argument(help="Text to continue (or the user message with --chat).")],
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template (one user turn).")] = False,
    system: Annotated[Optional[str], typer.Option("--system", help="System message for --chat.")] = None,
    model: ModelOpt = "default",
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    min_p: MinPOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
    n_ctx: NCtxOpt = None,
    english_only: EnglishOnlyOpt = False,
    truncate_prompt: Annotated[bool, typer.Option(
        "--truncate-prompt", help="When the prompt plus --max-new-tokens exceeds the model's context, keep the "
        "prompt's last tokens (with a warning) instead of refusing.")] = False,
) -> None:
    """Print the model's continuation of PROMPT, streamed token by token (greedy unless told otherwise)."""
    import logging
    import sys

    from ..decoding import generate as run_generate
    from ..models import format_prompt, load_model

    sampling = build_sampling(
        preset, config, defaults={"max_new_tokens": 64}, temperature=temperature, top_p=top_p, top_k=top_k,
        min_p=min_p, max_new_tokens=max_new_tokens, seed=seed,
    )
    if not prompt.strip():
        from ..errors import ConfigError

        raise ConfigError("empty prompt: give some text to continue, e.g. \"The capital of France is\"")
    llamacpp = backend_options(backend, threads, n_ctx)
    lm = load_model(model, device=device, dtype=dtype, device_map=device_map, max_memory=max_memory, backend=backend,
                    llamacpp=llamacpp)
    text = format_prompt(lm.tokenizer, prompt, chat=chat, system=system)
    ids = lm.encode(text)
    if truncate_prompt:
        from ..decoding.engine import truncate_to_context

        ids, dropped = truncate_to_context(lm, ids, sampling.max_new_tokens - 1)
        if dropped:
            logging.getLogger("vecgen").warning("dropped the first %d prompt tokens to fit the model's context "
                                                "(--truncate-prompt)", dropped)
            prompt = lm.tokenizer.decode(ids)
    tokens: list[int] = []
    printed = ""

    def stream(row: int, token: int) -> None:
        nonlocal printed
        if not tokens and not chat:
            sys.stdout.write(prompt)  # once decoding has started (bad requests fail before any output)
        tokens.append(token)
        decoded = lm.tokenizer.decode(tokens, skip_special_tokens=True)
        if not decoded.endswith("\ufffd"):  # wait for the rest of a multi-byte character
            sys.stdout.write(decoded[len(printed):])
            sys.stdout.flush()
            printed = decoded

    run_generate(lm, [ids], sampling=sampling, mixing="onehot", on_token=stream, record_top_k=0,
                 allowed=english_only_mask(lm, english_only))
    sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
