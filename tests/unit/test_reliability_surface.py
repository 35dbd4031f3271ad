"""Reliability of the whole surface (issue 29): one test per class of defect a new user met, and option sweeps
generated from the click tree (a new option is swept without a new test).

Each test drives the real CLI (``vecgen.cli.main``, in process unless a signal or a native abort is the point) on
tiny random models; inputs that can be judged without a model are refused before any load (``never_load``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import cli, never_load, one_line_error


def _stop_at_load(monkeypatch):
    """Stub every model / tokenizer load with a one-line VecgenError: an option that passes validation stops there
    (for ``vecgen train``, whose scratch model loads nothing: where its data is made, right after its settings)."""
    from vecgen.errors import VecgenError

    def stop(*a, **k):
        raise VecgenError("stopped before loading")

    for target in ("vecgen.api.load_model", "vecgen.models.load_model", "vecgen.models.loader.load_model",
                   "vecgen.models.load_tokenizer", "vecgen.models.loader.load_tokenizer", "vecgen.training.load_data",
                   "vecgen.training.train"):
        monkeypatch.setattr(target, stop)


def _tree():
    """``(command path, click command, required args)`` of every leaf command."""
    from vecgen.cli import command

    out = []
    stack = [([], command())]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", {})
        for name, sub in subs.items():
            stack.append(([*path, name], sub))
        if subs:
            continue
        required = []
        for p in cmd.params:
            if getattr(p, "required", False):
                required += ["x"] if p.param_type_name == "argument" else [p.opts[0], "x"]
        out.append((" ".join(path), cmd, required))
    return sorted(out, key=lambda t: t[0])


def _options_of(kind: str):
    """Every option whose annotation mentions ``kind`` (``str``, ``float``), with its command's required args."""
    found = []
    for path, cmd, required in _tree():
        for p in cmd.params:
            ann = str(getattr(getattr(p, "type_descriptor", None), "annotation", ""))
            if p.param_type_name == "option" and kind in ann and not getattr(p, "is_flag", False):
                found.append((path, p.opts[0], required))
    return found


STR_OPTIONS = _options_of("str")
FLOAT_OPTIONS = _options_of("float")
COMMANDS = [(path, required) for path, _, required in _tree()]


def test_the_sweeps_cover_every_command_and_the_new_options():
    names = {opt for _, opt, _ in STR_OPTIONS}
    assert {"--system", "--benchmark", "--grid", "--model", "--target-modules", "--run-name"} <= names
    commands = {c for c, _ in COMMANDS}
    assert {"generate", "concept", "think", "probe lens", "probe analogy", "probe superposition", "reader train",
            "reader eval", "view", "softprompt train", "vocab"} <= commands | {c.split()[0] for c in commands}
    assert len(STR_OPTIONS) >= 40 and len(FLOAT_OPTIONS) >= 20


# ------------------------------------------------------------------------------------- 1. tiny temperatures


@pytest.mark.parametrize("value", ["1e-45", "1e-320", "5e-324"])
@pytest.mark.parametrize("command,option,required", FLOAT_OPTIONS, ids=[f"{c}:{o}" for c, o, _ in FLOAT_OPTIONS])
def test_the_smallest_positive_floats_never_give_a_traceback(command, option, required, value, capsys, monkeypatch):
    """Accepted (and stopped at the stubbed load) or refused in one line: never a traceback."""
    _stop_at_load(monkeypatch)
    code, _, err = cli([*command.split(), *required, option, value], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err


@pytest.mark.parametrize("argv", [
    ["generate", "Hi", "-n", "4", "-t", "1e-45"],
    ["generate", "Hi", "-n", "4", "-t", "1e-320", "--top-p", "1e-45", "--min-p", "1"],
    ["concept", "--temperature", "1e-40", "--n", "2", "--prompt", "Hi"],
    ["think", "--concept-temperature", "1e-45", "--methods", "soft", "--max-think-tokens", "3",
     "--max-answer-tokens", "2", "--limit", "1"],
    ["think", "--concept-temperature", "1e-45", "--methods", "soft", "--noise", "gumbel", "--gumbel-tau", "1e-45",
     "--max-think-tokens", "3", "--max-answer-tokens", "2", "--limit", "1"],
])
def test_tiny_temperatures_run(argv, tiny_model_dir, tmp_path, capsys):
    extra = [] if argv[0] == "generate" else ["--out-dir", str(tmp_path)]
    code, out, err = cli([*argv, "-m", str(tiny_model_dir("qwen2")), *extra], capsys)
    assert code == 0, err
    assert "nan" not in out.lower().split()


def test_a_tiny_temperature_in_a_config_file_runs(tiny_model_dir, tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("temperature: 1.0e-45\ntop_k: 5\n")
    code, _, err = cli(["generate", "Hi", "-n", "3", "--config", cfg, "-m", tiny_model_dir("qwen2")], capsys)
    assert code == 0, err


# ------------------------------------------------------------------------------------- 2. invalid Unicode


@pytest.mark.parametrize("command,option,required", STR_OPTIONS, ids=[f"{c}:{o}" for c, o, _ in STR_OPTIONS])
def test_text_options_that_are_not_unicode_are_refused_naming_the_option(command, option, required, capsys,
                                                                          monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli([*command.split(), *required, option, "bad\udcffbytes"], capsys)
    one_line_error(code, err, option, "not valid Unicode")


@pytest.mark.parametrize("command,required", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_an_argument_that_is_not_unicode_is_refused_on_every_command(command, required, capsys, monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli([*command.split(), "x\ud800", *required], capsys)
    one_line_error(code, err, "not valid Unicode")


@pytest.mark.parametrize("line", ['{"question": "How \\ud800 many?", "answer": 3}',
                                  '{"question": "How many?", "answer": "\\udfff"}',
                                  '{"question": "q", "answer": 1, "choices_note": ["\\ud83d"]}'])
def test_task_files_with_lone_surrogate_escapes_are_refused_before_loading(line, tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    path = tmp_path / "t.jsonl"
    path.write_text(line + "\n")
    code, _, err = cli(["think", "--benchmark", path, "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "line 1", "not valid Unicode")


def test_the_library_refuses_text_a_tokenizer_cannot_take(tiny_lm):
    import vecgen
    from vecgen.errors import ConfigError

    lm = tiny_lm("qwen2")
    with pytest.raises(ConfigError, match="not valid Unicode"):
        lm.encode("abc\ud800")
    with pytest.raises(ConfigError, match="not valid Unicode"):
        vecgen.probes.lens(lm, ["x\udcff"], n=1, after=0, summary_prompts=0)


# ------------------------------------------------------------------------------------- 3. llama.cpp small n_ctx


@pytest.mark.slow
def test_a_small_llamacpp_context_never_aborts_the_process(tiny_llamacpp, tmp_path):
    import shutil

    gguf = tmp_path / "tiny.gguf"
    shutil.copy(tiny_llamacpp("qwen2").backend.gguf_path, gguf)
    base = [sys.executable, "-m", "vecgen", "generate", "-m", str(gguf), "--backend", "llamacpp", "--threads", "1"]
    ok = subprocess.run([*base, "hi", "-n", "2", "--n-ctx", "16"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    long = subprocess.run([*base, "hello " * 40, "-n", "2", "--n-ctx", "16"], capture_output=True, text=True,
                          timeout=300)
    assert long.returncode == 2 and "GGML_ASSERT" not in long.stderr, long.stderr[-2000:]
    assert "n_ctx" in long.stderr and "--batch-size" not in long.stderr
    cut = subprocess.run([*base, "hello " * 40, "-n", "2", "--n-ctx", "16", "--truncate-prompt"], capture_output=True,
                         text=True, timeout=300)
    assert cut.returncode == 0 and "dropped the first" in cut.stderr, cut.stderr[-2000:]


# ------------------------------------------------------------------------------------- 4. ranges known after loading


@pytest.mark.parametrize("k", ["151670", "10000003"])  # the tiny Qwen models' real vocabulary is 151,669 tokens
def test_analogy_k_beyond_the_vocabulary_is_one_line(k, tiny_model_dir, tmp_path, capsys):
    code, _, err = cli(["probe", "analogy", "-m", tiny_model_dir("qwen2"), "--k", k, "--out-dir", tmp_path], capsys)
    one_line_error(code, err, f"--k={k}", "allowed range is [1, ")


# ------------------------------------------------------------------------------------- 5. sizes


@pytest.mark.parametrize("argv,fragments", [
    (["think", "--samples", "100000000000", "--temperature", "1"], ["samples", "[1, 10,000]"]),
    (["think", "--grid", "max_think_tokens=" + ",".join(str(i) for i in range(1, 61))],
     ["180 configurations", "--allow-large"]),
    (["think", "--samples", "5000", "--temperature", "1", "--methods", "cot"], ["generations", "--allow-large"]),
    (["reader", "train", "--batch-size", "100000"], ["--batch-size=100000", "train_examples"]),
    (["probe", "lens", "--summary-prompts", "1000000"], ["--summary-prompts=1000000", "has 102 prompts"]),
])
def test_enormous_runs_are_refused_before_loading_with_their_size(argv, fragments, capsys, monkeypatch, tmp_path):
    never_load(monkeypatch)
    code, _, err = cli([*argv, "--out-dir", tmp_path], capsys)
    one_line_error(code, err, *fragments)


def test_allow_large_goes_ahead(capsys, monkeypatch, tmp_path):
    _stop_at_load(monkeypatch)
    code, _, err = cli(["think", "--grid", "max_think_tokens=" + ",".join(str(i) for i in range(1, 61)),
                        "--allow-large", "--limit", "1", "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "stopped before loading")


def test_unknown_lora_target_modules_are_refused_before_data_generation(tiny_model_dir, tmp_path, capsys,
                                                                       monkeypatch):
    def boom(*a, **k):
        raise AssertionError("data was generated before the target modules were checked")

    monkeypatch.setattr("vecgen.probes.reader_run.make_examples", boom)
    code, _, err = cli(["reader", "train", "-m", tiny_model_dir("qwen2"), "--target-modules", "bogus_proj",
                        "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "bogus_proj", "matches no layer", "q_proj")


@pytest.mark.slow  # tokenizes a long prompt: about 4 s
def test_a_long_prompt_on_a_cpu_needs_allow_large(tiny_model_dir, capsys, monkeypatch):
    import vecgen.cli.generate as gen

    monkeypatch.setattr(gen, "LONG_PROMPT_TOKENS", 8)
    model = tiny_model_dir("qwen2")
    code, _, err = cli(["generate", "one two three four five six seven eight nine ten", "-n", "1", "-m", model], capsys)
    one_line_error(code, err, "tokens, more than 8", "--allow-large")
    code, _, err = cli(["generate", "one two three four five six seven eight nine ten", "-n", "1", "-m", model,
                        "--allow-large"], capsys)
    assert code == 0, err


@pytest.mark.slow  # writes and reads a 10 MB task file: about 4 s
def test_a_10_mb_question_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"question": "x" * 10_000_000, "answer": 1}) + "\n")
    code, _, err = cli(["think", "--benchmark", path, "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "line 1", "10,000,000 characters")


# ------------------------------------------------------------------------------------- 6. the cache location


@pytest.mark.parametrize("under", ["", "x/y"])
def test_a_cache_location_that_is_a_file_is_one_line(under, tmp_path, capsys, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("not a folder")
    monkeypatch.setenv("VECGEN_CACHE", str(f / under) if under else str(f))
    code, _, err = cli(["generate", "hi", "-n", "1"], capsys)
    one_line_error(code, err, "VECGEN_CACHE", "set VECGEN_CACHE to a folder")


# ------------------------------------------------------------------------------------- 7. lm-eval's device


def test_vecgen_lm_eval_defaults_to_vecgen_s_device():
    from vecgen.lmeval import default_device_args

    assert default_device_args(["--model", "vecgen", "--tasks", "t"])[-2:] == ["--device", "auto"]
    assert default_device_args(["--model=vecgen"])[-2:] == ["--device", "auto"]
    assert default_device_args(["--model", "vecgen", "--device", "cpu"]) == ["--model", "vecgen", "--device", "cpu"]
    assert default_device_args(["--model", "hf", "--tasks", "t"]) == ["--model", "hf", "--tasks", "t"]


# ------------------------------------------------------------------------------------- 8. grid values, every method


@pytest.mark.parametrize("methods", ["direct", "cot", "soft", "hidden", "direct,cot"])
def test_grid_values_are_checked_for_every_method(methods, capsys, monkeypatch, tmp_path):
    never_load(monkeypatch)
    code, _, err = cli(["think", "--methods", methods, "--grid", "rule=bogus", "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "--grid rule=bogus", "unknown mixing rule")


# ------------------------------------------------------------------------------------- 9. non-finite JSON numbers


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_number_literals_in_task_files_are_refused(literal, tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    path = tmp_path / "t.jsonl"
    path.write_text('{"question": "How many?", "answer": 2}\n{"question": "How many?", "answer": %s}\n' % literal)
    code, _, err = cli(["think", "--benchmark", path, "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "line 2", literal.lstrip("-"), "not finite")
    bb = tmp_path / "task.json"
    bb.write_text('{"examples": [{"input": "2+2?", "target_scores": {"4": 1, "5": %s}}]}' % literal)
    code, _, err = cli(["think", "--benchmark", bb, "--out-dir", tmp_path], capsys)
    one_line_error(code, err, "not finite")


# ------------------------------------------------------------------------------------- 11. smaller things


def test_view_of_a_random_records_file_says_how_many_lines_were_skipped(tiny_model_dir, tmp_path, capsys, caplog):
    code, _, err = cli(["think", "-m", tiny_model_dir("qwen2"), "--methods", "direct", "--limit", "1",
                        "--max-answer-tokens", "2", "--out-dir", tmp_path, "--run-name", "r"], capsys)
    assert code == 0, err
    (tmp_path / "r" / "records.jsonl").write_bytes(os.urandom(4000).replace(b"\n", b"x") + b"\n" + b"\x00" * 10)
    with caplog.at_level("WARNING", logger="vecgen"):
        code, _, err = cli(["view", tmp_path / "r"], capsys)
    assert code == 0, err
    import re

    text = " ".join((err + caplog.text).split())
    m = re.search(r"skipped (\d+) of (\d+) lines", text)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 2, text


def test_a_refused_resume_is_found_before_loading(tiny_model_dir, tmp_path, capsys, monkeypatch):
    model = str(tiny_model_dir("qwen2"))
    code, _, err = cli(["think", "-m", model, "--methods", "direct", "--limit", "1", "--max-answer-tokens", "2",
                        "--out-dir", tmp_path, "--run-name", "r"], capsys)
    assert code == 0, err
    never_load(monkeypatch)
    code, _, err = cli(["think", "-m", model, "--methods", "direct", "--limit", "1", "--max-answer-tokens", "3",
                        "--out-dir", tmp_path, "--run-name", "r"], capsys)
    one_line_error(code, err, "different settings", "max_answer_tokens: 2 → 3")


def test_the_sampler_range_mechanism_is_one_function():
    """Every temperature division of the decoding package goes through tempered_softmax (no clamp per command)."""
    src = Path(__file__).resolve().parents[2] / "src" / "vecgen"
    offenders = []
    for path in src.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle in ("/ cfg.temperature", "/ temperature", "/ mixing.gumbel_tau", "/ sampling.temperature"):
            if needle in text and path.name != "sampling.py":
                offenders.append(f"{path.name}: {needle}")
    assert not offenders, offenders
