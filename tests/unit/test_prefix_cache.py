"""Feeding prompts on top of a cached prefix (backend.prefill(past=...), backend.fork, generate(past=...))."""

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.backends import Batch, build_batch
from vecgen.errors import ConfigError

GREEDY = SamplingConfig(temperature=0.0)


def _prefix_state(lm, prefixes):
    """Prefill left-padded prefixes; an empty prefix becomes an all-padding row."""
    T = max(len(p) for p in prefixes)
    ids = torch.zeros(len(prefixes), T, dtype=torch.long)
    mask = torch.zeros(len(prefixes), T, dtype=torch.long)
    for i, p in enumerate(prefixes):
        if p:
            ids[i, T - len(p):] = torch.tensor(p)
            mask[i, T - len(p):] = 1
    return lm.backend.prefill(Batch(ids, None, mask))


@pytest.mark.parametrize("family", ["qwen3", "gpt2"])
def test_prompts_on_cached_prefixes_equal_whole_prompts(tiny_lm, family):
    lm = tiny_lm(family)
    pa, pb = lm.encode("The meaning of hola is hello. The meaning of"), lm.encode("Q:")
    rests = [lm.encode(" Paris is"), lm.encode(" two plus two"), lm.encode("Once upon a time there"),
             lm.encode(" Hi")]
    heads = [pa, pb, [], pa]  # row 2 has no prefix: an all-padding cached row
    state = _prefix_state(lm, [pa, pb, []])
    vec = lm.embedding[rests[3]]  # the last prompt as vectors: a mixed ids/vector batch
    prompts = [rests[0], rests[1], rests[2], [vec]]
    cached = generate(lm, prompts, sampling=GREEDY, max_new_tokens=5, stop_ids=[], record_top_k=10,
                      past=lm.backend.fork(state, [0, 1, 2, 0]))
    for i, (head, rest) in enumerate(zip(heads, rests)):
        whole = generate(lm, [head + rest], sampling=GREEDY, max_new_tokens=5, stop_ids=[], record_top_k=10)
        assert cached.token_ids(i) == whole.token_ids(0), i
        for sc, sw in zip(cached.steps, whole.steps):
            torch.testing.assert_close(sc.top_probs[i], sw.top_probs[0], atol=1e-5, rtol=1e-4)


def test_fork_leaves_the_cached_state_reusable(tiny_lm):
    lm = tiny_lm("qwen2")
    state = _prefix_state(lm, [lm.encode("A list of capitals:")])
    before = state.cache.attention_mask.clone()
    a = generate(lm, [lm.encode(" France")], sampling=GREEDY, max_new_tokens=4, stop_ids=[], past=lm.backend.fork(state, [0]))
    b = generate(lm, [lm.encode(" France")], sampling=GREEDY, max_new_tokens=4, stop_ids=[], past=lm.backend.fork(state, [0]))
    assert a.token_ids(0) == b.token_ids(0)
    assert torch.equal(state.cache.attention_mask, before)
    assert state.cache.past_key_values.get_seq_length() == before.shape[1]


def test_prefill_positions_continue_from_the_past(tiny_lm):
    lm = tiny_lm("qwen2")
    state = _prefix_state(lm, [lm.encode("one two three"), []])
    assert state.next_position.tolist() == [3, 0]  # an all-padding row starts at position 0
    batch = build_batch(lm, [lm.encode(" four"), lm.encode(" a b")])
    out = lm.backend.prefill(batch, lm.backend.fork(state, [0, 1]))
    assert out.next_position.tolist() == [4, 2] and out.cache.attention_mask.shape == (2, 3 + 2)


def test_past_with_the_wrong_number_of_rows_is_an_error(tiny_lm):
    lm = tiny_lm("qwen2")
    state = _prefix_state(lm, [lm.encode("Hello")])
    with pytest.raises(ConfigError, match="past has 1 rows but 2 prompts"):
        generate(lm, [[1, 2], [3]], past=state)
