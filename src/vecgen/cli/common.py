"""What the commands share: options (as dataclass fields a command's options inherit), the command decorator that
turns an options dataclass into a typer signature, and run-folder entry.

A command is ``@with_options(XOptions)`` on ``def name(ctx, o: XOptions)``: its flags are the
dataclass's fields (``Annotated[type, typer.Option(...)]`` with their defaults), so the command body stays a few
lines: build the library's config from ``o``, call the library, print. Option groups shared by many commands
(:class:`ModelOptions`, :class:`SamplingOptions`, :class:`MixingOptions`, ...) are mixins with the conversions
their commands need (``o.sampling(...)``, ``o.mixing()``, ``load_args(o)``).

The library is imported inside the command bodies: ``vecgen --help`` and bad-flag errors then answer in about
0.2 s instead of the 3–4 s that importing torch and transformers takes on this machine's 2 cores.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..reports.writer import RunWriter

O = TypeVar("O")


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
# The help of --backend and --n-ctx comes from the backend registry when the command line is built
# (vecgen.cli.command: backend_option_help).
BackendOpt = Annotated[str, typer.Option("--backend", help="What runs the model (the registered backends).")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", help="CPU threads (>= 1): llama.cpp's threads, or torch.set_num_threads for the other "
                 "backends. Default: llama.cpp uses every available core, torch its own default."),
]
TensorParallelOpt = Annotated[
    Optional[int],
    typer.Option("--tensor-parallel-size", help="vLLM (--backend vllm): GPUs, or CPU ranks, the layers are split "
                 "over; it must divide the model's attention heads and not exceed the devices. Default 1."),
]
NCtxOpt = Annotated[
    Optional[int],
    typer.Option("--n-ctx", help="KV-cache positions shared by every row at once (prompts + generated tokens of a "
                 "batch), for a backend with a fixed context. Default: the model's context length, at most 16384."),
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
AntiCollapseOpt = Annotated[Optional[float], typer.Option(
    "--anti-collapse", help="SeLaR's push of each concept token away from its top-1 token's embedding, lambda >= 0 "
    "(fed vector m + lambda*H*(m - e(top1)), H the mixture's normalised entropy; SeLaR uses 1; default 0 = off).")]
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




#: Flags a command computes when its click command is built (:func:`with_options`' ``extra``): a function returning
#: ``(the field the new flags follow, [inspect.Parameter, ...])``; a parameter named like a field replaces that
#: field's flag (e.g. its help from a registry), the others are new and reach the command as ``o.extra``.
ExtraOptions = Callable[[], tuple[str, list[inspect.Parameter]]]


def with_options(options: type[O], *, context: bool = True, extra: ExtraOptions | None = None
                 ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn ``fn(ctx, o)`` (or ``fn(o)`` with ``context=False``) into a typer command whose flags are the fields of
    the dataclass ``options`` (in field order, fields with ``init=False`` left out; help from ``fn``'s docstring);
    register it with ``app.command(name)(fn)``.

    ``extra`` adds flags that come from a registry (e.g. the thinking methods' own settings): it is called each time
    the command line is built (:func:`refresh_commands`), so a method registered after import has its flags; their
    values, those given (not None), are set as the dict ``o.extra``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(options, include_extras=True)
        base = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)] \
            if context else []
        fields = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                                    default=f.default if f.default is not dataclasses.MISSING
                                    else inspect.Parameter.empty)
                  for f in dataclasses.fields(options) if f.init]  # type: ignore[arg-type]
        extra_names: set[str] = set()

        @functools.wraps(fn)
        def command(*args: Any, **values: Any) -> None:
            head = [*args, values.pop("ctx")] if context and "ctx" in values else list(args)
            more = {k: values.pop(k) for k in list(values) if k in extra_names}
            o = options(**values)
            if extra is not None:
                o.extra = {k: v for k, v in more.items() if v is not None}  # type: ignore[attr-defined]
            return fn(*head, o)

        def refresh() -> None:
            params = list(fields)
            if extra is not None:
                after, more = extra()
                names = {p.name: i for i, p in enumerate(params)}
                new = [p for p in more if p.name not in names]
                for p in more:
                    if p.name in names:
                        params[names[p.name]] = p
                extra_names.clear()
                extra_names.update(p.name for p in new)
                at = next((i + 1 for i, p in enumerate(params) if p.name == after), len(params))
                params[at:at] = new
            params = base + params
            command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
            command.__annotations__ = {p.name: p.annotation for p in params}

        refresh()
        command.refresh_options = refresh  # type: ignore[attr-defined]
        del command.__wrapped__  # typer must read the options' signature, not fn's
        return command

    return deco


def refresh_commands(app: typer.Typer) -> None:
    """Recompute the flags of every command of ``app`` (and its groups) made with :func:`with_options` and
    ``extra`` (called before the click command tree is built)."""
    for info in app.registered_commands:
        refresh = getattr(info.callback, "refresh_options", None)
        if refresh is not None:
            refresh()
    for group in app.registered_groups:
        if group.typer_instance is not None:
            refresh_commands(group.typer_instance)


@dataclass
class ModelOptions:
    """``--model``, ``--device``, ``--dtype``."""

    model: ModelOpt = "default"
    device: DeviceOpt = "auto"
    dtype: DtypeOpt = "auto"


@dataclass
class PlacementOptions:
    """``--device-map``, ``--max-memory`` (accelerate's big-model inference)."""

    device_map: DeviceMapOpt = None
    max_memory: MaxMemoryOpt = None


@dataclass
class BackendOptions:
    """``--backend``, ``--threads``, ``--n-ctx``, ``--tensor-parallel-size``."""

    backend: BackendOpt = "auto"
    threads: ThreadsOpt = None
    n_ctx: NCtxOpt = None
    tensor_parallel_size: TensorParallelOpt = None


@dataclass
class SamplingOptions:
    """``--preset``, ``--config``, ``--temperature``, ``--top-p``, ``--top-k``, ``--min-p``, ``--seed``."""

    preset: PresetOpt = None
    config: ConfigOpt = None
    temperature: TemperatureOpt = None
    top_p: TopPOpt = None
    top_k: TopKOpt = None
    min_p: MinPOpt = None
    seed: SeedOpt = None

    def sampling(self, defaults: dict[str, Any] | None = None, **extra: Any) -> Any:
        """A :class:`~vecgen.config.SamplingConfig`: command ``defaults`` < preset < YAML file < flags."""
        from ..config import SamplingConfig

        return SamplingConfig.create(preset=self.preset, config_file=self.config, defaults=defaults,
                                     temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                                     min_p=self.min_p, seed=self.seed, **extra)


@dataclass
class MixingOptions:
    """``--rule`` and its parameters."""

    rule: MixingRuleOpt = "soft"
    max_topk: MaxTopkOpt = None
    beta: BetaOpt = None
    noise: NoiseOpt = None
    gumbel_tau: GumbelTauOpt = None
    dirichlet_alpha: DirichletAlphaOpt = None
    hidden_scale: HiddenScaleOpt = None
    anti_collapse: AntiCollapseOpt = None

    def mixing(self) -> Any:
        """A :class:`~vecgen.decoding.mixing.MixingConfig` of the flags."""
        from ..decoding.mixing import MixingConfig

        return MixingConfig.create(rule=self.rule, max_topk=self.max_topk, beta=self.beta, noise=self.noise,
                                   gumbel_tau=self.gumbel_tau, dirichlet_alpha=self.dirichlet_alpha,
                                   hidden_scale=self.hidden_scale, anti_collapse=self.anti_collapse)


@dataclass
class RunOptions:
    """``--run-name``, ``--out-dir``."""

    run_name: RunNameOpt = None
    out_dir: OutDirOpt = Path("runs")


#: The options of :func:`vecgen.load` a command may have.
LOAD_KEYS = ("backend", "device", "dtype", "threads", "n_ctx", "tensor_parallel_size", "device_map", "max_memory")


def load_args(o: Any, **override: Any) -> dict[str, Any]:
    """The :func:`vecgen.load` keyword arguments among a command's options (``override`` wins)."""
    return {**{k: getattr(o, k) for k in LOAD_KEYS if hasattr(o, k)}, **override}


def check_load(o: Any, models: list[str] | None = None) -> Any:
    """:func:`vecgen.api.check_load` of a command's options (every model checked before the first loads);
    returns the llama.cpp options, or None."""
    from ..api import check_load as check

    return check(models or [o.model], **load_args(o))


def load(o: Any, model: str | None = None, **override: Any) -> Any:
    """:func:`vecgen.load` with a command's options (``model`` default ``o.model``)."""
    from ..api import load as load_model

    return load_model(model or o.model, **load_args(o, **override))


def split_list(value: Optional[str], what: str) -> Optional[list[str]]:
    """``"a,b"`` → ``["a", "b"]`` (None stays None).

    Raises:
        ConfigError: the list is given but empty.
    """
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{what}: empty list")
    return items


def parse_ints(value: Optional[str], what: str) -> Optional[list[int]]:
    """``"2,3,4"`` → ``[2, 3, 4]``.

    Raises:
        ConfigError: an item is not an integer.
    """
    items = split_list(value, what)
    if items is None:
        return None
    try:
        return [int(v) for v in items]
    except ValueError:
        raise ConfigError(f"{what}={value!r}: expected comma-separated integers, e.g. 2,3,4") from None


def enter_run(ctx: typer.Context, writer: RunWriter, group: Any, run_name: str | None) -> RunWriter:
    """Enter ``writer``'s run folder for this process of a (possibly data-parallel) run: the main process
    owns it (``ctx.with_resource``: lock, checks, cleanup); the others attach once it has.

    Raises:
        ConfigError: a data-parallel run without ``--run-name`` (each process would pick its own folder).
    """
    if group.count > 1 and not run_name:
        raise ConfigError("a data-parallel run needs --run-name: every process must write to the same run folder")
    if group.is_main:
        ctx.with_resource(writer)
    group.wait()
    if not group.is_main:
        writer.attach()
    return writer


def print_summary(lines: list[str], run_dir: Path, files: str) -> None:
    """A run's console summary lines, then where it wrote what."""
    from rich.console import Console

    console = Console()
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"wrote {run_dir}/ ({files})", highlight=False)
