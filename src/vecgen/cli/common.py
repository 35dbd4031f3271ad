"""Options shared by several commands (model selection, device, sampling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Registry name (see `vecgen models`; `default` = Qwen2.5-Coder-0.5B-Instruct, embedded), "
        "a local Hugging Face folder, a .gguf file, or a hub id (needs network).",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N, or mps (only when named).")
]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", help="auto (bf16 on CUDA, fp32 otherwise), float32, bfloat16 or float16.")
]
DeviceMapOpt = Annotated[
    Optional[str],
    typer.Option("--device-map", help="Spread a big model's layers over devices (accelerate big-model inference): auto, "
                 "balanced, balanced_low_0, sequential, or a JSON object / .json file of module: device, where "
                 "\"disk\" offloads (slow, correct). The input embedding must stay on a device. Overrides --device."),
]
MaxMemoryOpt = Annotated[
    Optional[str],
    typer.Option("--max-memory", help="Per-device limits for --device-map, e.g. 0=20GiB,1=20GiB,cpu=60GiB."),
]
BackendOpt = Annotated[
    str,
    typer.Option("--backend", help="What runs the model: auto (= transformers), transformers, reference (vecgen's "
                 "from-scratch Qwen2/Qwen3 forward pass on the same weights), or llamacpp (a GGUF model run by "
                 "llama.cpp on its quantized weights, about 2.5x faster on a CPU; needs pip install "
                 "'vecgen[llamacpp]'; --device and --dtype do not apply)."),
]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", help="CPU threads (>= 1): llama.cpp's threads, or torch.set_num_threads for the other "
                 "backends. Default: llama.cpp uses every available core, torch its own default."),
]
NCtxOpt = Annotated[
    Optional[int],
    typer.Option("--n-ctx", help="llamacpp: KV-cache positions shared by every row at once (prompts + generated "
                 "tokens of a batch). Default: the model's context length, at most 16384."),
]
PresetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        help="Sampling preset: greedy, qwen3-non-thinking (0.7/0.8/20/0, Qwen3 card), "
        "qwen3-thinking-card (0.6/0.95/20/0). Flags below override it.",
    ),
]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="YAML file with sampling fields (top level or under `sampling:`); flags win."),
]
TemperatureOpt = Annotated[
    Optional[float], typer.Option("--temperature", "-t", help="Softmax temperature in [0, 2]; 0 = greedy.")
]
TopPOpt = Annotated[Optional[float], typer.Option("--top-p", help="Nucleus mass in (0, 1]; 1 = off.")]
TopKOpt = Annotated[Optional[int], typer.Option("--top-k", help="Keep the k most likely tokens (>= 0; 0 = off).")]
MinPOpt = Annotated[
    Optional[float], typer.Option("--min-p", help="Drop tokens with p < min_p * max p, in [0, 1]; 0 = off.")
]
MaxNewTokensOpt = Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Tokens to generate (>= 1).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed for sampling (reproducible runs).")]
EnglishOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--english-only",
        help="Only English tokens (ASCII letters, digits, punctuation, white space: `vecgen vocab english --policy "
        "text`) may be sampled or mixed; weights are renormalised over them; eos / end-of-turn stay allowed.",
    ),
]
MixingRuleOpt = Annotated[
    str,
    typer.Option(
        "--rule",
        help="Mixing rule of the concept tokens: soft (Soft Thinking: top max_topk of the truncated distribution), "
        "full (CoT2: the whole softmax), moi (Mixture of Inputs), onehot (ordinary decoding), hidden (COCONUT-style: "
        "feed back the last hidden state; see --hidden-scale).",
    ),
]
MaxTopkOpt = Annotated[
    Optional[int], typer.Option("--max-topk", help="soft rule: tokens kept per concept token (>= 1; default 10).")
]
BetaOpt = Annotated[Optional[float], typer.Option("--beta", help="moi rule: the beta of the posterior (>= 0).")]
NoiseOpt = Annotated[
    Optional[str], typer.Option("--noise", help="soft rule: none, gumbel or dirichlet noise on the mixture weights.")
]
GumbelTauOpt = Annotated[Optional[float], typer.Option("--gumbel-tau", help="Gumbel-softmax temperature (> 0).")]
DirichletAlphaOpt = Annotated[
    Optional[float], typer.Option("--dirichlet-alpha", help="Dirichlet concentration scale (> 0).")
]
HiddenScaleOpt = Annotated[
    Optional[str],
    typer.Option("--hidden-scale", help="hidden rule: embed (default; rescale each hidden state to the mean norm of "
                 "the token input embeddings, since hidden states are far longer) or none (feed it as it is)."),
]
RunNameOpt = Annotated[
    Optional[str], typer.Option("--run-name", help="Run folder name under --out-dir (default <command>-<UTC time>).")
]
OutDirOpt = Annotated[Path, typer.Option("--out-dir", help="Parent folder of run folders.")]


def english_only_mask(lm, english_only: bool):
    """``allowed=`` for the decode loop: the English ``text``-policy mask of ``lm`` (stop tokens kept), or None."""
    if not english_only:
        return None
    from ..vocab import english_token_mask

    return english_token_mask(lm, policy="text")


def build_sampling(preset, config, *, defaults=None, **flags):
    """A :class:`~vecgen.config.SamplingConfig`: command ``defaults`` < preset < YAML file < flags.

    ``flags`` are the sampling options as parsed (``None`` when not given)."""
    from ..config import SamplingConfig

    return SamplingConfig.create(preset=preset, config_file=config, defaults=defaults, **flags)


def enter_run(ctx, writer, group, run_name):
    """Enter ``writer``'s run folder for this process of a (possibly data-parallel) run: the main process
    owns it (``ctx.with_resource``: lock, checks, cleanup); the others attach once it has.

    Raises:
        ConfigError: a data-parallel run without ``--run-name`` (each process would pick its own folder).
    """
    if group.count > 1 and not run_name:
        from ..errors import ConfigError

        raise ConfigError("a data-parallel run needs --run-name: every process must write to the same run folder")
    if group.is_main:
        ctx.with_resource(writer)
    group.wait()
    if not group.is_main:
        writer.attach()
    return writer


def backend_options(backend: str, threads: int | None, n_ctx: int | None):
    """The ``llamacpp=`` options of :func:`~vecgen.models.load_model` for ``--backend``/``--threads``/``--n-ctx``,
    checked before any model is loaded; applies ``--threads`` to torch for the other backends.

    Raises:
        ConfigError: an unknown backend, a bad thread count or context size, ``--n-ctx`` without llamacpp.
    """
    from ..errors import ConfigError
    from ..models.loader import BACKENDS

    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of: {', '.join(BACKENDS)}")
    if threads is not None and not 1 <= threads <= 1024:
        raise ConfigError(f"--threads must be between 1 and 1024, got {threads}")
    if backend != "llamacpp":
        if n_ctx is not None:
            raise ConfigError("--n-ctx applies to --backend llamacpp only (other backends grow their cache as needed)")
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return None
    from ..backends.llamacpp import LlamaCppOptions

    options = LlamaCppOptions(n_threads=threads, n_ctx=n_ctx)
    options.check()
    return options
