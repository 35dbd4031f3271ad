"""CLI behaviour: errors are one line with exit status 2, never a traceback."""

import pytest

from helpers.cli import cli_subprocess as run


@pytest.mark.slow
def test_generate_on_a_local_tiny_model(tiny_model_dir):
    out = run("generate", "Hello", "-m", str(tiny_model_dir("qwen2")), "-n", "3", "--temperature", "0.7", "--top-k",
              "5", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Hello")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["generate", "x", "--temperature", "3"], "temperature=3.0"),
        (["generate", "x", "--top-p", "0"], "top_p=0.0"),
        (["generate", "   "], "empty prompt"),
        (["generate", "x", "-m", "nosuch"], "unknown model 'nosuch'"),
        (["generate", "x", "--preset", "wild"], "unknown sampling preset"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_clear_line(args, fragment):
    out = run(*args)
    assert out.returncode == 2
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_models_lists_the_default():
    out = run("models")
    assert out.returncode == 0
    assert "qwen2.5-coder-0.5b" in out.stdout and "default" in out.stdout
