import pytest

from vecgen.errors import ConfigError, NoChatTemplateError, ThinkingModeError
from vecgen.models import format_prompt, load_tokenizer, render_chat


@pytest.fixture(scope="module")
def qwen3_tok():
    return load_tokenizer("qwen3")


def test_qwen3_is_rendered_in_non_thinking_mode(qwen3_tok):
    text = render_chat(qwen3_tok, [{"role": "user", "content": "What is 2+2?"}])
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "What is 2+2?" in text


def test_thinking_mode_request_is_a_value_error(qwen3_tok):
    with pytest.raises(ValueError, match="non-thinking mode only"):
        render_chat(qwen3_tok, [{"role": "user", "content": "hi"}], enable_thinking=True)
    assert issubclass(ThinkingModeError, ValueError)


def test_plain_path_and_tokenizer_without_template():
    gpt2 = load_tokenizer("gpt2")
    assert format_prompt(gpt2, "Once upon a time", chat=False) == "Once upon a time"
    with pytest.raises(NoChatTemplateError, match="no chat template"):
        format_prompt(gpt2, "hi", chat=True)


def test_system_message_and_empty_prompt(qwen3_tok):
    text = format_prompt(qwen3_tok, "hi", chat=True, system="Be brief.")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    with pytest.raises(ConfigError, match="empty prompt"):
        format_prompt(qwen3_tok, "   ", chat=True)
