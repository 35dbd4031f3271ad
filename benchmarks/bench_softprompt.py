"""Soft-prompt training speed on the default model: episodes/s and where an episode's time goes.

Usage::

    python benchmarks/bench_softprompt.py [--model default] [--episodes 8] [--soft-tokens 8]
                                          [--no-chat-template] [--placement prefix] [--json out.json]

Settings default to the seed's (8 soft tokens, chat template, prefix placement, Adam lr 1e-3, greedy
answers of at most 24 tokens). Each episode is timed in its parts, exactly as ``vecgen softprompt
train`` runs them (:func:`vecgen.softprompt.train.respond`, :func:`~vecgen.benchmarks_data.checkers.check_answer`,
:func:`~vecgen.softprompt.training_step`): answer generation, answer check, gradient step.

Baseline measured in the same run: before each episode, the same question is answered by the same model
*without* a soft prompt (plain greedy answering, what an untrained user of the model pays). The ratio
``episode time / plain answer time`` says what learning costs on top of answering; both are interleaved
so machine noise hits them alike. The first episode is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--soft-tokens", type=int, default=8)
    parser.add_argument("--no-chat-template", action="store_true")
    parser.add_argument("--placement", default="prefix")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    from vecgen.models import load_model
    from vecgen.benchmarks_data.checkers import check_answer
    from vecgen.softprompt import SoftPrompt, TrainConfig, arena_prompt, prompt_parts, target_ids, training_step
    from vecgen.benchmarks_data.arena import heldout_set, training_item, training_schedule
    from vecgen.softprompt import respond

    cfg = TrainConfig.create(model=args.model, episodes=args.episodes + 1, eval_interval=1,
                             soft_tokens=args.soft_tokens, chat_template=not args.no_chat_template,
                             placement=args.placement, max_new_tokens=args.max_new_tokens, seed=args.seed)
    lm = load_model(cfg.model, show_progress=False)
    heldout = heldout_set(cfg.seed, cfg.eval_size, cfg.families, cfg.difficulty)
    schedule = training_schedule(cfg.seed, cfg.episodes, cfg.families, heldout, cfg.difficulty)
    soft = SoftPrompt.create(lm, cfg.soft_tokens, cfg.init, text=cfg.init_text, seed=cfg.seed)
    optimizer = torch.optim.Adam([soft.vectors], lr=cfg.lr)

    rows = []
    for ep, (family, index) in enumerate(schedule):
        item = training_item(cfg.seed, family, index, cfg.difficulty)
        parts = prompt_parts(lm, arena_prompt(item), chat=cfg.chat_template, system=cfg.system)
        t0 = time.perf_counter()
        plain = respond(lm, [parts.ids], max_new_tokens=cfg.max_new_tokens)[0]
        t1 = time.perf_counter()
        response = respond(lm, [soft.segments(parts, cfg.placement)], max_new_tokens=cfg.max_new_tokens)[0]
        t2 = time.perf_counter()
        verdict = check_answer(item, response)
        t3 = time.perf_counter()
        loss = training_step(lm, soft, optimizer, parts, target_ids(lm, item.answer, chat=cfg.chat_template),
                             cfg.placement)
        t4 = time.perf_counter()
        row = {"episode": ep, "family": family, "prompt_tokens": len(parts.ids) + cfg.soft_tokens,
               "answer_tokens": len(lm.encode(response)), "plain_s": t1 - t0, "generate_s": t2 - t1,
               "check_s": t3 - t2, "step_s": t4 - t3, "loss": loss, "correct": verdict.correct,
               "plain_correct": check_answer(item, plain).correct}
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if ep > 0:
            rows.append(row)

    episode = [r["generate_s"] + r["check_s"] + r["step_s"] for r in rows]
    total = sum(episode)
    figures = {
        "device": str(lm.device),
        "dtype": str(lm.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "settings": {"soft_tokens": cfg.soft_tokens, "chat_template": cfg.chat_template,
                     "placement": cfg.placement.value, "max_new_tokens": cfg.max_new_tokens},
        "episodes_timed": len(rows),
        "episodes_per_s": len(rows) / total,
        "median_episode_s": statistics.median(episode),
        "generation_share": sum(r["generate_s"] for r in rows) / total,
        "gradient_step_share": sum(r["step_s"] for r in rows) / total,
        "check_share": sum(r["check_s"] for r in rows) / total,
        "median_plain_answer_s": statistics.median(r["plain_s"] for r in rows),
        "episode_over_plain_answer": statistics.median(e / r["plain_s"] for e, r in zip(episode, rows)),
        "step_over_generation": statistics.median(r["step_s"] / r["generate_s"] for r in rows),
        "mean_prompt_tokens": statistics.mean(r["prompt_tokens"] for r in rows),
        "mean_answer_tokens": statistics.mean(r["answer_tokens"] for r in rows),
    }
    print(f"\n{figures['episodes_per_s']:.3f} episodes/s on {figures['device']} ({figures['dtype']}, "
          f"{figures['torch_threads']} threads), {len(rows)} episodes timed, "
          f"prompts ~{figures['mean_prompt_tokens']:.0f} tokens, answers ~{figures['mean_answer_tokens']:.1f} tokens")
    print(f"time per episode: answer generation {figures['generation_share']:.0%}, gradient step "
          f"{figures['gradient_step_share']:.0%}, answer check {figures['check_share']:.1%}")
    print(f"median episode / plain answer without soft prompt (same run): {figures['episode_over_plain_answer']:.2f}x; "
          f"gradient step / answer generation: {figures['step_over_generation']:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"figures": figures, "episodes": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
