"""A synthetic think run folder the size of a full GSM8K test run, for the viewer's browser test and
``benchmarks/bench_view.py``."""

from __future__ import annotations

import json
import random
from pathlib import Path

#: A question with markup, quotes and a script end tag: the viewer must show it as text.
HOSTILE_QUESTION = 'What is 2 + 3? </script><script>window.__pwned = 1</script> <b>bold</b> "quoted" & ↵'


def synthetic_think_run(folder: Path, n_items: int = 1319, steps: int = 250, seed: int = 0) -> Path:
    """A think run folder shaped like a full GSM8K test run (three methods; cot and soft with ``steps``
    recorded thinking steps each), with random tokens from a small English word list."""
    rng = random.Random(seed)
    words = [" the", " of", " and", " to", " we", " is", " 12", " 3", " total", " each", ".", "\n", " =", " +", " apples",
             " she", " has", " so", " answer", " buys", " more", " $", " per", " day", " hours"]
    methods = {"direct": {"method": "direct"}, "cot": {"method": "cot"}, "soft": {"method": "soft"}}
    folder.mkdir(parents=True)
    lines = []
    for i in range(n_items):
        for m in methods:
            k = 0 if m == "direct" else steps
            st = []
            for _ in range(k):
                w = sorted((rng.random() for _ in range(5)), reverse=True)
                s = sum(w) * 1.2
                st.append({"token": rng.choice(words), "entropy": round(rng.random() * 2, 4),
                           "mix_entropy": round(rng.random(), 4) if m == "soft" else 0.0,
                           "top": [[rng.choice(words), round(x / s, 4)] for x in w]})
            correct = rng.random() < 0.3
            lines.append(json.dumps({
                "method": m, "id": f"item-{i:04d}", "question": f"Question {i}: " + "".join(rng.choice(words) for _ in range(40)),
                "reference": "18", "trace": "".join(s["token"] for s in st), "forced": "\nAnswer:" if k else "",
                "answer": " 18" if correct else " 7", "pred": "18" if correct else "7", "correct": correct,
                "stop_reason": "none" if m == "direct" else rng.choice(["eos", "max_tokens", "cold_stop"]),
                "think_tokens": k, "answer_tokens": 3, "tokens": k + 3, "mean_entropy": None, "mean_mix_entropy": None,
                "seconds": 1.0, "batch_seconds": 8.0, "batch_size": 8, "steps": st}))
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "results.json").write_text(json.dumps({"command": "think", "config": {"methods": methods},
                                                     "results": {}, "paired": []}))
    return folder
