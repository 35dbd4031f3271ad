"""A very short soft-prompt run on the real default model: files, curves, baseline row, checkpoint."""

import json

import pytest
import torch

from vecgen.reports import RunWriter
from vecgen.softprompt import TrainConfig, describe_vectors, load_checkpoint, train
from vecgen.checkpoints import check_model_identity

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_short_train_run_writes_results_curves_and_a_checkpoint(default_lm, tmp_path):
    lm = default_lm
    cfg = TrainConfig.create(episodes=2, eval_interval=2, eval_size=4, max_new_tokens=8)
    writer = RunWriter("softprompt", name="short", root=tmp_path, config=cfg)
    summary = train(lm, cfg, writer, show_progress=False)

    for name in ("results.json", "learning_curves.png", "report.md", "checkpoint.pt", "records.jsonl",
                 "eval_records.jsonl"):
        assert writer.path(name).is_file(), name
    results = json.loads(writer.path("results.json").read_text())
    assert results["config"]["soft_tokens"] == 8 and results["model"]["hidden_size"] == 896
    res = results["results"]
    assert res["status"] == "finished" and res["episodes_done"] == 2
    assert [e["episode"] for e in res["curves"]["eval"]] == [0, 2]
    assert len(res["curves"]["train"]) == 2 and all(r["loss"] > 0 for r in res["curves"]["train"])
    # the first four held-out items are arithmetic, sequence, logic, math_word (round-robin)
    assert set(res["baseline"]["per_family"]) == {"arithmetic", "sequence", "logic", "math_word"}
    # the chat-formatted prompts work on the real model: it answers most of them without a soft prompt
    assert res["baseline"]["accuracy"] >= 0.5, json.dumps(res["baseline"])
    assert res["speed"]["episodes_per_s"] > 0
    assert 0 < res["speed"]["generation_share"] < 1 and 0 < res["speed"]["gradient_step_share"] < 1
    assert summary["final"]["n"] == 4

    ckpt = load_checkpoint(writer.path("checkpoint.pt"))
    check_model_identity(ckpt["model"], lm)
    assert ckpt["soft_prompt"].shape == (8, 896) and ckpt["episode"] == 2
    init = load_checkpoint(writer.path("checkpoints/ep00000.pt"))["soft_prompt"]
    assert not torch.equal(init, ckpt["soft_prompt"])  # two Adam steps moved the vectors
    rows = describe_vectors(lm, ckpt["soft_prompt"], k=3)
    assert len(rows) == 8 and all(r["nearest"][0]["id"] < lm.n_real_vocab for r in rows)
