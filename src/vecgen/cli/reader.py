"""``vecgen reader``: train a LoRA adapter that reads concept tokens back, and evaluate it (issue 17, part 4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    ModelOptions,
    RunOptions,
    check_load,
    load,
    print_summary,
    split_list,
    with_options,
)

reader_app = typer.Typer(help="A LoRA reader of concept tokens: train it on the model's own concept tokens, "
                         "evaluate it on prompts from another source.", no_args_is_help=True)

EvalExamplesOpt = Annotated[Optional[int], typer.Option("--eval-examples", help="Held-out examples (arena questions "
                                                          "cut after a random word). Default 60.")]
MethodsOpt = Annotated[Optional[str], typer.Option("--methods", help="Translation methods compared with the reader "
                                                   "(top-1 exact match), comma-separated. Default: nearest, direct, "
                                                   "completion, fewshot, instruction (the last only with a chat "
                                                   "template).")]


@dataclass
class ReaderTrainOptions(ModelOptions, RunOptions):
    train_examples: Annotated[Optional[int], typer.Option("--train-examples", help="Training examples (GSM8K questions cut after a random word). Default 480.")] = None  # noqa: E501
    eval_examples: EvalExamplesOpt = None
    n_min: Annotated[Optional[int], typer.Option("--n-min", help="Fewest concept tokens per example. Default 2.")] = None  # noqa: E501
    n_max: Annotated[Optional[int], typer.Option("--n-max", help="Most concept tokens per example. Default 6.")] = None
    mixture_top_k: Annotated[Optional[int], typer.Option("--mixture-top-k", help="Concept-token mixture size (soft rule, temperature 1, >= 3). Default 10.")] = None  # noqa: E501
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Passes over the training examples. Default 1.")] = None  # noqa: E501
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Examples per optimizer step. Default 4.")] = None  # noqa: E501
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate. Default 5e-4.")] = None
    lora_r: Annotated[Optional[int], typer.Option("--lora-r", help="LoRA rank. Default 8.")] = None
    lora_alpha: Annotated[Optional[float], typer.Option("--lora-alpha", help="LoRA alpha (scale alpha/r). Default 16.")] = None  # noqa: E501
    target_modules: Annotated[Optional[str], typer.Option("--target-modules", help="Linear layers that get an adapter, comma-separated. Default q_proj,k_proj,v_proj,o_proj.")] = None  # noqa: E501
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", help="Optimizer steps between checkpoints. Default 20.")] = None  # noqa: E501
    seed: Annotated[Optional[int], typer.Option("--seed", help="Data cuts, N per example and data order. Default 0.")] = None  # noqa: E501
    methods: MethodsOpt = None
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-name from its checkpoint.pt (same settings).")] = False  # noqa: E501


@dataclass
class ReaderEvalOptions(ModelOptions, RunOptions):
    checkpoint: Annotated[Path, typer.Argument(help="A reader.pt / checkpoint.pt file, or a `reader train` run folder.")] = ...  # type: ignore[assignment]  # noqa: E501
    eval_examples: EvalExamplesOpt = None
    source: Annotated[str, typer.Option("--source", help="Held-out prompts: arena (default) or gsm8k.")] = "arena"
    seed: Annotated[int, typer.Option("--seed", help="Held-out cuts and N per example.")] = 1
    methods: MethodsOpt = None


@with_options(ReaderTrainOptions)
def train(ctx: typer.Context, o: ReaderTrainOptions) -> None:
    """Train a LoRA reader on the model's own concept tokens, then evaluate it against the base model.

    Each example: a GSM8K question cut after a random word, N concept tokens after it, and as target their top-1 tokens' text plus each one's 3 largest weights. Held-out: arena questions (another source). Metrics: top-1 sequence exact match, top-2 accuracy per position, weight MAE; the base model with the reader prompt and every translation method; KL of the model's own continuation with vs without the adapter. Checkpoints atomically every --checkpoint-every steps; --resume continues bit-identically. Writes runs/<name>/results.json, reader.pt, checkpoint.pt, eval_records.jsonl, report.md and loss.png.
    """  # noqa: E501
    from ..errors import ConfigError
    from ..probes.reader_data import ReaderConfig
    from ..probes.reader_run import (
        check_methods_names,
        check_resume,
        load_reader,
        reader_lines,
        train_run,
    )
    from ..reports import RunWriter

    cfg = ReaderConfig.create(train_examples=o.train_examples, n_min=o.n_min, n_max=o.n_max,
                              mixture_top_k=o.mixture_top_k, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr,
                              lora_r=o.lora_r, lora_alpha=o.lora_alpha,
                              target_modules=split_list(o.target_modules, "--target-modules"),
                              checkpoint_every=o.checkpoint_every, seed=o.seed, eval_examples=o.eval_examples)
    methods = split_list(o.methods, "--methods")
    check_methods_names(methods)
    if o.resume and not o.run_name:
        raise ConfigError("--resume needs --run-name: the run folder to continue")
    check_load(o)
    saved = None
    if o.resume:
        saved = load_reader(o.out_dir / str(o.run_name) / "checkpoint.pt")
        check_resume(saved, cfg, o.model)
    writer = ctx.with_resource(RunWriter("reader-train", name=o.run_name, root=o.out_dir, resumable=o.resume,
                                         config={**cfg.model_dump(mode="json"), "model": o.model, "device": o.device,
                                                 "dtype": o.dtype},
                                         resume_hint="resume with: vecgen reader train --resume --run-name {name}"))
    if not o.resume and writer.path("checkpoint.pt").exists():
        raise ConfigError(f"{writer.dir} already holds a reader run; resume it with --resume or choose another "
                          "--run-name")
    lm = load(o, backend="transformers")
    run = train_run(lm, cfg, writer, methods=methods, saved=saved)
    print_summary(reader_lines(run, trained=True), writer.dir, "results.json, eval_records.jsonl, report.md")


@with_options(ReaderEvalOptions)
def evaluate(ctx: typer.Context, o: ReaderEvalOptions) -> None:
    """Evaluate a trained reader (and the base model, and the translation methods) on held-out examples.

    The checkpoint must come from the same model (checked by name before loading and by embedding values after). Writes runs/<name>/results.json, eval_records.jsonl and report.md.
    """  # noqa: E501
    from ..errors import ConfigError
    from ..probes.reader_data import ReaderConfig
    from ..probes.reader_run import (
        check_checkpoint_model,
        check_methods_names,
        eval_run,
        load_reader,
        reader_lines,
    )
    from ..reports import RunWriter

    if o.source not in ("arena", "gsm8k"):
        raise ConfigError(f"--source {o.source!r}: choose arena or gsm8k")
    if o.eval_examples is not None and o.eval_examples < 1:
        raise ConfigError(f"--eval-examples={o.eval_examples}: must be >= 1")
    methods = split_list(o.methods, "--methods")
    check_methods_names(methods)
    saved = load_reader(o.checkpoint)
    check_checkpoint_model(saved, o.model)
    check_load(o)
    n_eval = o.eval_examples or ReaderConfig.create(**saved["config"]).eval_examples
    writer = ctx.with_resource(RunWriter("reader-eval", name=o.run_name, root=o.out_dir, resumable=False,
                                         config={"checkpoint": str(saved["path"]), "eval_examples": n_eval,
                                                 "source": o.source, "seed": o.seed, "model": o.model}))
    lm = load(o, backend="transformers")
    run = eval_run(lm, saved, writer, eval_examples=o.eval_examples, source=o.source, seed=o.seed, methods=methods)
    print_summary(reader_lines(run, trained=False), writer.dir, "results.json, eval_records.jsonl, report.md")


def register(app: typer.Typer) -> None:
    reader_app.command("train")(train)
    reader_app.command("eval")(evaluate)
    app.add_typer(reader_app, name="reader")
