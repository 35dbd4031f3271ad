"""The decode loop against transformers on tiny random models."""

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, build_batch, generate, get_rule, mix_embeddings
from vecgen.errors import ConfigError, NonFiniteError

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=12)


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "gpt2", "llama"])
def test_onehot_greedy_matches_transformers_generate(tiny_lm, family):
    lm = tiny_lm(family)
    ids = lm.encode("The capital of France is")
    ours = generate(lm, [ids], sampling=GREEDY, stop_ids=[])
    x = torch.tensor([ids])
    ref = lm.model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=12,
                            min_new_tokens=12, pad_token_id=lm.tokenizer.pad_token_id)
    assert ours.token_ids(0) == ref[0, len(ids):].tolist()


def test_cached_loop_equals_uncached_recomputation(tiny_lm):
    lm = tiny_lm("qwen2")
    ids = lm.encode("Once upon a time")
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=5)
    res = generate(lm, [ids], sampling=sampling, mixing=MixingConfig(rule="soft", max_topk=10), stop_ids=[],
                   keep_vectors=True, record_top_k=10)
    vectors = res.vectors(0)  # (5, d)
    rule = get_rule("soft")
    prompt = lm.embed(torch.tensor([ids]))[0]
    for step in range(1, 5):
        seq = torch.cat([prompt, vectors[:step]], 0)[None]  # (1, T + step, d)
        with torch.no_grad():
            logits = lm.model(inputs_embeds=seq).logits[:, -1]
        mixture = rule(logits, sampling, MixingConfig(rule="soft"), None, None)
        vec = mix_embeddings(lm.embedding, mixture)
        torch.testing.assert_close(vec[0], vectors[step])
        torch.testing.assert_close(mixture.top(10)[1], res.steps[step].mix_weights)


@pytest.mark.parametrize("rule", ["onehot", "soft", "full"])
def test_batch_with_left_padding_equals_one_at_a_time(tiny_lm, rule):
    lm = tiny_lm("qwen3")
    prompts = [lm.encode("Hi"), lm.encode("The capital of France is a city"), lm.encode("2 plus 2 equals")]
    sampling = SamplingConfig(temperature=1.0 if rule != "onehot" else 0.0, max_new_tokens=4)
    batch = generate(lm, prompts, sampling=sampling, mixing=rule, stop_ids=[])
    for i, p in enumerate(prompts):
        single = generate(lm, [p], sampling=sampling, mixing=rule, stop_ids=[])
        assert batch.token_ids(i) == single.token_ids(0)
        for sb, ss in zip(batch.steps, single.steps):
            assert torch.equal(sb.mix_ids[i], ss.mix_ids[0])
            torch.testing.assert_close(sb.mix_weights[i], ss.mix_weights[0], atol=1e-5, rtol=1e-4)


def test_soft_rule_with_greedy_sampling_is_ordinary_decoding(tiny_lm):
    lm = tiny_lm("qwen2")
    ids = lm.encode("Once upon a time")
    a = generate(lm, [ids], sampling=GREEDY, mixing="onehot", stop_ids=[])
    b = generate(lm, [ids], sampling=GREEDY, mixing="soft", stop_ids=[])
    assert a.token_ids(0) == b.token_ids(0)


def test_stops_at_eos_and_records_it(tiny_lm):
    lm = tiny_lm("qwen2")
    ids = lm.encode("Hello")
    first = generate(lm, [ids], sampling=GREEDY, stop_ids=[]).token_ids(0)
    res = generate(lm, [ids], sampling=GREEDY, stop_ids=[first[2]])
    assert res.token_ids(0) == first[:3] and bool(res.finished[0])


def test_prompts_with_vector_segments(tiny_lm):
    lm = tiny_lm("qwen2")
    a, b = lm.encode("The meaning of"), lm.encode(" is")
    vec = lm.embedding[lm.encode(" Paris")]  # (1, d): a real token as a vector
    batch = build_batch(lm, [[a, vec, b]])
    assert batch.input_ids is None and batch.inputs_embeds.shape == (1, len(a) + 1 + len(b), 64)
    ids_only = generate(lm, [a + lm.encode(" Paris") + b], sampling=GREEDY, stop_ids=[])
    spliced = generate(lm, [[a, vec, b]], sampling=GREEDY, stop_ids=[])
    assert ids_only.token_ids(0) == spliced.token_ids(0)
    with pytest.raises(NonFiniteError, match="prompt 0"):
        build_batch(lm, [[a, torch.full((1, 64), float("nan"))]])


def test_bad_requests_are_clear_errors(tiny_lm):
    lm = tiny_lm("qwen2")
    with pytest.raises(ConfigError, match="unknown mixing rule"):
        generate(lm, [[1, 2]], mixing="bogus")
    with pytest.raises(ConfigError, match="empty"):
        generate(lm, [[]])
    with pytest.raises(ConfigError, match="max_topk"):
        MixingConfig.create(rule="soft", max_topk=0)
