"""The reference forward pass on the real default model (Qwen2.5-Coder-0.5B-Instruct, 14/2 heads, untied)."""

import json
import subprocess
import sys

import pytest

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.reference import from_transformers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_vecgen_verify_passes_on_the_default_model(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vecgen", "verify", "--prompt", "Hello", "--out-dir", str(tmp_path),
                          "--run-name", "v"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout and "next token after 'Hello'" in out.stdout
    results = json.loads((tmp_path / "v" / "results.json").read_text())["results"]
    assert results["passed"] and results["input_ids"] == [9707]
    assert results["next_token"]["reference"] == results["next_token"]["transformers"]
    assert len(results["rows"]) == 1 + 24 * 13 + 2  # embed, 13 components x 24 layers, final norm, logits


def test_greedy_generation_through_the_reference_model_matches(default_lm):
    ref_lm = default_lm.with_model(from_transformers(default_lm))
    ids = default_lm.encode("The capital of France is")
    sampling = SamplingConfig(max_new_tokens=4)
    ours = generate(ref_lm, [ids], sampling=sampling, stop_ids=[])
    theirs = generate(default_lm, [ids], sampling=sampling, stop_ids=[])
    assert ours.token_ids(0) == theirs.token_ids(0)
    assert ours.text(0, default_lm.tokenizer).startswith(" Paris")


def test_batched_thinking_on_the_reference_model_equals_transformers(default_lm):
    """The issue-11 reproduction: batched cot on the reference model, rows finishing at different steps
    (the reference KV cache narrows its batch), gives transformers' tokens row by row."""
    from vecgen.thinking import ThinkConfig, build_prompt, prompt_style, run_thinking

    ref_lm = default_lm.with_model(from_transformers(default_lm))
    style = prompt_style(ref_lm)
    ids = [ref_lm.encode(build_prompt(ref_lm, q, style, direct=False)) for q in
           ["What is 2+2?", "Tom has 3 apples, buys 4, gives away 2 and buys 10. How many?"]]
    cfg = ThinkConfig.create(method="cot", max_think_tokens=40)
    ours = run_thinking(ref_lm, ids, cfg, style.end_marker(ref_lm.tokenizer))
    theirs = run_thinking(default_lm, ids, cfg, style.end_marker(default_lm.tokenizer))
    for a, b in zip(ours, theirs):
        assert (a.trace_ids, a.forced_ids, a.answer_ids, a.stop_reason) == (b.trace_ids, b.forced_ids, b.answer_ids,
                                                                          b.stop_reason)
    assert ours[0].think_tokens != ours[1].think_tokens  # the rows did finish thinking at different steps
