"""The thinking runners (direct / cot / soft) on tiny random models, against transformers' generate."""

import copy

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig
from vecgen.errors import ConfigError
from vecgen.thinking.coldstop import ColdStop
from vecgen.thinking.markers import EndMarker
from vecgen.thinking.prompts import build_prompt, prompt_style
from vecgen.thinking.runner import SOFT_THINKING_SAMPLING, StopReason, ThinkConfig, run_thinking
from helpers.reference_decoding import hf_greedy, reference_cot

GREEDY = SamplingConfig()
QUESTIONS = ["What is 2 + 3?", "Tom has 3 apples and buys 4 more. How many apples does he have?", "Halve 10."]


def prompts_for(lm, direct=False, marker=None):
    style = prompt_style(lm, marker)
    return [lm.encode(build_prompt(lm, q, style, direct=direct)) for q in QUESTIONS]


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_batched_cot_greedy_matches_transformers_generate_per_row(tiny_lm, family):
    """Rows stop thinking at different steps (some by the marker, others by the budget); every row's
    trace, forced marker and answer equal transformers' greedy generate on that row alone."""
    lm = tiny_lm(family)
    prompts = prompts_for(lm)
    max_think, max_answer = 7, 5
    # A text marker that row 0's own greedy chain produces at step k >= 2 and some other row's
    # chain never does, so rows end thinking at different steps.
    conts = [lm.tokenizer.decode(hf_greedy(lm, p, max_think)).lower() for p in prompts]
    cont0 = hf_greedy(lm, prompts[0], max_think)
    marker = None
    for k in range(2, max_think - 1):
        text = lm.tokenizer.decode([cont0[k]]).strip()
        if len(text) >= 2 and text.lower() not in lm.tokenizer.decode(cont0[:k]).lower() and any(
            text.lower() not in c for c in conts[1:]
        ):
            marker = EndMarker(lm.tokenizer, text)
            break
    assert marker is not None
    cfg = ThinkConfig.create(method="cot", max_think_tokens=max_think, max_answer_tokens=max_answer,
                             answer_stops_at_newline=False)
    outs = run_thinking(lm, prompts, cfg, marker)
    reasons = set()
    for ids, out in zip(prompts, outs):
        trace, forced, answer, reason = reference_cot(lm, ids, marker, max_think, max_answer)
        assert out.trace_ids == trace
        assert out.forced_ids == forced
        assert out.answer_ids == answer
        assert out.stop_reason == reason
        reasons.add(reason)
    assert outs[0].stop_reason == "marker" and len(reasons) >= 2  # rows really had different phases


@pytest.mark.parametrize("rule", ["onehot", "soft"])
@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_soft_with_greedy_sampling_is_exactly_cot_greedy(tiny_lm, family, rule):
    lm = tiny_lm(family)
    prompts = prompts_for(lm)
    marker = EndMarker(lm.tokenizer, prompt_style(lm).marker)
    common = dict(max_think_tokens=6, max_answer_tokens=4, think_sampling=GREEDY, answer_sampling=GREEDY)
    cot = run_thinking(lm, prompts, ThinkConfig.create(method="cot", **common), marker)
    soft = run_thinking(lm, prompts, ThinkConfig.create(method="soft", mixing=MixingConfig(rule=rule), **common), marker)
    for a, b in zip(cot, soft):
        assert (a.trace_ids, a.forced_ids, a.answer_ids, a.stop_reason) == (b.trace_ids, b.forced_ids, b.answer_ids,
                                                                              b.stop_reason)
        assert b.mix_entropies == [0.0] * len(b.mix_entropies)  # one-hot concept tokens


