"""The sampler's per-row generators (issue 35, item 3): rows that draw from their own random streams (pass@k samples,
seeded served requests) are sampled in one pass, and every row's outputs are those of the sampler that gave each
stream a pass of its own (``vecgen.decoding.step.BATCH_STREAMS = False``), token for token, for every built-in rule and noise."""

from __future__ import annotations

import pytest
import torch

import vecgen.decoding.step as step
import vecgen.decoding.mixing as mixing
from helpers.policies import SampleN
from vecgen.config import SamplingConfig
from vecgen.decoding.mixing import MixingConfig
from vecgen.decoding.sampling import RowGenerators, make_generator, per_generator, sample
from vecgen.thinking.markers import EndMarker
from vecgen.thinking.runner import ThinkConfig, run_thinking

def count_passes(monkeypatch) -> list[int]:
    """Every call of a mixing rule by the step's sampler appends its row count to the returned list."""
    calls: list[int] = []
    real = mixing.get_rule

    def counting(name):
        fn = real(name)
        return lambda logits, *a: calls.append(logits.shape[0]) or fn(logits, *a)

    monkeypatch.setattr(step, "get_rule", counting)
    return calls


PROMPTS = ["What is 2 + 3?", "Name a colour.", "Count to four:", "Hello there", "The sky is", "One, two,"]


def test_row_generators_draw_what_each_generator_draws_alone():
    probs = torch.softmax(torch.randn(5, 50, generator=make_generator(0)), -1)
    seeds = [3, 3, 9, 4, 9]  # rows 0 and 1 share a stream, as do 2 and 4
    streams = {s: make_generator(s) for s in set(seeds)}
    got = sample(probs, RowGenerators([streams[s] for s in seeds]))
    fresh = {s: make_generator(s) for s in set(seeds)}
    want = torch.empty(5, dtype=torch.long)
    for s in dict.fromkeys(seeds):  # each stream's rows in one call, in row order
        rows = [r for r, x in enumerate(seeds) if x == s]
        want[rows] = torch.multinomial(probs[rows], 1, generator=fresh[s]).squeeze(-1)
    assert torch.equal(got, want)
    one = make_generator(1)
    assert torch.equal(per_generator(one, lambda g, p: torch.multinomial(p, 1, generator=g).squeeze(-1), probs),
                       torch.multinomial(probs, 1, generator=make_generator(1)).squeeze(-1))


@pytest.mark.parametrize("method,rule,noise", [("soft", "soft", "none"), ("soft", "soft", "gumbel"),
                                               ("soft", "soft", "dirichlet"), ("soft", "moi", "none"),
                                               ("cot", "soft", "none"), ("gated", "soft", "gumbel")])
def test_seeded_rows_share_a_pass_with_the_same_outputs(tiny_lm, monkeypatch, method, rule, noise):
    lm = tiny_lm("qwen2")
    prompts = [lm.encode(p) for p in PROMPTS]
    sampling = SamplingConfig(temperature=0.8, top_k=20)
    cfg = ThinkConfig.create(method=method, think_sampling=sampling, answer_sampling=sampling, max_think_tokens=6,
                             max_answer_tokens=4, mixing=MixingConfig(rule=rule, noise=noise), cold_stop_tau=0.0)
    marker = EndMarker(lm.tokenizer, "Answer:")
    calls = count_passes(monkeypatch)
    seeds = [11, 12, 13, 11 + 2**40, 7, 99]
    outs = {}
    for batched in (False, True):
        monkeypatch.setattr(step, "BATCH_STREAMS", batched)
        calls.clear()
        outs[batched] = run_thinking(lm, prompts, cfg, marker, row_seeds=seeds, trace_top_k=5)
        outs[batched, "passes"] = len(calls)
    for a, b in zip(outs[False], outs[True]):
        assert (a.trace_ids, a.forced_ids, a.answer_ids, a.modes) == (b.trace_ids, b.forced_ids, b.answer_ids, b.modes)
        assert a.top_ids == b.top_ids
        # weights to float32 rounding: a reduction over V (moi's entropy) is split across threads differently for
        # one row than for several, so it may differ in the last bit; the tokens drawn from them do not
        torch.testing.assert_close(torch.tensor([w for r in a.top_weights for w in r]),
                                   torch.tensor([w for r in b.top_weights for w in r]), atol=1e-6, rtol=1e-5)
    assert outs[True, "passes"] < outs[False, "passes"] / 3  # six streams: about one pass per step instead of six



@pytest.mark.parametrize("rule", ["onehot", "soft", "moi", "full"])
def test_rows_of_different_temperatures_share_a_pass_with_the_same_tokens(tiny_lm, monkeypatch, rule):
    """Each row its own temperature (1.0 among them) and seed: one pass per step instead of one per row, and every
    row's tokens as when each had its own pass."""
    from vecgen.decoding import run

    lm = tiny_lm("qwen2")
    prompts = [lm.encode(p) for p in PROMPTS]
    temps = [0.3, 0.7, 1.0, 1.3, 0.7, 2.0]
    calls = count_passes(monkeypatch)
    tokens, passes = {}, {}
    for batched in (False, True):
        monkeypatch.setattr(step, "BATCH_STREAMS", batched)
        calls.clear()
        rows = [SampleN(8, SamplingConfig(temperature=t, top_k=40, seed=100 + i), rule, f"r{i}")
                for i, t in enumerate(temps)]
        run(lm, prompts, rows)
        tokens[batched], passes[batched] = [r.tokens for r in rows], len(calls)
    assert tokens[True] == tokens[False]
    assert passes[True] == 8 and passes[False] == 8 * len(temps)
