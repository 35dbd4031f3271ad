"""``vecgen reader``: train a LoRA adapter that reads concept tokens back, and evaluate it (issue 17, part 4)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import DeviceOpt, DtypeOpt, ModelOpt, OutDirOpt, RunNameOpt

log = logging.getLogger("vecgen.reader")
reader_app = typer.Typer(help="A LoRA reader of concept tokens: train it on the model's own concept tokens, "
                         "evaluate it on prompts from another source.", no_args_is_help=True)

#: The existing translation methods the reader is compared with (``instruction`` only with a chat template).
BASELINE_METHODS = ("nearest", "direct", "completion", "fewshot", "instruction")

EvalExamplesOpt = Annotated[Optional[int], typer.Option("--eval-examples", help="Held-out examples (arena questions "
                                                          "cut after a random word). Default 60.")]
MethodsOpt = Annotated[Optional[str], typer.Option("--methods", help="Translation methods compared with the reader "
                                                   "(top-1 exact match), comma-separated. Default: nearest, direct, "
                                                   "completion, fewshot, instruction (the last only with a chat "
                                                   "template).")]


def _methods(lm: Any, methods: Optional[str]) -> list[str]:
    from .concept import split_list

    names = split_list(methods, "--methods") or [m for m in BASELINE_METHODS
                                                 if m != "instruction" or lm.has_chat_template]
    return names


def _identity_name(spec: str) -> str:
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def evaluate_reader(lm: Any, peft_model: Any, examples: list[Any], methods: list[str], writer: Any) -> dict[str, Any]:
    """Base model (adapter off: reader prompt and each translation method) vs trained reader on ``examples``;
    writes one record per example and reader to ``eval_records.jsonl``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..probes.reader import (
        continuation_kl,
        format_target,
        parse_reading,
        read_back,
        score_reading,
        summarize_scores,
        translation_scores,
    )

    table: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        for label, adapter_on in (("base", False), ("reader", True)):
            task = bar.add_task(f"reading back ({label})", total=len(examples))
            hook = (lambda n, t=task: bar.update(t, completed=n))
            if adapter_on:
                outs = read_back(lm, examples, on_batch=hook)
            else:
                with peft_model.disable_adapter():
                    outs = read_back(lm, examples, on_batch=hook)
            rows = []
            for e, o in zip(examples, outs):
                sc = score_reading(e, parse_reading(o))
                rows.append(sc)
                writer.append_record({"reader": label, "prompt": e.prompt, "n": e.n, "target": format_target(e),
                                      "output": o, **sc}, "eval_records.jsonl")
            table[label] = summarize_scores(rows)
        task = bar.add_task("translation baselines", total=None)
        with peft_model.disable_adapter():
            table["translations"] = translation_scores(lm, examples, methods)
        bar.update(task, total=1, completed=1)
    table["continuation_kl"] = continuation_kl(lm, peft_model, examples)
    return table


