"""Per-layer Patchscopes (token identity, same source and target layer): patching a state into the target prompt at
the placeholder is exact where it can be checked by hand."""

from __future__ import annotations

import pytest
import torch

from vecgen.backends import build_batch
from vecgen.probes.patchscope import identity_prompt, patched_logits, patchscope_layers


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
def test_patching_a_prompts_own_states_changes_nothing(tiny_lm, family):
    """The target prompt's own state at the placeholder, patched back at any layer, gives its unpatched logits."""
    lm = tiny_lm(family)
    ids, pos = identity_prompt(lm)
    states = lm.backend.hidden_states(build_batch(lm, [ids]))  # L + 1 tensors (1, T, d)
    L = len(states) - 1
    own = torch.stack([states[layer][0, pos] for layer in range(L)])
    plain = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
    got = patched_logits(lm, ids, pos, own, list(range(L)))
    torch.testing.assert_close(got, plain.expand(L, -1), atol=1e-5, rtol=1e-4)  # float32, batch of L vs 1


def test_patching_a_token_embedding_at_layer_0_is_that_token_in_the_prompt(tiny_lm):
    lm = tiny_lm("qwen2")
    ids, pos = identity_prompt(lm)
    t = lm.encode(" Paris")[0]
    swapped = list(ids)
    swapped[pos] = t
    want = lm.model(input_ids=torch.tensor([swapped]), use_cache=False).logits[0, -1].float()
    got = patched_logits(lm, ids, pos, lm.backend.input_rows(torch.tensor([t])), [0])[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    out = patchscope_layers(lm, [lm.backend.input_rows(torch.tensor(t))] * 3, top=3)
    assert out["layers"] == [0, 1] and len(out["top_texts"][0]) == 3


def test_llamacpp_and_the_reference_model_say_unsupported(tiny_lm):
    from vecgen.errors import UnsupportedError
    from vecgen.reference import from_transformers

    hf = tiny_lm("qwen2")
    ref = hf.with_model(from_transformers(hf))
    with pytest.raises(UnsupportedError, match="transformers"):
        patched_logits(ref, [1, 2, 3], 1, torch.zeros(1, hf.hidden_size), [0])


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
def test_a_patch_at_a_middle_layer_reaches_the_output(tiny_lm, family):
    """Another prompt's state patched at layer 1 changes the logits, and only in the patched row."""
    lm = tiny_lm(family)
    ids, pos = identity_prompt(lm)
    other = lm.backend.hidden_states(build_batch(lm, [lm.encode("A completely different text here")]))
    plain = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
    states = lm.backend.hidden_states(build_batch(lm, [ids]))
    rows = torch.stack([other[1][0, -1], states[1][0, pos]])  # row 0: a foreign state; row 1: its own
    got = patched_logits(lm, ids, pos, rows, [1, 1])
    assert (got[0] - plain).abs().max() > 1e-3
    torch.testing.assert_close(got[1], plain, atol=1e-5, rtol=1e-4)


def test_the_lens_reports_patchscopes_beside_the_logit_lens(tiny_lm):
    from vecgen.probes.logit_lens import lens_trace
    from vecgen.probes.report import lens_report
    from vecgen.reference import from_transformers

    lm = tiny_lm("qwen2")
    rec = lens_trace(lm, "The capital of France is", n=2, after=1, top=3)
    L = len(rec.concept.entropy) - 1
    assert len(rec.patchscope) == 2 and all(ps["layers"] == list(range(L)) for ps in rec.patchscope)
    assert all(len(row) == 3 for ps in rec.patchscope for row in ps["top_texts"])
    assert "Patchscopes" in lens_report([rec], None, {"name": "tiny"})
    ref = lm.with_model(from_transformers(lm))
    assert lens_trace(ref, "The capital of France is", n=1, after=0).patchscope is None


def test_the_first_token_summary_reads_each_layer_with_patchscopes(tiny_lm):
    """The per-layer Patchscopes shares count, over prompts, the readouts that name the mixture's top-1 token; the
    readouts equal patchscope_layers on the hidden states of the prompt + concept token (and + top-1 token)."""
    from vecgen.backends.contract import segments
    from vecgen.probes.logit_lens import first_token_lens
    from vecgen.probes.report import lens_report
    from vecgen.probes.sweep import mixture_inputs
    from vecgen.reference import from_transformers

    lm = tiny_lm("qwen2")
    prompts = ["Hello", "Once upon a time", "The capital of France is"]
    ft = first_token_lens(lm, prompts, mixture_top_k=4, batch_size=3)
    L = ft.layers - 1
    assert len(ft.patchscope_top1) == len(ft.patchscope_in_mixture) == len(ft.patchscope_discrete_top1) == L
    mixture, vecs = mixture_inputs(lm, prompts, 4, 3)
    for i, (p, row) in enumerate(zip(prompts, ft.per_prompt)):
        ids = lm.encode(p)
        top1 = int(mixture.indices[i][0])
        states = lm.backend.hidden_states(build_batch(lm, [segments(ids, vecs[i][None]), ids + [top1]]))
        want = patchscope_layers(lm, [h[0, -1] for h in states], top=1)["top_texts"]
        assert row["patchscope_concept"] == [r[0] for r in want]
        name = lm.tokenizer.decode([top1]).strip()
        assert row["patchscope_is_top1"] == [t.strip() == name for t in row["patchscope_concept"]]
    for layer in range(L):
        assert ft.patchscope_top1[layer]["k"] == sum(r["patchscope_is_top1"][layer] for r in ft.per_prompt)
        assert ft.patchscope_in_mixture[layer]["k"] >= ft.patchscope_top1[layer]["k"]
    assert "Patchscopes reads top-1" in lens_report([], ft, {"name": "tiny"})
    ref = lm.with_model(from_transformers(lm))
    assert first_token_lens(ref, prompts[:1], mixture_top_k=4).patchscope_top1 is None