def test_soft_sampled_feeds_real_mixtures_and_is_reproducible(tiny_lm):
    lm = tiny_lm("qwen2")
    prompts = prompts_for(lm)
    marker = EndMarker(lm.tokenizer, "Answer:")
    cfg = ThinkConfig.create(method="soft", think_sampling=SamplingConfig(temperature=1.0, seed=3),
                             mixing=MixingConfig(rule="soft", max_topk=5), max_think_tokens=5, max_answer_tokens=3)
    a = run_thinking(lm, prompts, cfg, marker)
    b = run_thinking(lm, prompts, cfg, marker)
    assert [o.trace_ids for o in a] == [o.trace_ids for o in b]
    assert all(h > 0.5 for o in a for h in o.mix_entropies)  # near-uniform random model: wide mixtures
    assert all(o.stop_reason == "max_tokens" and o.forced_ids == marker.ids and o.think_tokens == 5 for o in a)


def test_direct_answers_at_once(tiny_lm):
    lm = tiny_lm("qwen2")
    prompts = prompts_for(lm, direct=True)
    assert lm.tokenizer.decode(prompts[0]).endswith("Answer:")
    outs = run_thinking(lm, prompts, ThinkConfig.create(method="direct", max_answer_tokens=4,
                                                        answer_stops_at_newline=False), EndMarker(lm.tokenizer, "Answer:"))
    for ids, out in zip(prompts, outs):
        assert out.think_tokens == 0 and out.stop_reason == StopReason.none.value
        assert out.answer_ids == hf_greedy(lm, ids, 4)[: len(out.answer_ids)] and out.answer_tokens >= 1


def test_cold_stop_counts_consecutive_low_entropy_steps():
    cs = ColdStop(tau=0.01, steps=3, batch_size=2)
    low, high = 0.001, 2.0
    fired = [cs.update(torch.tensor([low, high])).tolist() for _ in range(3)]
    assert fired == [[False, False], [False, False], [True, False]]
    cs = ColdStop(tau=0.01, steps=3, batch_size=1)
    seq = [low, low, high, low, low, low]  # the high step resets the run
    assert [bool(cs.update(torch.tensor([h]))[0]) for h in seq] == [False, False, False, False, False, True]
    cs = ColdStop(tau=0.0, steps=1, batch_size=1)  # tau 0 disables it
    assert not bool(cs.update(torch.tensor([0.0]))[0])
    with pytest.raises(ConfigError, match="tau"):
        ColdStop(tau=-1, steps=3, batch_size=1)


def test_cold_stop_ends_thinking_on_a_confident_model_not_on_a_random_one(tiny_lm):
    lm = tiny_lm("qwen2")
    sharp_model = copy.deepcopy(lm.model)
    with torch.no_grad():
        sharp_model.lm_head.weight.mul_(1e4)  # logits × 10^4: near one-hot distributions, H ≈ 0
    sharp = lm.with_model(sharp_model)
    prompts = prompts_for(lm)[:2]
    marker = EndMarker(lm.tokenizer, "Answer:")
    cfg = ThinkConfig.create(method="cot", max_think_tokens=12, max_answer_tokens=2, cold_stop_tau=0.01,
                             cold_stop_steps=4)
    for out in run_thinking(sharp, prompts, cfg, marker):
        assert out.stop_reason == "cold_stop" and out.think_tokens == 3  # the 4th low-entropy step is replaced
        assert out.forced_ids == marker.ids and max(out.entropies) < 0.01
    for out in run_thinking(lm, prompts, cfg, marker):
        assert out.stop_reason == "max_tokens" and out.think_tokens == 12 and min(out.entropies) > 1.0


def test_end_marker_detection(tiny_lm):
    tok = tiny_lm("qwen3").tokenizer
    think = EndMarker(tok, "</think>")
    assert think.token_id == tok.convert_tokens_to_ids("</think>") and think.ids == [think.token_id]
    assert think.found(tok.encode("so 5</think>")) and not think.found(tok.encode("so 5"))
    ans = EndMarker(tok, "Answer:")
    assert ans.token_id is None and len(ans.ids) >= 1
    assert ans.found(tok.encode("3 + 4 = 7.\nAnswer:"))
    assert ans.found(tok.encode("so **Final answer:**"))
    assert not ans.found(tok.encode("3 + 4 = 7.\nAnswer"))
    with pytest.raises(ConfigError):
        EndMarker(tok, " ")


