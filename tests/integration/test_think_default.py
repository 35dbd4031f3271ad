"""Thinking runners on the real default model (Qwen2.5-Coder-0.5B-Instruct)."""

import pytest

from vecgen.benchmarks_data import load_benchmark
from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, generate
from vecgen.thinking.answers import check_answer
from vecgen.thinking.prompts import build_prompt, prompt_style
from vecgen.thinking.runner import ThinkConfig, run_thinking

pytestmark = pytest.mark.integration


def test_soft_onehot_greedy_equals_cot_greedy_on_gsm8k_items(default_lm):
    lm = default_lm
    style = prompt_style(lm)
    assert style.marker == "Answer:" and not style.think_token  # Qwen2.5 has no thinking tokens
    marker = style.end_marker(lm.tokenizer)
    assert marker.at_line_start
    tasks = load_benchmark("gsm8k", limit=2)
    prompts = [lm.encode(build_prompt(lm, t.question, style, direct=False)) for t in tasks]
    common = dict(max_think_tokens=20, max_answer_tokens=6)
    cot = run_thinking(lm, prompts, ThinkConfig.create(method="cot", **common), marker)
    for rule in ("onehot", "soft"):
        soft = run_thinking(lm, prompts, ThinkConfig.create(method="soft", think_sampling=SamplingConfig(),
                                                            mixing=MixingConfig(rule=rule), **common), marker)
        for a, b in zip(cot, soft):
            assert (a.trace_ids, a.forced_ids, a.answer_ids) == (b.trace_ids, b.forced_ids, b.answer_ids)
    # The cot trace is the decode loop's own greedy continuation, row by row.
    for ids, out in zip(prompts, cot):
        plain = generate(lm, [ids], sampling=SamplingConfig(max_new_tokens=20)).token_ids(0)
        assert out.trace_ids == plain[: out.think_tokens] and out.think_tokens == 20
        assert out.forced_ids == marker.forced_ids(out.trace_ids) and out.stop_reason == "max_tokens"
        assert out.forced_ids[-len(marker.ids):] == marker.ids


def test_direct_answers_an_easy_question(default_lm):
    lm = default_lm
    style = prompt_style(lm)
    ids = lm.encode(build_prompt(lm, "What is 2 + 3?", style, direct=True))
    out = run_thinking(lm, [ids], ThinkConfig.create(method="direct"), style.end_marker(lm.tokenizer))[0]
    verdict = check_answer(out.answer, "5")
    assert verdict.correct, out.answer
