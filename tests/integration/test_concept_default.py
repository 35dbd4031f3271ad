"""Concept tokens and the ids-vs-embeddings diagnosis on the real default model."""

import json
import subprocess
import sys

import pytest

from vecgen.concept import ConceptConfig, run_concept
from vecgen.diagnose import diagnose_embeds

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_first_concept_token_of_the_capital_of_france_holds_paris(default_lm):
    cfg = ConceptConfig.create(prompts=["The capital of France is"], n_values=[1], methods=["nearest"],
                               translation_tokens=1)
    vec = run_concept([default_lm], cfg).records[0].vectors[0]
    assert " Paris" in [t.token for t in vec.top[:3]]
    assert vec.nearest_cosine.token == " Paris"


def test_ids_and_embeddings_give_identical_logits_on_the_default_model(default_lm):
    res = diagnose_embeds(default_lm, max_new_tokens=3, kinds=("embeddings",))
    emb = [r for r in res.rows if r.inputs == "embeddings"]
    assert [(r.template, r.inputs) for r in res.rows] == [(t, k) for t in ("plain", "chat")
                                                          for k in ("token ids", "embeddings")]
    assert all(r.max_logit_diff == 0.0 and r.same_as_ids for r in emb)
    assert res.generate_check.equals_loop and res.generate_check.after_slicing == []


def test_vecgen_concept_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vecgen", "concept", "-p", "The capital of France is", "--n", "2",
         "--translation-tokens", "8", "--run-name", "e2e", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "Vector 1 top weights: ' Paris'" in out.stdout
    run = tmp_path / "e2e"
    for name in ("results.json", "records.jsonl", "report.md", "concept_weights.png", "vectors.pt"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    (rec,) = results["results"]["records"]
    assert set(rec["translations"]) == {"nearest", "direct", "completion", "fewshot", "instruction", "patchscope",
                                        "selfie"}
    assert rec["translations"]["nearest"]["text"].startswith(" Paris")
    assert results["model"]["n_real_vocab"] == 151665 and results["config"]["concept"]["n_values"] == [2]
    assert "transformers" in results["environment"]["packages"]
