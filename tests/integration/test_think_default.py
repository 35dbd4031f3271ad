"""Thinking runners on the real default model (Qwen2.5-Coder-0.5B-Instruct)."""

import pytest

from vecgen.benchmarks_data import Task, check_answer, load_benchmark
from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, generate
from vecgen.thinking.prompts import ANSWER_REQUESTS, build_prompt, prompt_style
from vecgen.thinking.runner import ThinkConfig, run_thinking

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
    verdict = check_answer(Task("easy", "What is 2 + 3?", "5"), out.answer)
    assert verdict.correct, out.answer


def test_the_reasoning_cue_makes_cot_reason_on_yes_no_items(default_lm):
    """On short yes/no questions the plain cot prompt gets the answer line at once; the cue that opens the
    assistant turn (AnswerRequest.cue) makes the default model reason first (docs/evaluation.md "Answer types")."""

    lm = default_lm
    style = prompt_style(lm)
    marker = style.end_marker(lm.tokenizer)
    tasks = load_benchmark("arena", source="causal@1", limit=4)
    assert {t.answer_type for t in tasks} == {"yesno"}
    cfg = ThinkConfig.create(method="cot", max_think_tokens=32, max_answer_tokens=4)
    cue = ANSWER_REQUESTS["yesno"].cue
    texts = [build_prompt(lm, t, style, direct=False) for t in tasks]
    assert all(t.endswith(cue) for t in texts)
    cued = run_thinking(lm, [lm.encode(t) for t in texts], cfg, marker)
    plain = run_thinking(lm, [lm.encode(t[: -len(cue)]) for t in texts], cfg, marker)
    mean = lambda outs: sum(o.think_tokens for o in outs) / len(outs)  # noqa: E731
    assert mean(cued) > 3 * max(mean(plain), 1.0), (mean(cued), mean(plain))
    for t, o in zip(tasks, cued):
        assert check_answer(t, o.answer).pred in ("Yes", "No", None)