def test_line_start_marker_ignores_an_echoed_instruction_and_forces_a_new_line(tiny_lm):
    tok = tiny_lm("qwen2").tokenizer
    ans = EndMarker(tok, "Answer:", at_line_start=True)
    assert ans.at_line_start and not EndMarker(tok, "</think>", at_line_start=True).at_line_start
    echo = "= 304\n\nLet's write the final answer as a number on a last line that starts with \"Answer:\"."
    assert not ans.found(tok.encode(echo)) and EndMarker(tok, "Answer:").found(tok.encode(echo))
    for text in ("3 + 4 = 7.\nAnswer:", "so 7.\n**Answer:**", "so 7.\n\n### Final answer:", "Answer:",
                 "a long line of reasoning that goes on and on and on.\n- Answer:"):
        assert ans.found(tok.encode(text)), text
    assert not ans.found(tok.encode("so the Answer: is 7")) and not ans.found(tok.encode("so 7.\nAnswer"))
    newline = tok.encode("\n")
    assert ans.forced_ids(tok.encode("so 7.")) == newline + ans.ids
    assert ans.forced_ids(tok.encode("so 7.\n")) == ans.ids and ans.forced_ids([]) == ans.ids
    assert EndMarker(tok, "Answer:").forced_ids(tok.encode("so 7.")) == ans.ids


def test_forced_line_start_marker_goes_on_a_new_line_in_the_runner(tiny_lm):
    lm = tiny_lm("qwen2")
    marker = prompt_style(lm).end_marker(lm.tokenizer)
    cfg = ThinkConfig.create(method="cot", max_think_tokens=4, max_answer_tokens=2)
    forced = [out for out in run_thinking(lm, prompts_for(lm), cfg, marker) if out.stop_reason != "marker"]
    assert forced  # a random tiny model does not write "Answer:" at a line start within 4 tokens
    for out in forced:
        assert out.forced_ids == marker.forced_ids(out.trace_ids)
        assert lm.tokenizer.decode(out.trace_ids + out.forced_ids).endswith("\nAnswer:")


def test_prompt_styles_follow_the_family_adapter(tiny_lm):
    q3 = tiny_lm("qwen3")
    style = prompt_style(q3)
    assert style.think_token and style.marker == "</think>"
    text = build_prompt(q3, "What is 2 + 3?", style, direct=False)
    assert text.endswith("<|im_start|>assistant\n<think>\n") and "</think>" not in text
    assert build_prompt(q3, "What is 2 + 3?", style, direct=True).endswith("<think>\n\n</think>\n\n")
    q2 = tiny_lm("qwen2")  # same tokenizer, but a family without thinking tokens
    assert prompt_style(q2).marker == "Answer:" and not prompt_style(q2).think_token
    assert prompt_style(q3, "Result:").marker == "Result:"
    gpt2 = tiny_lm("gpt2")
    plain = build_prompt(gpt2, "What is 2 + 3?", prompt_style(gpt2), direct=True)
    assert plain.startswith("Question: What is 2 + 3?") and plain.endswith("Answer:")


def test_think_config_errors():
    with pytest.raises(ConfigError, match="max_think_tokens"):
        ThinkConfig.create(method="cot", max_think_tokens=0)
    with pytest.raises(ConfigError, match="cold_stop_tau"):
        ThinkConfig.create(method="soft", cold_stop_tau=-0.1)
    # soft defaults to Soft Thinking's concept-token sampling (greedy would be cot); cot to greedy.
    assert ThinkConfig.create(method="soft").think_sampling == SamplingConfig(**SOFT_THINKING_SAMPLING)
    assert ThinkConfig.create(method="cot").think_sampling.greedy
    with pytest.raises(ConfigError, match="method"):
        ThinkConfig.create(method="dream")


