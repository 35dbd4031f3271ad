"""``vecgen train``: trained continuous thought (COCONUT) and its controls (``pause``, ``cot``, ``nocot``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DeviceOpt, OutDirOpt, ThreadsOpt, with_options

_D = "\\[default: {}]"


@dataclass
class TrainOptions:
    """The flags of ``vecgen train``."""

    method: Annotated[Optional[str], typer.Option(
        "--method", help="nocot (question -> answer), cot (question -> steps -> answer), coconut (COCONUT's "
        "curriculum: stage k replaces the first k steps by k*c continuous thoughts, the last hidden state fed back) "
        "or pause (the same curriculum with a learned <pause> token in the thought positions). " + _D.format("coconut"))] = None
    train_data: Annotated[Optional[str], typer.Option(
        "--train-data", help="prosqa (ProsQA-style graphs, generated), multiplication[:MxN] (generated, default "
        "4x4), a coconut-format .json or a JSONL task file with 'steps', or hf:OWNER/NAME[:SPLIT] (a hub dataset "
        "with question/steps/answer, e.g. GSM8k-Aug). " + _D.format("prosqa"))] = None
    train_size: Annotated[Optional[int], typer.Option(
        "--train-size", help="Items a generator makes (>= 1; files are used whole). " + _D.format(4000))] = None
    data_seed: Annotated[Optional[int], typer.Option(
        "--data-seed", help="Seed of the generated training set (default: --seed).")] = None
    dev_data: Annotated[Optional[str], typer.Option(
        "--dev-data", help="Dev set: a vecgen think benchmark or task file, or multiplication:MxN (default: the "
        "ProsQA validation split for prosqa, the multiplication benchmark of the same digits).")] = None
    dev_limit: Annotated[Optional[int], typer.Option(
        "--dev-limit", help="Dev items answered after every epoch for the learning curve (>= 0; the final model is "
        "evaluated on all). " + _D.format(100))] = None
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="scratch (a GPT-2 built from --layers/--hidden/--heads with a word-level tokenizer of "
        "the data) or a Hugging Face causal LM (registry name, folder or hub id; the markers are added to its "
        "tokenizer). " + _D.format("scratch"))] = None
    layers: Annotated[Optional[int], typer.Option("--layers", help="Scratch model: layers. " + _D.format(2))] = None
    hidden: Annotated[Optional[int], typer.Option("--hidden", help="Scratch model: width d. " + _D.format(128))] = None
    heads: Annotated[Optional[int], typer.Option("--heads", help="Scratch model: attention heads. " + _D.format(4))] = None
    c: Annotated[Optional[int], typer.Option(
        "--c", help="Continuous thoughts per replaced step (COCONUT's c, >= 1). " + _D.format(1))] = None
    stages: Annotated[Optional[int], typer.Option(
        "--stages", help="The curriculum's last stage (COCONUT's max_latent_stage, >= 1). " + _D.format(6))] = None
    epochs_per_stage: Annotated[Optional[int], typer.Option(
        "--epochs-per-stage", help="Epochs per curriculum stage (>= 1). " + _D.format(5))] = None
    epochs: Annotated[Optional[int], typer.Option(
        "--epochs", help="All epochs (>= 1; the run stays at the last stage once it is reached). " + _D.format(50))] = None
    pad_to_last_stage: Annotated[Optional[bool], typer.Option(
        "--pad-to-last-stage/--no-pad-to-last-stage", help="Stage k gives every example c*k thoughts even beyond its "
        "number of steps (COCONUT's pad_latent_to_max, its ProsQA setting); off: c*min(k, steps). "
        "\\[default: on]")] = None
    stage_mix: Annotated[Optional[float], typer.Option(
        "--stage-mix", help="Probability that an example trains at a stage drawn uniformly from 0 to the current one "
        "(COCONUT's uniform_prob; 0 = off). " + _D.format(0.0))] = None
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Sequences per AdamW step (>= 1). " + _D.format(32))] = None
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate (> 0). " + _D.format("1e-4"))] = None
    weight_decay: Annotated[Optional[float], typer.Option(
        "--weight-decay", help="AdamW weight decay (>= 0). " + _D.format(0.01))] = None
    max_grad_norm: Annotated[Optional[float], typer.Option(
        "--max-grad-norm", help="Clip gradients to this norm (> 0; default: no clipping).")] = None
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Seed of the initialisation, the data order and the stage mixing. " + _D.format(0))] = None
    max_answer_tokens: Annotated[Optional[int], typer.Option(
        "--max-answer-tokens", help="Answer budget of dev evaluations (tokens, >= 1; raised to fit the dev set's "
        "answers). " + _D.format(32))] = None
    run_name: Annotated[Optional[str], typer.Option(
        "--run-name", help="Run folder name under --out-dir (default: train-<UTC time>); with --resume, the run to "
        "continue.")] = None
    out_dir: OutDirOpt = Path("runs")
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run --run-name from its last checkpoint (bit-identical to an uninterrupted "
        "run); only --epochs and --dev-limit may change.")] = False
    device: DeviceOpt = "auto"
    threads: ThreadsOpt = None


@with_options(TrainOptions)
def train(ctx: typer.Context, o: TrainOptions) -> None:
    """Train a latent reasoner or its control and evaluate it on the dev set. Writes runs/<name>/ (model/ — the best
    checkpoint, loadable with vecgen.load and vecgen think --model; checkpoints/, history.jsonl, results.json,
    report.md, train.png). A coconut checkpoint answers with vecgen think --model RUN --methods coconut."""
    from rich.console import Console

    from ..api import train as run_train
    from ..errors import ConfigError

    if o.resume and not o.run_name:
        raise ConfigError("--resume needs --run-name: the run folder to continue")
    result = run_train(
        o.method or "coconut", run_name=o.run_name, out_dir=str(o.out_dir), resume=o.resume, device=o.device,
        threads=o.threads, train_data=o.train_data, train_size=o.train_size, data_seed=o.data_seed,
        dev_data=o.dev_data, dev_limit=o.dev_limit, model=o.model, layers=o.layers, hidden=o.hidden, heads=o.heads,
        c=o.c, stages=o.stages, epochs_per_stage=o.epochs_per_stage, epochs=o.epochs,
        pad_to_last_stage=o.pad_to_last_stage, stage_mix=o.stage_mix, batch_size=o.batch_size, lr=o.lr,
        weight_decay=o.weight_decay, max_grad_norm=o.max_grad_norm, seed=o.seed, max_answer_tokens=o.max_answer_tokens)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # a data-parallel run: the main process reports
    dev = result.dev
    console = Console()
    if dev.get("n"):
        lo, hi = dev["ci95"]
        console.print(f"{o.method or 'coconut'}: dev accuracy {dev['accuracy']:.1%} [{lo:.1%}, {hi:.1%}] on "
                      f"{dev['n']} items (epoch {dev['epoch']}); {result.seconds / 60:.1f} min of training",
                      highlight=False)
    console.print(f"wrote {result.run_dir}/ (model/, checkpoints/, history.jsonl, results.json, report.md, "
                  f"train.png); answer with: vecgen think --model {result.run_dir} --methods "
                  f"{dev.get('method', o.method or 'coconut')}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
