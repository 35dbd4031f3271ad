"""The real embedded default model (Qwen2.5-Coder-0.5B-Instruct from the PyPI data wheels)."""

import subprocess
import sys

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.models import format_prompt, get_entry, load_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_greedy_capital_of_france_is_paris(default_lm):
    ids = default_lm.encode("The capital of France is")
    res = generate(default_lm, [ids], sampling=SamplingConfig(max_new_tokens=4))
    assert res.text(0, default_lm.tokenizer).startswith(" Paris")
    assert default_lm.n_real_vocab == 151665 and default_lm.vocab_rows == 151936
    assert default_lm.adapter.family == "qwen2"


def test_chat_path_answers_and_ends_its_turn(default_lm):
    text = format_prompt(default_lm.tokenizer, "What is the capital of France? Answer in one word.", chat=True)
    res = generate(default_lm, [default_lm.encode(text)], sampling=SamplingConfig(max_new_tokens=16))
    assert "Paris" in res.text(0, default_lm.tokenizer)
    assert res.token_ids(0)[-1] == default_lm.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_second_load_uses_the_cache(default_lm):
    again = load_model("default", device="cpu", dtype="float32", show_progress=False)
    assert again.source == "packaged" and not again.built_cache
    assert (again.path and again.path == default_lm.path)


def test_cache_logits_equal_gguf_logits(default_lm, tmp_path):
    """The cache stores the dequantized float32 tensors unchanged, so logits match exactly."""
    from transformers import AutoModelForCausalLM

    from vecgen.models.packaged import assemble_parts

    gguf = assemble_parts(get_entry("default").packaged, tmp_path / "model.gguf", show_progress=False)
    direct = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = torch.tensor([default_lm.encode("def fibonacci(n):")])
    with torch.no_grad():
        torch.testing.assert_close(direct(ids).logits, default_lm.model(ids).logits, atol=0.0, rtol=0.0)


def test_cli_generate_prints_paris():
    out = subprocess.run([sys.executable, "-m", "vecgen", "generate", "The capital of France is", "-n", "6"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout
