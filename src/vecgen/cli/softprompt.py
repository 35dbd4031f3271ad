"""``vecgen softprompt train | eval | inspect``: soft prompts learned online on the reasoning arena."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import (
    BackendOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    MaxMemoryOpt,
    NCtxOpt,
    OutDirOpt,
    ThreadsOpt,
    check_load,
    enter_run,
    load,
    with_options,
)

softprompt_app = typer.Typer(
    name="softprompt",
    help="Soft prompts (prompt tuning, frozen model) learned online on generated reasoning tasks.",
    no_args_is_help=True,
)

OptModel = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Registry name (`default` = Qwen2.5-Coder-0.5B-Instruct), local folder, "
                 ".gguf file or hub id. Default: `default` for train, the checkpoint's model for eval/inspect."),
]
RunNameOpt = Annotated[Optional[str], typer.Option("--run-name", help="Run folder name under --out-dir (default: "
                                                   "softprompt-<UTC time>); with --resume, the run to continue.")]
CheckpointOpt = Annotated[Path, typer.Option("--checkpoint", "-c", help="A checkpoint.pt (or a run folder holding one).")]


@dataclass
class TrainOptions:
    """The flags of ``vecgen softprompt train``."""

    episodes: Annotated[Optional[int], typer.Option("--episodes", help="Training episodes (>= 1). \\[default: 80]")] = None
    eval_interval: Annotated[Optional[int], typer.Option(
        "--eval-interval", help="Evaluate on the held-out set and checkpoint every N episodes (<= episodes). "
        "\\[default: 20]")] = None
    soft_tokens: Annotated[Optional[int], typer.Option("--soft-tokens", help="Soft-prompt vectors (>= 1). \\[default: 8]")] = None
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (> 0). \\[default: 0.001]")] = None
    chat_template: Annotated[Optional[bool], typer.Option(
        "--chat-template/--no-chat-template", help="Use the chat template (else `Question: ...\\nAnswer:`). "
        "\\[default: on]")] = None
    placement: Annotated[Optional[str], typer.Option(
        "--placement", help="prefix (before everything, PEFT prompt tuning) or in-turn (inside the user turn). "
        "\\[default: prefix]")] = None
    init: Annotated[Optional[str], typer.Option(
        "--init", help="text (embeddings of --init-text), vocab (sampled real tokens) or random (Gaussian at the "
        "embedding scale). \\[default: text]")] = None
    init_text: Annotated[Optional[str], typer.Option("--init-text", help="Text for --init text.")] = None
    difficulty: Annotated[Optional[int], typer.Option("--difficulty", help="Arena difficulty 1-3. \\[default: 1]")] = None
    families: Annotated[Optional[str], typer.Option(
        "--families", help="Comma-separated task families (default: all: arithmetic, sequence, logic, math_word, "
        "causal, comparison).")] = None
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the arena and the initialisation. \\[default: 0]")] = None
    eval_size: Annotated[Optional[int], typer.Option("--eval-size", help="Held-out items. \\[default: 60]")] = None
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Answer length limit in "
                                                          "tokens. \\[default: 24]")] = None
    eval_batch_size: Annotated[Optional[int], typer.Option("--eval-batch-size", help="Prompts per batch in "
                                                           "evaluations. \\[default: 8]")] = None
    model: OptModel = None
    run_name: RunNameOpt = None
    out_dir: OutDirOpt = Path("runs")
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run --run-name from its last checkpoint "
                                         "(same data order and optimizer state); only --episodes may change.")] = False
    device: DeviceOpt = "auto"
    dtype: DtypeOpt = "auto"
    device_map: DeviceMapOpt = None
    max_memory: MaxMemoryOpt = None


@with_options(TrainOptions)
def train(ctx: typer.Context, o: TrainOptions) -> None:
    """Train a soft prompt online: each episode the model answers a task, the answer is checked, and one
    Adam step is taken on the reference answer. Writes runs/<name>/ (results.json, learning_curves.png,
    report.md, records, checkpoints)."""
    from rich.console import Console

    from ..errors import ConfigError
    from ..reports import RunWriter
    from ..softprompt import TrainConfig, load_checkpoint, resume_config
    from ..softprompt import train as run_train

    flags = dict(episodes=o.episodes, eval_interval=o.eval_interval, soft_tokens=o.soft_tokens, lr=o.lr,
                 chat_template=o.chat_template, placement=o.placement, init=o.init, init_text=o.init_text,
                 difficulty=o.difficulty, seed=o.seed, eval_size=o.eval_size, max_new_tokens=o.max_new_tokens,
                 eval_batch_size=o.eval_batch_size, model=o.model,
                 families=[f.strip() for f in o.families.split(",") if f.strip()] if o.families is not None else None)
    if o.resume:
        if not o.run_name:
            raise ConfigError("--resume needs --run-name: the run folder to continue")
        config = resume_config(load_checkpoint(o.out_dir / o.run_name / "checkpoint.pt"), **flags)
    else:
        config = TrainConfig.create(**flags)
    check_load(o, [config.model])
    writer = ctx.with_resource(RunWriter("softprompt", name=o.run_name, root=o.out_dir, config=config,
                                         resumable=o.resume,
                                         resume_hint="resume with: vecgen softprompt train --resume --run-name {name}"))
    lm = load(o, config.model)
    summary = run_train(lm, config, writer, resume=o.resume)
    console = Console()
    speed = summary["speed"]
    console.print(f"held-out accuracy: no soft prompt {summary['baseline']['accuracy']:.1%}, "
                  f"episode 0 {summary['initial']['accuracy']:.1%}, final {summary['final']['accuracy']:.1%}; "
                  f"{speed['episodes_per_s']:.3f} episodes/s", highlight=False)
    console.print(f"wrote {writer.dir}/ (results.json, learning_curves.png, report.md, checkpoint.pt)", highlight=False)


def _checkpoint_model(ckpt: dict[str, Any], o: Any) -> str:
    """The model to load for a checkpoint: ``--model``, else the one it names (checked before loading)."""
    from ..errors import ConfigError, ModelNotFoundError

    model = o.model
    spec = model or str(ckpt["model"]["name"])
    try:
        check_load(o, [spec])
    except ModelNotFoundError as exc:
        if model is None:
            raise ConfigError(f"the checkpoint's model {spec!r} is not found from here ({exc}); pass --model with "
                              "its registry name, folder or .gguf file") from None
        raise
    return spec


@dataclass
class EvalOptions:
    checkpoint: CheckpointOpt = ...  # type: ignore[assignment]
    eval_size: Annotated[Optional[int], typer.Option("--eval-size", help="Held-out items (default: the run's).")] = None
    seed: Annotated[Optional[int], typer.Option("--seed", help="Arena seed (default: the run's; another seed = "
                                                "another held-out set).")] = None
    difficulty: Annotated[Optional[int], typer.Option("--difficulty", help="Arena difficulty 1-3 (default: the run's).")] = None
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Answer length limit.")] = None
    model: OptModel = None
    run_name: RunNameOpt = None
    out_dir: OutDirOpt = Path("runs")
    device: DeviceOpt = "auto"
    dtype: DtypeOpt = "auto"
    device_map: DeviceMapOpt = None
    max_memory: MaxMemoryOpt = None
    backend: BackendOpt = "auto"
    threads: ThreadsOpt = None
    n_ctx: NCtxOpt = None


@with_options(EvalOptions)
def eval_cmd(ctx: typer.Context, o: EvalOptions) -> None:
    """Held-out accuracy of a checkpoint's soft prompt next to the same model without it (per family).
    Writes runs/<name>/results.json and eval_records.jsonl."""
    from rich.console import Console
    from rich.table import Table

    from ..parallel import processes
    from ..reports import RunWriter
    from ..softprompt import evaluate_checkpoint, load_checkpoint

    ckpt = load_checkpoint(o.checkpoint)
    spec = _checkpoint_model(ckpt, o)
    group = processes(o.device)  # data-parallel share under torchrun / accelerate launch; else the whole run
    writer = enter_run(ctx, RunWriter("softprompt-eval", name=o.run_name, root=o.out_dir, resumable=False), group,
                       o.run_name)
    lm = load(o, spec, device=group.device(o.device))
    out = evaluate_checkpoint(lm, ckpt, eval_size=o.eval_size, seed=o.seed, difficulty=o.difficulty,
                              max_new_tokens=o.max_new_tokens, processes=group, show_progress=group.is_main)
    if not group.is_main:
        return
    checkpoint = o.checkpoint
    writer.config = {**out["config"], "checkpoint": str(checkpoint)}
    for label, rows in out.pop("rows").items():
        for row in rows:
            writer.append_record({"soft_prompt": label == "soft_prompt", **row}, "eval_records.jsonl")
    writer.write_results(out, model=lm.describe(), checkpoint=str(checkpoint))
    table = Table(title=f"held-out accuracy, checkpoint at episode {out['episode']}")
    for col in ("family", "no soft prompt", "soft prompt", "n"):
        table.add_column(col)
    for name, row in out["soft_prompt"]["per_family"].items():
        base = out["baseline"]["per_family"][name]
        table.add_row(name, f"{base['accuracy']:.1%}", f"{row['accuracy']:.1%}", str(row["n"]))
    table.add_row("all", f"{out['baseline']['accuracy']:.1%}", f"{out['soft_prompt']['accuracy']:.1%}",
                  str(out["soft_prompt"]["n"]))
    console = Console()
    console.print(table)
    console.print(f"wrote {writer.dir}/results.json", highlight=False)


@dataclass
class InspectOptions:
    checkpoint: CheckpointOpt = ...  # type: ignore[assignment]
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Nearest tokens per vector.")] = 5
    model: OptModel = None
    device: DeviceOpt = "auto"
    dtype: DtypeOpt = "auto"
    device_map: DeviceMapOpt = None
    max_memory: MaxMemoryOpt = None


@with_options(InspectOptions, context=False)
def inspect(o: InspectOptions) -> None:
    """Nearest real tokens (cosine over rows < n_real_vocab) of each learned vector, with its norm and its
    distance to the nearest token embedding (relative to the mean token-embedding norm)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..checkpoints import check_model_identity
    from ..softprompt import describe_vectors, load_checkpoint

    ckpt = load_checkpoint(o.checkpoint)
    lm = load(o, _checkpoint_model(ckpt, o))
    check_model_identity(ckpt["model"], lm)
    top_k = o.top_k
    rows = describe_vectors(lm, ckpt["soft_prompt"], top_k)
    table = Table(title=f"soft prompt at episode {ckpt['episode']} ({len(rows)} vectors, {lm.name})")
    for col in ("#", "norm (rel.)", "dist. to nearest token (rel.)", f"nearest tokens by cosine (top {top_k})"):
        table.add_column(col)
    for r in rows:
        near = ", ".join(f"{escape(repr(n['token']))} {n['cosine']:.3f}" for n in r["nearest"])
        table.add_row(str(r["index"]), f"{r['norm']:.3f} ({r['relative_norm']:.2f})",
                      f"{r['manifold_distance']:.3f} ({r['relative_manifold_distance']:.2f})", near)
    Console().print(table)


def register(app: typer.Typer) -> None:
    softprompt_app.command("train")(train)
    softprompt_app.command("eval")(eval_cmd)
    softprompt_app.command("inspect")(inspect)
    app.add_typer(softprompt_app, name="softprompt")
