"""Translation methods: prompt construction, splicing equivalence, raw ids, errors."""

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.decoding.translate import (
    COMPLETION_PREFIX,
    COMPLETION_SUFFIX,
    INSTRUCTION_MESSAGE,
    TRANSLATION_METHODS,
    chat_segments,
    check_methods,
    describe_ids,
    translate,
)
from vecgen.errors import ConfigError, NoChatTemplateError
from vecgen.models import render_chat

GREEDY = SamplingConfig(temperature=0.0)


def test_registry_has_the_seven_methods():
    assert list(TRANSLATION_METHODS) == ["nearest", "direct", "completion", "fewshot", "instruction", "patchscope",
                                         "selfie"]


def test_patchscope_and_selfie_prompts_are_the_papers_frames(tiny_lm):
    """Patchscopes: the identity prompt with the vectors at the placeholder; SelfIE: the vectors as the user turn and
    the assistant opening its summary. Both feed the vectors exactly (rows of the prompt's segments)."""
    from vecgen.decoding.translate import PATCHSCOPE_PREFIX, PATCHSCOPE_SUFFIX, SELFIE_ANSWER, get_method

    lm = tiny_lm("qwen2")
    v = lm.embedding[torch.tensor([1000, 2000])].float()
    segs = get_method("patchscope").fn(lm, v)
    assert lm.tokenizer.decode(segs[0]) == PATCHSCOPE_PREFIX and lm.tokenizer.decode(segs[2]) == PATCHSCOPE_SUFFIX
    assert torch.equal(segs[1], v)
    before, vec, after = get_method("selfie").fn(lm, v)
    assert torch.equal(vec, v)
    text = lm.tokenizer.decode(before) + "X" + lm.tokenizer.decode(after)
    assert text == render_chat(lm.tokenizer, [{"role": "user", "content": "X"}]) + SELFIE_ANSWER


def test_instruction_places_vectors_inside_the_user_turn(tiny_lm):
    lm = tiny_lm("qwen2")  # Qwen3 tokenizer, with its chat template
    before, after = chat_segments(lm, *INSTRUCTION_MESSAGE)
    tok = lm.tokenizer
    rendered = render_chat(tok, [{"role": "user", "content": INSTRUCTION_MESSAGE[0] + " Paris"}])
    assert tok.decode(before) + " Paris" + tok.decode(after) == rendered
    assert tok.convert_tokens_to_ids("<|im_start|>") in before and tok.convert_tokens_to_ids("<|im_end|>") in after


def test_spliced_embeddings_of_real_tokens_equal_the_id_prompt(tiny_lm):
    """With the vectors being real token embeddings, every generative method is the ordinary text prompt."""
    lm = tiny_lm("qwen2")
    word = lm.encode(" Paris.")
    vectors = lm.embedding[word]  # (2, d)
    res = translate(lm, [vectors], ["direct", "completion", "fewshot", "instruction"], max_new_tokens=5)[0]
    before, after = chat_segments(lm, *INSTRUCTION_MESSAGE)
    from vecgen.decoding.translate import fewshot_prefix

    as_ids = {
        "direct": word,
        "completion": lm.encode(COMPLETION_PREFIX) + word + lm.encode(COMPLETION_SUFFIX),
        "fewshot": lm.encode(fewshot_prefix()) + word + lm.encode(COMPLETION_SUFFIX),
        "instruction": before + word + after,
    }
    for name, ids in as_ids.items():
        ref = generate(lm, [ids], sampling=GREEDY, max_new_tokens=5)
        assert res[name].token_ids == ref.token_ids(0), name
        assert res[name].text == ref.text(0, lm.tokenizer)


def test_batched_translation_equals_one_at_a_time(tiny_lm):
    lm = tiny_lm("qwen3")
    torch.manual_seed(0)
    sets = [lm.embedding[lm.encode(" Paris")] * 0.7 + lm.embedding[lm.encode(" London")] * 0.3,
            lm.embedding[lm.encode(" two plus two")]]
    together = translate(lm, sets, ["direct", "completion"], max_new_tokens=4)
    for s, vectors in enumerate(sets):
        alone = translate(lm, [vectors], ["direct", "completion"], max_new_tokens=4)[0]
        for name in ("direct", "completion"):
            assert together[s][name].token_ids == alone[name].token_ids


def test_nearest_returns_the_tokens_of_real_embeddings(tiny_lm):
    lm = tiny_lm("gpt2")
    ids = lm.encode(" The capital")
    t = translate(lm, [lm.embedding[ids]], ["nearest"])[0]["nearest"]
    assert t.token_ids == ids and t.text == " The capital"


def test_raw_ids_explain_an_empty_answer(tiny_lm):
    lm = tiny_lm("qwen2")
    im_end = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    t = describe_ids(lm, "instruction", [im_end], True, "")
    assert t.text == "" and t.raw_text == "<|im_end|>" and t.token_ids == [im_end]
    assert "<|im_end|>" in t.empty_reason
    ok = describe_ids(lm, "direct", lm.encode("\n Paris is big.\nMore"), False, "")
    assert ok.answer == "Paris is big." and ok.empty_reason == ""
    assert describe_ids(lm, "completion", lm.encode(":\nParis.\n"), False, "").answer == "Paris."


def test_bad_methods_are_clear_errors(tiny_lm):
    with pytest.raises(ConfigError, match="unknown translation method 'poetry'"):
        check_methods(tiny_lm("qwen2"), ["nearest", "poetry"])
    with pytest.raises(NoChatTemplateError, match="instruction"):
        translate(tiny_lm("gpt2"), [torch.zeros(2, 64)], ["instruction"])
    with pytest.raises(ConfigError, match="vector set 0"):
        translate(tiny_lm("qwen2"), [torch.zeros(0, 64)], ["direct"])