@reader_app.command("train")
def train(
    ctx: typer.Context,
    train_examples: Annotated[Optional[int], typer.Option("--train-examples", help="Training examples (GSM8K "
                                                           "questions cut after a random word). Default 480.")] = None,
    eval_examples: EvalExamplesOpt = None,
    n_min: Annotated[Optional[int], typer.Option("--n-min", help="Fewest concept tokens per example. Default 2.")
                     ] = None,
    n_max: Annotated[Optional[int], typer.Option("--n-max", help="Most concept tokens per example. Default 6.")] = None,
    mixture_top_k: Annotated[Optional[int], typer.Option("--mixture-top-k", help="Concept-token mixture size (soft "
                                                         "rule, temperature 1, >= 3). Default 10.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Passes over the training examples. Default 1.")
                      ] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Examples per optimizer step. Default 4.")
                          ] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate. Default 5e-4.")] = None,
    lora_r: Annotated[Optional[int], typer.Option("--lora-r", help="LoRA rank. Default 8.")] = None,
    lora_alpha: Annotated[Optional[float], typer.Option("--lora-alpha", help="LoRA alpha (scale alpha/r). Default "
                                                        "16.")] = None,
    target_modules: Annotated[Optional[str], typer.Option("--target-modules", help="Linear layers that get an "
                                                          "adapter, comma-separated. Default q_proj,k_proj,v_proj,"
                                                          "o_proj.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", help="Optimizer steps between "
                                                            "checkpoints. Default 20.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Data cuts, N per example and data order. Default "
                                                "0.")] = None,
    methods: MethodsOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-name from its checkpoint.pt "
                                         "(same settings).")] = False,
    model: ModelOpt = "default",
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Train a LoRA reader on the model's own concept tokens, then evaluate it against the base model.

    Each example: a GSM8K question cut after a random word, N concept tokens after it, and as target their top-1 tokens' text plus each one's 3 largest weights. Held-out: arena questions (another source). Metrics: top-1 sequence exact match, top-2 accuracy per position, weight MAE; the base model with the reader prompt and every translation method; KL of the model's own continuation with vs without the adapter. Checkpoints atomically every --checkpoint-every steps; --resume continues bit-identically. Writes runs/<name>/results.json, reader.pt, checkpoint.pt, eval_records.jsonl, report.md and loss.png.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..config import changed_settings
    from ..errors import ConfigError
    from ..models import check_model_specs, load_model
    from ..probes.reader import (
        ReaderConfig,
        TrainState,
        add_lora,
        cut_prompts,
        examples_digest,
        load_lora_state,
        load_reader,
        lora_state,
        make_examples,
        save_reader,
        source_texts,
        train_reader,
    )
    from ..reports import RunWriter
    from ..softprompt.checkpoint import check_model_identity, model_identity, rng_states, set_rng_states
    from .concept import split_list

    cfg = ReaderConfig.create(train_examples=train_examples, n_min=n_min, n_max=n_max, mixture_top_k=mixture_top_k,
                              epochs=epochs, batch_size=batch_size, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha,
                              target_modules=split_list(target_modules, "--target-modules"),
                              checkpoint_every=checkpoint_every, seed=seed, eval_examples=eval_examples)
    if methods is not None:
        from ..decoding.translate import get_method

        for m in split_list(methods, "--methods"):
            get_method(m)
    if resume and not run_name:
        raise ConfigError("--resume needs --run-name: the run folder to continue")
    check_model_specs([model], device=device, dtype=dtype)
    saved = None
    if resume:
        saved = load_reader(out_dir / run_name / "checkpoint.pt")
        if saved["model"]["name"] != _identity_name(model):
            raise ConfigError(f"{saved['path']} was trained on {saved['model']['name']}, not {model}; pass --model "
                              f"{saved['model']['name']}")
        diff = changed_settings(saved["config"], cfg.model_dump(mode="json"))
        if diff:
            raise ConfigError(f"the checkpoint was trained with other settings ({'; '.join(diff)}); a resumed run "
                              "keeps its settings")
    writer = ctx.with_resource(RunWriter("reader-train", name=run_name, root=out_dir, resumable=resume,
                                         config={**cfg.model_dump(mode="json"), "model": model, "device": device,
                                                 "dtype": dtype},
                                         resume_hint="resume with: vecgen reader train --resume --run-name {name}"))
    if not resume and writer.path("checkpoint.pt").exists():
        raise ConfigError(f"{writer.dir} already holds a reader run; resume it with --resume or choose another "
                          "--run-name")
    console = Console()
    lm = load_model(model, device=device, dtype=dtype, backend="transformers")
    if saved is not None:
        check_model_identity(saved["model"], lm, where=saved["path"])
    base_methods = _methods(lm, methods)
    start = time.perf_counter()
    with console.status("generating concept tokens for the training and held-out examples"):
        train_set = make_examples(lm, cut_prompts(source_texts("gsm8k"), cfg.train_examples, cfg.seed), cfg,
                                  seed=cfg.seed)
        eval_set = make_examples(lm, cut_prompts(source_texts("arena"), cfg.eval_examples, cfg.seed + 1), cfg,
                                 seed=cfg.seed + 1)
    data_s = time.perf_counter() - start
    digest = examples_digest(train_set)
    peft_model = add_lora(lm, cfg)
    state, opt_state = TrainState(), None
    if saved is not None:
        if saved["train_digest"] != digest:
            raise ConfigError(f"{saved['path']}: the training examples differ from the checkpoint's (changed vecgen "
                              "or model?); start a new run")
        load_lora_state(peft_model, saved["lora"])
        state = TrainState(int(saved["step"]), list(saved["losses"]))
        opt_state = saved["optimizer"]
        set_rng_states(saved["rng"])
        log.info("resuming %s at step %d", writer.dir, state.step)
    n_params = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)

    def payload(st: Any, optimizer: Any) -> dict[str, Any]:
        return {"lora": lora_state(peft_model), "optimizer": optimizer.state_dict(), "rng": rng_states(),
                "step": st.step, "losses": list(st.losses), "config": cfg.model_dump(mode="json"),
                "model": model_identity(lm), "train_digest": digest, "trainable_parameters": n_params}

    total = cfg.epochs * cfg.steps_per_epoch
    t0 = time.perf_counter()
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), transient=True) as bar:
        task = bar.add_task("train", total=total, completed=state.step, info="")
        try:
            state, optimizer = train_reader(
                lm, peft_model, train_set, cfg, state=state, optimizer_state=opt_state,
                on_step=lambda s: bar.update(task, completed=s.step, info=f"loss {s.losses[-1]:.3f}"),
                checkpoint=lambda s, o: save_reader(writer.path("checkpoint.pt"), payload(s, o)))
        except KeyboardInterrupt:
            log.warning("interrupted; the last checkpoint is intact: resume with `vecgen reader train --resume "
                        "--run-name %s`", writer.dir.name)
            raise
    train_s = time.perf_counter() - t0
    final = payload(state, optimizer)
    final.pop("optimizer")  # the trained reader: adapter, settings, model identity, losses (no optimizer state)
    save_reader(writer.path("reader.pt"), final)
    writer.path("eval_records.jsonl").unlink(missing_ok=True)
    t1 = time.perf_counter()
    table = evaluate_reader(lm, peft_model, eval_set, base_methods, writer)
    eval_s = time.perf_counter() - t1
    _write(writer, lm, cfg, state, table, {"data_s": data_s, "train_s": train_s, "eval_s": eval_s,
                                           "trainable_parameters": n_params, "steps": state.step})
    _print(console, writer, table, state)


