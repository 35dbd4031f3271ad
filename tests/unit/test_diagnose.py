"""Token ids vs their embeddings (the seeds' "instruction models key on token ids" claim)."""

import pytest
import torch

from vecgen.diagnose import diagnose_embeds, diagnose_report
from vecgen.errors import ConfigError
from vecgen.models import format_prompt


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "gpt2", "llama"])
def test_logits_from_ids_equal_logits_from_their_embeddings(tiny_lm, family):
    lm = tiny_lm(family)
    chat = family != "gpt2" and bool(lm.tokenizer.chat_template)
    text = format_prompt(lm.tokenizer, "What is the capital of France?", chat=chat)
    ids = torch.tensor([lm.encode(text)])
    with torch.no_grad():
        a = lm.model(input_ids=ids).logits
        b = lm.model(inputs_embeds=lm.embed(ids)).logits
    torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)


def test_diagnose_table_on_a_tiny_chat_model(tiny_lm):
    lm = tiny_lm("qwen2")
    res = diagnose_embeds(lm, n_vectors=3, max_new_tokens=4)
    kinds = [(r.template, r.inputs) for r in res.rows]
    assert kinds == [(t, k) for t in ("plain", "chat")
                     for k in ("token ids", "embeddings", "noise", "concept", "real + noise")]
    assert res.ids_equal_embeddings
    for r in res.rows:
        if r.inputs == "embeddings":
            assert r.max_logit_diff == 0.0 and r.same_as_ids
        elif r.inputs in ("noise", "real + noise"):
            assert r.max_logit_diff > 0.0  # off-manifold inputs really differ from their nearest tokens
        assert r.token_ids and len(r.token_ids) <= 4
    g = res.generate_check
    # transformers' generate(inputs_embeds=...) returns only new tokens: the seeds' slicing empties it.
    assert g.returned_length == len(g.returned_ids) <= 4 and g.equals_loop
    assert g.after_slicing == [] and g.text_after_slicing == ""
    report = diagnose_report(res, lm.describe())
    assert "| chat | embeddings |" in report and "identical" in report


def test_diagnose_without_chat_template_has_plain_rows_only(tiny_lm):
    res = diagnose_embeds(tiny_lm("gpt2"), n_vectors=2, max_new_tokens=2)
    assert {r.template for r in res.rows} == {"plain"} and res.generate_check is None
    assert res.ids_equal_embeddings


def test_diagnose_bad_input(tiny_lm):
    lm = tiny_lm("gpt2")
    with pytest.raises(ConfigError, match="n_vectors"):
        diagnose_embeds(lm, n_vectors=0)
    with pytest.raises(ConfigError, match="empty prompt"):
        diagnose_embeds(lm, prompt=" ")
