"""The backend contract suite: every backend × tiny random family (vecgen.backends.contract).

Backends: ``transformers`` (any family transformers has), ``reference`` (vecgen's own Qwen2/Qwen3
forward pass, the families it implements) and ``llamacpp`` (llama.cpp on the same tiny Qwen2/Qwen3 weights
exported as an F32 GGUF file, run with an F32 KV cache and without flash attention, whose CPU kernel works in
float16: then its logits agree with transformers' to about 3e-7; skipped, with the reason printed, where
llama-cpp-python is not installed). Families: qwen2, qwen3, llama, gpt2 (learned positions) and
gemma3 (scaled input embeddings ``sqrt(d)·E[i]``, a sliding-window layer). A new backend is added to
the registry with the families it runs (``BackendSpec.families``), which puts it in ``CASES``: it must pass every
test here (``tests/contract/test_toy_backend.py`` runs these tests on a backend registered from test code).

Tolerances: float32 on the CPU. Results that go through the same kernels in the same order are compared
exactly (tokens, greedy paths); results whose summation order differs (a batch of 3 against one row,
a cached prefix against a whole prompt, the reference forward against transformers') are compared with
``atol=1e-5, rtol=1e-4``, about 100× the float32 rounding of logits of this size (|logit| < 1 in tiny
random models, 2 layers).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vecgen.backends import Backend, Batch, build_batch
from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, generate, mix_embeddings
from vecgen.decoding.mixing import mean_input_norm
from vecgen.errors import NonFiniteError
from vecgen.models import load_model
from vecgen.models.backends import backend_names, get_backend
from vecgen.thinking.markers import EndMarker
from vecgen.thinking.prompts import build_prompt, prompt_style
from vecgen.thinking.runner import ThinkConfig, run_thinking
from helpers.policies import SampleN
from helpers.reference_decoding import hf_greedy, reference_cot

#: Every registered backend on the tiny families its spec names (vecgen.models.backends: BackendSpec.families).
CASES = [(b, f) for b in backend_names(auto=False) for f in get_backend(b).families]
IDS = [f"{b}-{f}" for b, f in CASES]
#: The fast tier runs the transformers backend on Qwen2 (every contract check once); the other cases are slow.
FAST_CONTRACT = "transformers-qwen2"
PARAMS = [pytest.param(c, id=i, marks=() if i == FAST_CONTRACT else pytest.mark.slow) for c, i in zip(CASES, IDS)]
TOL = dict(atol=1e-5, rtol=1e-4)
GREEDY = SamplingConfig()
SOFT = SamplingConfig(temperature=1.0)  # the mixture is deterministic (no draw): soft = top-10 of the softmax
TEXTS = ["Hello there", "A much longer prompt than the first one is", "Hi"]


def build_case(backend, family, tiny_lm, tiny_model_dir, tiny_llamacpp):
    """``(lm, hf_lm)``: the tiny ``family`` model under ``backend`` (loaded by the backend's own registered loader
    from the tiny model's folder; a GGUF runtime gets the same weights exported as F32 GGUF), and the same weights
    under transformers."""
    hf = tiny_lm(family)
    if backend == "transformers":
        return hf, hf
    if get_backend(backend).weights == "gguf":  # a GGUF runtime: the same weights as an F32 GGUF file
        return tiny_llamacpp(family), hf
    return load_model(str(tiny_model_dir(family)), backend=backend, device="cpu", dtype="float32",
                      show_progress=False), hf


@pytest.fixture(params=PARAMS)
def case(request, tiny_lm, tiny_model_dir, tiny_llamacpp):
    """``(lm, hf_lm)``: :func:`build_case` of the parameter's backend and family."""
    return build_case(*request.param, tiny_lm, tiny_model_dir, tiny_llamacpp)


def test_backend_satisfies_the_protocol(case, request):
    lm, hf = case
    assert isinstance(lm.backend, Backend)
    assert lm.backend.name == request.node.callspec.id.split("-")[0]
    assert lm.backend.hidden_size == lm.hidden_size and lm.backend.vocab_rows == lm.vocab_rows


def test_input_rows_are_the_models_own_inputs_scale_included(case):
    lm, hf = case
    ids = torch.tensor([[0, 5, 151, 1000]])
    rows = lm.backend.input_rows(ids)  # (1, 4, d)
    assert torch.equal(rows, hf.model.get_input_embeddings()(ids))  # what the model does with these ids
    torch.testing.assert_close(rows, lm.backend.embed_scale * lm.backend.embedding[ids], atol=1e-6, rtol=1e-6)
    expected_scale = lm.hidden_size ** 0.5 if hf.adapter.family == "gemma3" else 1.0
    assert lm.backend.embed_scale == pytest.approx(expected_scale)
    # ids and their input rows give the same logits (the seeds' "keys on ids" claim, on every backend)
    by_ids = lm.backend.prefill(Batch(ids, None, torch.ones_like(ids)))
    by_rows = lm.backend.prefill(Batch(None, rows, torch.ones_like(ids)))
    torch.testing.assert_close(by_rows.logits, by_ids.logits, atol=0, rtol=0)


def test_onehot_greedy_equals_transformers_generate(case):
    lm, hf = case
    ids = lm.encode("The capital of France is")
    ours = generate(lm, [ids], sampling=GREEDY, max_new_tokens=12, stop_ids=[])
    assert ours.token_ids(0) == hf_greedy(hf, ids, 12)


def test_batched_equals_one_at_a_time(case):
    lm, _ = case
    prompts = [lm.encode(t) for t in TEXTS]
    for rule in ("onehot", "soft", "full"):
        sampling = GREEDY if rule == "onehot" else SOFT
        batch = generate(lm, prompts, sampling=sampling, mixing=rule, max_new_tokens=5, stop_ids=[], keep_vectors=True,
                             record_top_k=10)
        for i, p in enumerate(prompts):
            one = generate(lm, [p], sampling=sampling, mixing=rule, max_new_tokens=5, stop_ids=[], keep_vectors=True,
                           record_top_k=10)
            assert batch.token_ids(i) == one.token_ids(0), (rule, i)
            torch.testing.assert_close(batch.vectors(i), one.vectors(0), **TOL)
            torch.testing.assert_close(batch.rows[i].top_probs, one.rows[0].top_probs, **TOL)


def test_select_and_fork_keep_exactly_the_chosen_rows(case):
    lm, _ = case
    be = lm.backend
    prompts = [lm.encode(t) for t in TEXTS]
    step = be.input_rows(torch.tensor([11, 12, 13]))  # (3, d): one vector per row
    ref = be.extend(be.prefill(build_batch(lm, prompts), hidden=True), step, hidden=True)  # all rows
    state = be.prefill(build_batch(lm, prompts))
    forked = be.fork(state, [2, 0, 0])  # copies; ``state`` stays as it was
    kept = be.extend(be.select_rows(state, torch.tensor([0, 2])), step[[0, 2]], hidden=True)
    torch.testing.assert_close(kept.logits, ref.logits[[0, 2]], **TOL)
    torch.testing.assert_close(kept.hidden, ref.hidden[[0, 2]], **TOL)
    assert kept.next_position.tolist() == ref.next_position[[0, 2]].tolist()
    out = be.extend(forked, step[[2, 0, 0]], hidden=True)
    torch.testing.assert_close(out.logits, ref.logits[[2, 0, 0]], **TOL)
    torch.testing.assert_close(out.hidden, ref.hidden[[2, 0, 0]], **TOL)


def test_rows_finishing_at_different_steps_leave_the_batch(case):
    """Each row stops at its own stop token; rows leave the batch (the backend sees fewer rows) and
    every row equals its single-row run."""
    lm, _ = case
    prompts = [lm.encode(t) for t in TEXTS]
    free = [generate(lm, [p], sampling=GREEDY, max_new_tokens=8, stop_ids=[]).token_ids(0) for p in prompts]

    def first(t, row):  # step (1-based) at which ``row`` emits ``t``, 9 = never
        return row.index(t) + 1 if t in row else 9

    # a stop token that no row emits at step 1 and that ends the rows at different steps
    stop = next(t for t in sorted({t for row in free for t in row})
                if min(first(t, r) for r in free) >= 2 and len({first(t, r) for r in free}) > 1)
    stops = [stop]
    sizes: list[int] = []
    inner = lm.backend.extend
    lm.backend.extend = lambda state, x, **kw: (sizes.append(x.shape[0]), inner(state, x, **kw))[1]
    try:
        res = generate(lm, prompts, sampling=GREEDY, max_new_tokens=8, stop_ids=stops)
    finally:
        del lm.backend.extend
    for i, p in enumerate(prompts):
        alone = generate(lm, [p], sampling=GREEDY, max_new_tokens=8, stop_ids=stops)
        assert res.token_ids(i) == alone.token_ids(0)
        assert bool(res.finished[i]) == bool(alone.finished[0])
    assert sizes[0] == 3 and sizes[-1] < 3 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("longer_first", [True, False])
def test_merge_continues_every_row_as_alone(case, longer_first):
    """A state prefilled later (shorter or longer cache) joins a running one; every row's next logits, hidden state
    and position equal those of its own state continued alone (``TOL``: the batch changes the summation order)."""
    lm, _ = case
    be = lm.backend
    first_prompts = [lm.encode(t) for t in TEXTS[:2]]
    # caches longer than gemma3's sliding window (16) on the longer side, so its window layer is merged when full
    longer = " ".join(["and a few more words than before"] * 5)
    late = [lm.encode(TEXTS[2] + ("" if longer_first else longer))]
    k = 14 if longer_first else 3  # steps the running rows take before the late prompt joins
    steps = be.input_rows(torch.stack([torch.arange(21, 21 + k), torch.arange(41, 41 + k)]))  # (2, k, d)
    running = be.extend(be.prefill(build_batch(lm, first_prompts), hidden=True), steps, hidden=True)
    alone = be.extend(be.prefill(build_batch(lm, first_prompts), hidden=True), steps, hidden=True)
    joined, joined_alone = be.prefill(build_batch(lm, late), hidden=True), be.prefill(build_batch(lm, late), hidden=True)
    merged = be.merge(running, joined)
    assert merged.batch_size == 3
    torch.testing.assert_close(merged.logits, torch.cat([alone.logits, joined_alone.logits]), **TOL)
    nxt = be.input_rows(torch.tensor([41, 42, 43]))  # (3, d): one more step for all three rows
    out = be.extend(merged, nxt, hidden=True)
    ref_a = be.extend(alone, nxt[:2], hidden=True)
    ref_b = be.extend(joined_alone, nxt[2:], hidden=True)
    torch.testing.assert_close(out.logits, torch.cat([ref_a.logits, ref_b.logits]), **TOL)
    torch.testing.assert_close(out.hidden, torch.cat([ref_a.hidden, ref_b.hidden]), **TOL)
    assert out.next_position.tolist() == ref_a.next_position.tolist() + ref_b.next_position.tolist()
    kept = be.extend(be.select_rows(out, torch.tensor([2])), nxt[:1], hidden=True)  # the joined row alone goes on
    torch.testing.assert_close(kept.logits, be.extend(ref_b, nxt[:1], hidden=True).logits, **TOL)
    if hasattr(kept.cache, "attention_mask"):  # a padded cache drops the slots no kept row uses
        assert bool(kept.cache.attention_mask[:, 0].any())


def test_continuous_batching_equals_one_row_runs(case):
    """Five prompts through at most two rows at a time: rows end at their own stop token, waiting prompts join the
    running batch, and every row's greedy tokens equal its one-row run (transformers float32: token for token)."""
    lm, _ = case
    texts = TEXTS + ["One more prompt", "And the fifth, a little longer than the others"]
    prompts = [lm.encode(t) for t in texts]
    free = [generate(lm, [p], sampling=GREEDY, max_new_tokens=8, stop_ids=[]).token_ids(0) for p in prompts]
    counts: dict[int, int] = {}
    for row in free:
        for t in set(row[1:]):
            counts[t] = counts.get(t, 0) + 1
    stops = [max(counts, key=lambda t: counts[t])]  # a token that ends some rows early (at different steps)
    sizes: list[int] = []
    inner_extend, inner_merge = lm.backend.extend, lm.backend.merge
    merges: list[tuple[int, int]] = []
    lm.backend.extend = lambda state, x, **kw: (sizes.append(x.shape[0]), inner_extend(state, x, **kw))[1]
    lm.backend.merge = lambda a, b: (merges.append((a.batch_size, b.batch_size)), inner_merge(a, b))[1]
    try:
        res = generate(lm, prompts, sampling=GREEDY, max_new_tokens=8, stop_ids=stops, max_batch=2)
    finally:
        del lm.backend.extend, lm.backend.merge
    for i, p in enumerate(prompts):
        alone = generate(lm, [p], sampling=GREEDY, max_new_tokens=8, stop_ids=stops)
        assert res.token_ids(i) == alone.token_ids(0), i
        assert bool(res.finished[i]) == bool(alone.finished[0])
    assert max(sizes) == 2 and merges  # never more than two rows; some prompt joined a running batch


def test_prefix_fork_then_prompts_equal_whole_prompts(case):
    """Prompts fed on top of a forked cached prefix equal the whole prompts. Rests of different lengths
    put padding inside the shorter row; a sliding-window backend says that is not exact
    (``inner_padding_exact``), and is tested with equal-length rests."""
    lm, hf = case
    be = lm.backend
    assert be.inner_padding_exact == (hf.adapter.family != "gemma3")
    head = lm.encode("The meaning of hola is hello. The meaning of")
    rests = [lm.encode(" Paris is"), lm.encode(" two plus two")]
    if not be.inner_padding_exact:
        rests[1] = rests[1][-len(rests[0]):]
    ids = torch.tensor([head])
    state = be.prefill(Batch(ids, None, torch.ones_like(ids)))
    cached = generate(lm, rests, sampling=GREEDY, max_new_tokens=5, stop_ids=[], past=be.fork(state, [0, 0]),
                      record_top_k=10)
    for i, rest in enumerate(rests):
        whole = generate(lm, [head + rest], sampling=GREEDY, max_new_tokens=5, stop_ids=[], record_top_k=10)
        assert cached.token_ids(i) == whole.token_ids(0)
        torch.testing.assert_close(cached.rows[i].top_probs, whole.rows[0].top_probs, **TOL)


def test_hidden_state_is_after_the_final_norm_and_before_the_lm_head(case):
    lm, hf = case
    ids = torch.tensor([lm.encode("Once upon a time")])
    state = lm.backend.prefill(Batch(ids, None, torch.ones_like(ids)), hidden=True)
    assert state.hidden.shape == (1, lm.hidden_size)
    theirs = hf.model(ids, output_hidden_states=True)
    torch.testing.assert_close(state.hidden, theirs.hidden_states[-1][:, -1], **TOL)
    head = hf.model.get_output_embeddings()
    torch.testing.assert_close(head(state.hidden).float(), state.logits, **TOL)


@pytest.mark.slow  # every backend on two families (the fast tier checks the transformers backend above)
@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_soft_mixtures_and_logits_agree_across_backends(tiny_lm, family):
    from vecgen.reference import from_transformers

    hf = tiny_lm(family)
    ref = hf.with_model(from_transformers(hf))
    prompts = [hf.encode(t) for t in TEXTS]
    for rule in ("soft", "full", "hidden"):
        kw = dict(sampling=SOFT, mixing=rule, max_new_tokens=6, stop_ids=[], keep_vectors=True, record_top_k=10)
        a, b = generate(hf, prompts, **kw), generate(ref, prompts, **kw)
        for i in range(len(prompts)):
            assert a.token_ids(i) == b.token_ids(i), (rule, i)
            torch.testing.assert_close(a.vectors(i), b.vectors(i), **TOL)
            torch.testing.assert_close(a.rows[i].top_probs, b.rows[i].top_probs, **TOL)
            torch.testing.assert_close(a.rows[i].mix_weights, b.rows[i].mix_weights, **TOL)


def test_thinking_phase_switches(case):
    """Batched cot: rows end thinking at different steps (marker or budget), get the forced marker and
    answer; every row equals transformers' greedy generate on that row alone."""
    lm, hf = case
    style = prompt_style(lm)
    prompts = [lm.encode(build_prompt(lm, q, style, direct=False)) for q in ["What is 2 + 3?", "Halve 10.", "Hi"]]
    trace0 = hf_greedy(hf, prompts[0], 6)
    marker = EndMarker(lm.tokenizer, lm.tokenizer.decode(trace0[3:5]))  # found on row 0's trace (and maybe others)
    cfg = ThinkConfig.create(method="cot", max_think_tokens=7, max_answer_tokens=4, cold_stop_tau=0.0)
    outs = run_thinking(lm, prompts, cfg, marker)
    for out, ids in zip(outs, prompts):
        trace, forced, answer, reason = reference_cot(hf, ids, marker, 7, 4)
        assert (out.trace_ids, out.forced_ids, out.answer_ids, out.stop_reason) == (trace, forced, answer, reason)
    assert outs[0].stop_reason == "marker" and {o.stop_reason for o in outs[1:]} <= {"max_tokens", "marker", "eos"}
    # soft and hidden thinking run on every backend and feed one vector per thinking step
    for rule in ("soft", "hidden"):
        soft = run_thinking(lm, prompts, ThinkConfig.create(method="soft", max_think_tokens=5, max_answer_tokens=3,
                                                            mixing=MixingConfig(rule=rule)), marker)
        assert all(1 <= o.think_tokens <= 5 and o.answer_tokens >= 1 for o in soft)


def test_allowed_mask_and_finiteness_hold_in_thinking_mode(case):
    lm, _ = case
    style = prompt_style(lm)
    ids = [lm.encode(build_prompt(lm, "What is 2 + 3?", style, direct=False))]
    marker = style.end_marker(lm.tokenizer)
    allowed = torch.zeros(lm.vocab_rows, dtype=torch.bool)
    keep = torch.tensor(lm.encode(" one two three four five six seven") + lm.stop_token_ids() + list(marker.ids)
                        + lm.encode("\n"))
    allowed[keep] = True
    cfg = ThinkConfig.create(method="soft", max_think_tokens=6, max_answer_tokens=4)
    out = run_thinking(lm, ids, cfg, marker, allowed=allowed)[0]
    assert all(bool(allowed[t]) for t in out.trace_ids + out.answer_ids)

    class NaNLogits:  # a backend whose logits turn NaN after two extends
        def __init__(self, be):
            self.be, self.calls = be, 0

        def __getattr__(self, name):
            return getattr(self.be, name)

        def extend(self, state, x, **kw):
            self.calls += 1
            state = self.be.extend(state, x, **kw)
            if self.calls >= 2:
                state.logits = torch.full_like(state.logits, float("nan"))
            return state

    bad = dataclasses.replace(lm, backend=NaNLogits(lm.backend))
    with pytest.raises(NonFiniteError, match="at step 2 for prompt 0") as err:
        run_thinking(bad, ids, cfg, marker)
    assert err.value.step == 2 and err.value.row == 0


def test_hidden_rule_feeds_the_scaled_last_hidden_state(case):
    lm, _ = case
    ids = lm.encode("The capital of France is")
    be = lm.backend
    first = be.prefill(build_batch(lm, [ids]), hidden=True)
    target = mean_input_norm(be, lm.n_real_vocab)
    for scale in ("none", "embed"):
        res = generate(lm, [ids], sampling=GREEDY, mixing=MixingConfig(rule="hidden", hidden_scale=scale),
                       max_new_tokens=3, stop_ids=[], keep_vectors=True)
        v = res.vectors(0)  # (3, d)
        assert res.token_ids(0)[0] == int(first.logits.argmax(-1))  # the trace is the logits' top-1 token
        if scale == "none":
            torch.testing.assert_close(v[0], first.hidden[0].float(), **TOL)
        else:
            torch.testing.assert_close(v.norm(dim=-1), torch.full((3,), target), atol=1e-3, rtol=1e-4)
            torch.testing.assert_close(v[0] / v[0].norm(), first.hidden[0].float() / first.hidden[0].norm(), **TOL)
    with pytest.raises(Exception, match="hidden state"):
        from vecgen.decoding.mixing import get_rule

        mixture = get_rule("hidden")(first.logits, GREEDY, MixingConfig(rule="hidden"), None, None)
        mix_embeddings(be, mixture)  # no hidden state given: a contract violation


def test_switch_and_gated_thinking_feed_what_their_rules_say(case):
    """``switch`` and ``gated`` run on every backend: each step's mode is what SwiReasoning's state machine (replayed
    on the recorded entropies) or SeLaR's gate (on the recorded mixture entropies) says; latent steps feed the
    concept token and explicit steps the token, one input per step."""
    import math

    from vecgen.thinking.switching import SwitchState, gate_is_latent

    lm, _ = case
    style = prompt_style(lm)
    prompts = [lm.encode(build_prompt(lm, q, style, direct=False)) for q in ["What is 2 + 3?", "Halve 10.", "Hi"]]
    marker = EndMarker(lm.tokenizer, "Answer:")
    cfg = ThinkConfig.create(method="switch", max_think_tokens=12, max_answer_tokens=2, cold_stop_tau=0.0,
                             switch_window=2, math_explicit=False, think_sampling=SOFT)
    for out in run_thinking(lm, prompts, cfg, marker):
        state, expected = SwitchState(2), []
        for h in out.entropies:
            state.step(h)
            expected.append("latent" if state.latent else "explicit")
        if out.stop_reason == "marker":
            expected[-1] = "explicit"  # the marker token itself is fed one-hot
        assert out.modes == expected and len(out.modes) == out.think_tokens
    gated = ThinkConfig.create(method="gated", max_think_tokens=8, max_answer_tokens=2, cold_stop_tau=0.0,
                               gate_tau=0.3, math_explicit=False, think_sampling=SOFT)
    for out in run_thinking(lm, prompts, gated, marker, trace_top_k=10):
        for mode, w in zip(out.modes, out.top_weights):
            h = -sum(x * math.log(x) for x in w if x > 0)
            assert mode == ("latent" if gate_is_latent(h, 10, 0.3) else "explicit") or out.stop_reason == "marker"


def test_chunked_prefill_equals_whole_prefill_and_lets_live_rows_step(case):
    """``run(prefill_chunk=)``: a long prompt that arrives while a row decodes is prefilled 8 tokens per step (each
    chunk on top of the last: :meth:`Backend.prefill` with ``past``), the live row steps between its chunks, and
    both rows' greedy tokens equal their runs alone (transformers float32: token for token)."""
    from vecgen.decoding import run

    lm, _ = case
    Greedy = SampleN  # greedy (the default sampler), onehot

    short = lm.encode("Hi")
    long = lm.encode("A much longer prompt than the first one is, with more words and more tokens in it")[:30]
    assert len(long) > 16
    for chunk in (8, None):
        a, b = Greedy(12), Greedy(4)
        queue = [[(short, a)], [], [(long, b)]]
        live_per_step: list[int] = []
        res = run(lm, [], [], max_batch=2, admit=lambda free: queue.pop(0) if queue else [],
                  on_row_end=lambda i, rec, err: None, prefill_chunk=chunk,
                  on_step=lambda step, live: live_per_step.append(live))
        assert res.rows == []
        alone_a, alone_b = Greedy(12), Greedy(4)
        run(lm, [short], [alone_a])
        run(lm, [long], [alone_b])
        assert a.tokens == alone_a.tokens and b.tokens == alone_b.tokens, chunk
        joined = live_per_step.index(2)  # the first step with both rows live
        # it arrives at step 2; chunked, its first chunk is prefilled there and one more before each later step
        assert joined == (2 + -(-len(long) // chunk) - 1 if chunk is not None else 2), live_per_step