def test_truncate_top_k_fast_path_equals_the_vocabulary_wide_path():
    """Soft thinking's sampler (top_k, then top_p, then min_p) works on the k survivors only; the
    result equals the general full-vocabulary computation, and a tie at the k-th value falls back."""
    from vecgen.decoding.sampling import _renorm, truncate

    def general(probs, cfg):
        kth = torch.topk(probs, cfg.top_k, dim=-1).values[..., -1:]
        probs = _renorm(probs, probs >= kth)
        if cfg.top_p < 1.0:
            sp, order = torch.sort(probs, -1, descending=True)
            keep = torch.zeros_like(sp, dtype=torch.bool).scatter(-1, order, (torch.cumsum(sp, -1) - sp) < cfg.top_p)
            probs = _renorm(probs, keep)
        if cfg.min_p > 0:
            probs = _renorm(probs, probs >= cfg.min_p * probs.max(-1, keepdim=True).values)
        return probs

    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(4, 500, generator=gen), -1)
    for cfg in (SamplingConfig(temperature=0.6, top_k=30, top_p=0.95, min_p=0.001),
                SamplingConfig(temperature=1.0, top_k=5), SamplingConfig(temperature=1.0, top_k=50, top_p=0.5, min_p=0.2)):
        fast, ref = truncate(probs, cfg), general(probs, cfg)
        assert torch.equal(fast > 0, ref > 0)
        torch.testing.assert_close(fast, ref)
    tied = torch.tensor([[0.4, 0.2, 0.2, 0.1, 0.1]])
    out = truncate(tied, SamplingConfig(temperature=1.0, top_k=2))  # the tie keeps both 0.2 tokens
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.25, 0.25, 0.0, 0.0]]))


@pytest.mark.parametrize("method", ["direct", "cot", "soft", "hidden", "switch", "gated"])
def test_continuous_batching_gives_every_row_its_one_row_result(tiny_lm, method, monkeypatch):
    """Six questions through two rows at a time: rows end at their own steps (the stop token is one the rows write
    at different steps), waiting questions join the running batch mid-phase (``hidden``: a row that feeds hidden
    states joins rows that may be answering), and each row's trace, forced tokens, answer and stop reason equal its
    run alone. Transformers float32 on the CPU: tokens compared exactly; the mixtures' summation order differs with
    the batch, which never flipped a top-1 here (a flip would show as a token diff)."""
    lm = tiny_lm("qwen2")
    questions = QUESTIONS + ["Name a colour.", "What is 7 times 6?", "Count to three."]
    style = prompt_style(lm, None)
    prompts = [lm.encode(build_prompt(lm, q, style, direct=method == "direct")) for q in questions]
    cfg = ThinkConfig.create(method=method, max_think_tokens=6, max_answer_tokens=6, cold_stop_tau=0.0,
                             think_sampling=GREEDY if method == "cot" else SamplingConfig(temperature=0.6))
    marker = style.end_marker(lm.tokenizer)
    free = [run_thinking(lm, [p], cfg, marker)[0] for p in prompts]
    def end(out, t):  # the step at which a row alone ends with stop token t (its budget if it never writes t)
        n = len(out.trace_ids) + len(out.forced_ids)
        return n + (out.answer_ids.index(t) + 1 if t in out.answer_ids else cfg.max_answer_tokens)

    # a stop token that ends two rows at different steps; those two go first (they start together), so the third
    # question joins while one of them still runs
    i, j, stop = next((i, j, t) for i in range(len(free)) for j in range(i + 1, len(free))
                      for t in sorted(set(free[i].answer_ids + free[j].answer_ids)) if end(free[i], t) != end(free[j], t))
    order = [i, j] + [k for k in range(len(free)) if k not in (i, j)]
    prompts = [prompts[k] for k in order]
    monkeypatch.setattr(lm, "stop_token_ids", lambda: [stop])
    merged = []
    inner = lm.backend.merge
    lm.backend.merge = lambda a, b: (merged.append(b.batch_size), inner(a, b))[1]
    try:
        together = run_thinking(lm, prompts, cfg, marker, max_batch=2)
    finally:
        del lm.backend.merge
    for p, out in zip(prompts, together):
        alone = run_thinking(lm, [p], cfg, marker)[0]
        assert (out.trace_ids, out.forced_ids, out.answer_ids, out.stop_reason) == (
            alone.trace_ids, alone.forced_ids, alone.answer_ids, alone.stop_reason)
    assert merged  # questions joined a running batch
