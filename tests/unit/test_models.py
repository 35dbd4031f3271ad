import pytest
import torch

from vecgen.devices import resolve_device, resolve_dtype
from vecgen.errors import ConfigError, ModelNotFoundError, WeightsUnavailableError
from vecgen.models import count_real_vocab, get_entry, load_model
from vecgen.models.adapters import GPT2, LLAMA, QWEN2, QWEN3


@pytest.mark.parametrize(
    "family,adapter,n_real",
    [("qwen2", QWEN2, 151669), ("qwen3", QWEN3, 151669), ("gpt2", GPT2, 50257), ("llama", LLAMA, 151669)],
)
def test_load_tiny_models_with_adapter_facts(tiny_lm, family, adapter, n_real):
    lm = tiny_lm(family)
    assert lm.adapter is adapter
    assert lm.source == "local"
    assert lm.n_real_vocab == n_real
    assert lm.embedding.shape == (lm.vocab_rows, 64)
    assert lm.device == torch.device("cpu") and lm.dtype == torch.float32
    assert not any(p.requires_grad for p in lm.model.parameters())
    ids = torch.tensor([lm.encode("Hello world")])
    torch.testing.assert_close(lm.embed(ids), lm.embedding[ids])


def test_adapter_facts_follow_the_model_configs():
    assert (QWEN2.qkv_bias, QWEN2.qk_norm) == (True, False)
    assert (QWEN3.qkv_bias, QWEN3.qk_norm) == (False, True)
    assert QWEN3.thinking_tokens == ("<think>", "</think>")
    assert GPT2.rotary is False


def test_stop_tokens_include_end_of_turn(tiny_lm):
    lm = tiny_lm("qwen3")
    assert {151645, 151643} <= set(lm.stop_token_ids())


def test_real_vocab_excludes_gguf_pad_placeholders():
    class Tok:
        def __init__(self, n, pads):
            self.n, self.pads = n, pads

        def __len__(self):
            return self.n

        def convert_ids_to_tokens(self, i):
            return f"[PAD{i}]" if i >= self.n - self.pads else f"tok{i}"

    assert count_real_vocab(Tok(151936, 271), 151936) == 151665
    assert count_real_vocab(Tok(100, 0), 120) == 100


def test_unknown_model_and_bad_paths(tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown model 'nosuch'.*default"):
        load_model("nosuch")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(str(tmp_path))
    assert get_entry("default").name == "qwen2.5-coder-0.5b-instruct"


def test_hub_id_offline_says_how_to_get_the_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="huggingface-cli download Qwen/Qwen3-0.6B"):
        load_model("Qwen/Qwen3-0.6B")


def test_device_and_dtype_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ConfigError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu9")