def _write(writer: Any, lm: Any, cfg: Any, state: Any, table: dict[str, Any], training: dict[str, Any]) -> None:
    from ..probes.report import reader_figure, reader_report

    tail = state.losses[-10:]
    training = {**training, "first_loss": state.losses[0] if state.losses else None,
                "last10_mean_loss": sum(tail) / len(tail) if tail else None, "losses": state.losses}
    desc = lm.describe()
    writer.write_results({"evaluation": table, "training": training}, model=desc, settings=cfg.model_dump(mode="json"))
    if state.losses:
        writer.save_figure(reader_figure(state.losses), "loss.png")
    writer.write_report(reader_report(table, training, desc))


def _print(console: Any, writer: Any, table: dict[str, Any], state: Any) -> None:
    for label in ("base", "reader"):
        t = table[label]
        console.print(f"{label}: exact match {t['exact_match']['k']}/{t['exact_match']['n']}, top-2 accuracy "
                      f"{100 * t['top2_accuracy']['share']:.0f}%, weight MAE {t['weight_mae']:.3f}", highlight=False)
    best = max(table["translations"].items(), key=lambda kv: kv[1]["exact_match"]["share"])
    console.print(f"best translation method: {best[0]} ({best[1]['exact_match']['k']}/{best[1]['exact_match']['n']} "
                  f"exact); KL of the model's own continuation with vs without the adapter "
                  f"{table['continuation_kl']['kl']['mean']:.4f} nats", highlight=False)
    if state is not None and state.losses:
        console.print(f"training loss {state.losses[0]:.3f} → {state.losses[-1]:.3f} over {state.step} steps",
                      highlight=False)
    console.print(f"wrote {writer.dir}/ (results.json, eval_records.jsonl, report.md)", highlight=False)


@reader_app.command("eval")
def evaluate(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="A reader.pt / checkpoint.pt file, or a `reader train` run "
                                               "folder.")],
    eval_examples: EvalExamplesOpt = None,
    source: Annotated[str, typer.Option("--source", help="Held-out prompts: arena (default) or gsm8k.")] = "arena",
    seed: Annotated[int, typer.Option("--seed", help="Held-out cuts and N per example.")] = 1,
    methods: MethodsOpt = None,
    model: ModelOpt = "default",
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate a trained reader (and the base model, and the translation methods) on held-out examples.

    The checkpoint must come from the same model (checked by name before loading and by embedding values after). Writes runs/<name>/results.json, eval_records.jsonl and report.md.
    """
    from rich.console import Console

    from ..errors import ConfigError
    from ..models import check_model_specs, load_model
    from ..probes.reader import ReaderConfig, add_lora, cut_prompts, load_lora_state, load_reader, make_examples, \
        source_texts
    from ..reports import RunWriter
    from ..softprompt.checkpoint import check_model_identity
    from .concept import split_list

    if source not in ("arena", "gsm8k"):
        raise ConfigError(f"--source {source!r}: choose arena or gsm8k")
    if eval_examples is not None and eval_examples < 1:
        raise ConfigError(f"--eval-examples={eval_examples}: must be >= 1")
    if methods is not None:
        from ..decoding.translate import get_method

        for m in split_list(methods, "--methods"):
            get_method(m)
    saved = load_reader(checkpoint)
    if saved["model"]["name"] != _identity_name(model):
        raise ConfigError(f"{saved['path']} is a reader of {saved['model']['name']}, not of {model}; pass --model "
                          f"{saved['model']['name']}")
    check_model_specs([model], device=device, dtype=dtype)
    cfg = ReaderConfig.create(**saved["config"])
    n_eval = eval_examples or cfg.eval_examples
    writer = ctx.with_resource(RunWriter("reader-eval", name=run_name, root=out_dir, resumable=False,
                                         config={"checkpoint": str(saved["path"]), "eval_examples": n_eval,
                                                 "source": source, "seed": seed, "model": model}))
    console = Console()
    lm = load_model(model, device=device, dtype=dtype, backend="transformers")
    check_model_identity(saved["model"], lm, where=saved["path"])
    peft_model = add_lora(lm, cfg)
    load_lora_state(peft_model, saved["lora"])
    with console.status("generating held-out concept tokens"):
        examples = make_examples(lm, cut_prompts(source_texts(source), n_eval, seed), cfg, seed=seed)
    t0 = time.perf_counter()
    table = evaluate_reader(lm, peft_model, examples, _methods(lm, methods), writer)
    from ..probes.reader import TrainState

    state = TrainState(int(saved["step"]), list(saved["losses"]))
    _write(writer, lm, cfg, state, table, {"eval_s": time.perf_counter() - t0, "steps": state.step,
                                           "checkpoint": str(saved["path"])})
    _print(console, writer, table, None)


def register(app: typer.Typer) -> None:
    app.add_typer(reader_app, name="reader")
