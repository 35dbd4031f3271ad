"""Reliability guards: bad weight files, context length, run folders, finite options, unscorable answers,
validation before loading, bad files, run locks, Ctrl-C, leftovers, error text, checkpoint model paths.

Each test drives the real CLI (``vecgen.cli.main``, in process unless a second process or a signal is the
point) or the library function the CLI calls, on tiny random models."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import cli, never_load, one_line_error
from vecgen.errors import ConfigError, ContextLengthError, ModelNotFoundError


# ---------------------------------------------------------------------------------------------
# 1. Bad weight files: one line naming the file, exit 2 — on every model-loading command.


def _small_gguf(path: Path) -> Path:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.ones((64, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def bad_models(tmp_path, tiny_model_dir):
    """name → a bad model path, and the marker file a malicious pickle would create if unpickled."""
    src = Path(tiny_model_dir("qwen2"))
    out = {}
    (tmp_path / "random.gguf").write_bytes(os.urandom(4096))
    out["random-gguf"] = tmp_path / "random.gguf"
    whole = _small_gguf(tmp_path / "whole.gguf").read_bytes()
    (tmp_path / "truncated.gguf").write_bytes(whole[: len(whole) - 100])
    out["truncated-gguf"] = tmp_path / "truncated.gguf"
    out["unconvertible-gguf"] = tmp_path / "whole.gguf"  # valid GGUF, but no tokenizer / architecture data
    only = tmp_path / "only-config"
    only.mkdir()
    shutil.copy(src / "config.json", only / "config.json")
    out["config-only"] = only
    corrupt = tmp_path / "corrupt"
    shutil.copytree(src, corrupt)
    data = (src / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])
    out["truncated-safetensors"] = corrupt
    garbage = tmp_path / "garbage"
    shutil.copytree(src, garbage)
    (garbage / "model.safetensors").write_bytes(os.urandom(2048))
    out["random-safetensors"] = garbage
    pickled = tmp_path / "pickled"
    shutil.copytree(src, pickled)
    (pickled / "model.safetensors").unlink()
    marker = tmp_path / "UNPICKLED"
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps(_Touch(str(marker))))
    out["pickle-only"] = pickled
    bad_json = tmp_path / "bad-config"
    shutil.copytree(src, bad_json)
    (bad_json / "config.json").write_text("{not json")
    out["bad-config-json"] = bad_json
    missing = tmp_path / "missing-tensor"
    shutil.copytree(src, missing)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(src / "model.safetensors"))
    tensors.pop("model.norm.weight")
    save_file(tensors, str(missing / "model.safetensors"), metadata={"format": "pt"})
    out["missing-tensor"] = missing
    return out, marker


class _Touch:
    """Unpickling this creates a file: proof that a pickle was (wrongly) loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


_BAD_MESSAGES = {
    "random-gguf": "is not a GGUF file",
    "truncated-gguf": "truncated or corrupt GGUF file",
    "unconvertible-gguf": "cannot convert",
    "config-only": "holds no weights",
    "truncated-safetensors": "not a valid safetensors file",
    "random-safetensors": "not a valid safetensors file",
    "pickle-only": "refuses to load: unpickling a file can run arbitrary code",
    "bad-config-json": "config.json is not a readable JSON file",
    "missing-tensor": "lack 1 tensor(s)",
}


@pytest.mark.parametrize("kind", sorted(_BAD_MESSAGES))
def test_bad_weight_files_are_one_line_naming_the_file(kind, bad_models, capsys, tmp_path, monkeypatch):
    paths, marker = bad_models
    path = paths[kind]
    monkeypatch.setenv("VECGEN_CACHE", str(tmp_path / "cache"))
    code, _, err = cli(["generate", "Hi", "-m", path, "-n", "2"], capsys)
    one_line_error(code, err, _BAD_MESSAGES[kind], path.name)
    assert not marker.exists(), "a pickle weight file was unpickled"


@pytest.mark.parametrize("argv", [
    ["concept", "-p", "Hi", "--n", "1", "--methods", "nearest"],
    ["think", "--benchmark", "arena", "--limit", "1"],
    ["diagnose", "embeds"],
    ["verify"],
    ["softprompt", "train", "--episodes", "1", "--eval-interval", "1"],
])
def test_every_model_loading_command_checks_the_weights_and_leaves_no_run_folder(argv, bad_models, capsys, tmp_path):
    paths, marker = bad_models
    runs = tmp_path / "runs"
    for kind in ("random-gguf", "pickle-only", "missing-tensor"):
        code, _, err = cli([*argv, "-m", paths[kind], "--out-dir", runs, "--run-name", f"r-{kind}"], capsys)
        one_line_error(code, err, _BAD_MESSAGES[kind])
    assert not runs.exists() or list(runs.iterdir()) == []  # no empty run folders after a failed start
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# 2. Context length: checked before decoding, for learned positions and RoPE alike.


@pytest.fixture(scope="module")
def short_models(tmp_path_factory):
    """Tiny GPT-2 (learned positions, 64) and Qwen2 (RoPE, max_position_embeddings 64) models, loaded."""
    from helpers.models import save_tiny_model

    from vecgen.models import load_model

    root = tmp_path_factory.mktemp("short")
    gpt2 = save_tiny_model(root / "gpt2", "gpt2", n_positions=64)
    qwen = save_tiny_model(root / "qwen2", "qwen2", max_position_embeddings=64)
    return {"gpt2": (gpt2, load_model(str(gpt2), device="cpu")), "qwen2": (qwen, load_model(str(qwen), device="cpu"))}


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_over_context_is_refused_before_any_token(family, short_models):
    from vecgen.config import SamplingConfig
    from vecgen.decoding import generate

    _, lm = short_models[family]
    ids = lm.encode("word " * 20)
    emitted = []
    with pytest.raises(ContextLengthError, match=r"needs \d+ positions .* context of 64"):
        generate(lm, [ids], sampling=SamplingConfig(max_new_tokens=64 - len(ids) + 2), mixing="onehot",
                 on_token=lambda r, t: emitted.append(t))
    assert emitted == []
    # exactly at the limit is fine: prompt + (max_new_tokens - 1) fed tokens = 64 positions
    out = generate(lm, [ids], sampling=SamplingConfig(max_new_tokens=64 - len(ids) + 1), mixing="onehot")
    assert len(out.rows[0].tokens) >= 1


def test_over_context_cli_refuses_or_truncates_with_a_warning(short_models, capsys):
    path, _ = short_models["gpt2"]
    code, out, err = cli(["generate", "word " * 60, "-m", path, "-n", "20"], capsys)
    one_line_error(code, err, "context of 64", "--max-new-tokens")
    assert out == ""  # nothing printed before the refusal
    code, out, err = cli(["generate", "word " * 60, "-m", path, "-n", "20", "--truncate-prompt"], capsys)
    assert code == 0, err
    assert "dropped the first" in err and out.strip()


def test_think_checks_every_item_before_the_first_batch(short_models, tmp_path, capsys):
    path, _ = short_models["qwen2"]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "short", "question": "1+1?", "answer": "2"}) + "\n"
                     + json.dumps({"id": "long", "question": "word " * 80, "answer": "3"}) + "\n")
    code, _, err = cli(["think", "-b", tasks, "-m", path, "--methods", "direct", "--max-answer-tokens", "4",
                        "--batch-size", "1", "--out-dir", tmp_path / "runs", "--run-name", "t"], capsys)
    one_line_error(code, err, "item 'long' (direct) needs", "context of 64")
    assert not (tmp_path / "runs" / "t" / "records.jsonl").exists()  # nothing ran, not even the short item


def test_vector_counts_are_checked_against_the_context_before_allocating(short_models):
    from vecgen.diagnose import diagnose_embeds

    _, lm = short_models["gpt2"]
    with pytest.raises(ContextLengthError, match="--n-vectors"):
        diagnose_embeds(lm, n_vectors=10**12, max_new_tokens=4)


def test_soft_prompt_training_sequence_is_checked(short_models):
    import torch

    from vecgen.softprompt.prompt import prompt_parts
    from vecgen.softprompt.train import answer_loss

    _, lm = short_models["qwen2"]
    parts = prompt_parts(lm, "word " * 40, chat=False)
    with pytest.raises(ContextLengthError, match="training sequence"):
        answer_loss(lm, torch.zeros(30, lm.hidden_size), parts, [1, 2, 3], "prefix")


# ---------------------------------------------------------------------------------------------
# 3. Run names: a run folder is always a child of --out-dir.


@pytest.mark.parametrize("name", ["..", ".", "/tmp/abs", "a/b", ".hidden", "../x", "x" * 200, "na me"])
def test_run_names_that_leave_the_out_dir_are_refused(name, tmp_path, capsys):
    out_dir = tmp_path / "runs"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = cli(["vocab", "english", "--tokenizer", "gpt2", "--run-name", name, "--out-dir", out_dir], capsys)
    one_line_error(code, err, "--run-name", "not a plain folder name")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written anywhere


def test_a_finished_run_is_not_overwritten_by_a_command_that_does_not_resume(tmp_path):
    from vecgen.reports import RunWriter

    with RunWriter("verify", name="v", root=tmp_path, resumable=False) as w:
        w.write_report("first")
    with pytest.raises(ConfigError, match="already holds a run .*this command does not resume"):
        RunWriter("verify", name="v", root=tmp_path, resumable=False)
    with pytest.raises(ConfigError, match="already holds a run .*; resume with: X or choose another --run-name"):
        RunWriter("verify", name="v", root=tmp_path, resumable=False, resume_hint="resume with: X")
    with pytest.raises(ConfigError, match="holds a `verify` run, not a `think` run"):
        RunWriter("think", name="v", root=tmp_path)
    assert (tmp_path / "v" / "report.md").read_text() == "first"


# ---------------------------------------------------------------------------------------------
# 4. NaN / inf: every float option of every command, refused while parsing and named.


def _options(kind: str):
    """``(command path, option, required args)`` for every option of ``kind`` (``"float"``/``"int"``)."""
    from vecgen.cli import command

    found = []
    stack = [([], command())]
    while stack:
        path, cmd = stack.pop()
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(([*path, name], sub))
        required = []
        for p in cmd.params:
            if getattr(p, "required", False):
                required += ["x"] if p.param_type_name == "argument" else [p.opts[0], "x"]
        for p in cmd.params:
            ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)
            if p.param_type_name == "option" and kind in str(ann):
                found.append((" ".join(path), p.opts[0], required))
    return sorted(found)


FLOAT_OPTIONS = _options("float")
INT_OPTIONS = _options("int")


def test_the_float_option_sweep_is_not_empty():
    names = {opt for _, opt, _ in FLOAT_OPTIONS}
    assert {"--temperature", "--top-p", "--min-p", "--lr", "--mix-noise", "--cold-stop-tau", "--beta"} <= names
    assert len(FLOAT_OPTIONS) >= 20


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
@pytest.mark.parametrize("command,option,required", FLOAT_OPTIONS, ids=[f"{c}:{o}" for c, o, _ in FLOAT_OPTIONS])
def test_non_finite_float_options_are_refused_naming_the_option(command, option, required, value, capsys,
                                                                monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli([*command.split(), *required, option, value], capsys)
    one_line_error(code, err, f"'{option}'", "not a finite number")


@pytest.mark.parametrize("value", ["-1", "0", "99999999999999999999999"])
@pytest.mark.parametrize("command,option,required", INT_OPTIONS, ids=[f"{c}:{o}" for c, o, _ in INT_OPTIONS])
def test_odd_integer_options_never_give_a_traceback(command, option, required, value, capsys, monkeypatch):
    """Refused with one line, or accepted and stopped at the (stubbed) model load: never a traceback.
    Values that only the model can judge (a length against its context) are tested with real models above."""
    from vecgen.errors import VecgenError

    def stop(*a, **k):
        raise VecgenError("stopped before loading")

    for target in ("vecgen.api.load_model", "vecgen.models.load_model", "vecgen.models.loader.load_model",
                   "vecgen.models.load_tokenizer", "vecgen.models.loader.load_tokenizer",
                   "vecgen.training.load_data", "vecgen.training.train"):  # vecgen train: where its work starts
        monkeypatch.setattr(target, stop)
    code, _, err = cli([*command.split(), *required, option, value], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err


def test_finite_out_of_range_floats_name_the_field(capsys, monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli(["generate", "x", "--temperature", "3"], capsys)
    one_line_error(code, err, "temperature=3.0")
    code, _, err = cli(["softprompt", "train", "--lr", "-1"], capsys)
    one_line_error(code, err, "lr")


def test_library_configs_refuse_nan_and_inf():
    from vecgen.config import SamplingConfig
    from vecgen.decoding.mixing import MixingConfig
    from vecgen.softprompt import TrainConfig

    for make in (lambda: SamplingConfig.create(top_p=math.nan), lambda: MixingConfig.create(beta=math.inf),
                 lambda: TrainConfig.create(lr=math.inf)):
        with pytest.raises(ConfigError):
            make()


# ---------------------------------------------------------------------------------------------
# 5. Unscorable answers are refused when the task file is read, naming the line.


@pytest.mark.parametrize("answer", ["four", "NaN", "1e400", "inf", "x+1"])
def test_unscorable_answers_are_refused_with_their_line(answer, tmp_path):
    from vecgen.benchmarks_data import load_benchmark

    p = tmp_path / "tasks.jsonl"
    # typed numeric: the checker could never count an output correct
    p.write_text(json.dumps({"question": "q1", "answer": "4"}) + "\n"
                 + json.dumps({"question": "q2", "answer": answer, "answer_type": "numeric"}) + "\n")
    with pytest.raises(ConfigError, match=r"tasks.jsonl line 2: answer .* can never be scored"):
        load_benchmark(str(p))
    # untyped beside a number: it reads as another answer type, and the file must say which it means
    p.write_text(json.dumps({"question": "q1", "answer": "4"}) + "\n" + json.dumps({"question": "q2", "answer": answer})
                 + "\n")
    with pytest.raises(ConfigError, match=r"mixes answer types without 'answer_type': line 2 reads as exact"):
        load_benchmark(str(p))


@pytest.mark.parametrize("answer", ["18", "-2.5", "1,200", "3/4", "\\frac{1}{2}", "$5", "12.5%"])
def test_scorable_answers_load(answer, tmp_path):
    from vecgen.benchmarks_data import load_benchmark

    p = tmp_path / "tasks.jsonl"
    p.write_text(json.dumps({"question": "q", "answer": answer}) + "\n")
    assert load_benchmark(str(p))[0].answer == answer


# ---------------------------------------------------------------------------------------------
# 6. Every model spec and option is resolved before anything is loaded.


def test_concept_validates_every_model_before_loading_the_first(tiny_model_dir, tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    good = tiny_model_dir("qwen2")
    code, _, err = cli(["concept", "--models", f"{good},nosuch", "-p", "Hi", "--out-dir", tmp_path / "runs"], capsys)
    one_line_error(code, err, "unknown model 'nosuch'")
    code, _, err = cli(["concept", "--models", good, "-p", "Hi", "--device", "tpu9", "--out-dir", tmp_path / "runs"],
                       capsys)
    one_line_error(code, err, "unknown device 'tpu9'")
    assert not (tmp_path / "runs").exists()


def test_check_model_spec_reads_no_weights(tiny_model_dir, tmp_path):
    from vecgen.models import check_model_spec

    assert check_model_spec(str(tiny_model_dir("qwen2"))) == "local"
    assert check_model_spec("default") in ("packaged", "hub")
    assert check_model_spec("Qwen/Qwen3-0.6B") == "hub"
    with pytest.raises(ModelNotFoundError):
        check_model_spec("nosuch")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        check_model_spec(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# 7 / 10. Files and error text: one line, no traceback.


_CONFIG = ["generate", "x", "--config"]
_TASKS = ["think", "--benchmark"]
_TEXTS = ["vocab", "english", "--tokenizer", "gpt2", "--texts"]


@pytest.mark.parametrize("argv,content,fragment", [
    (_CONFIG, None, "is a folder"),
    (_CONFIG, b"\xff\xfe\x00bad", "not UTF-8 text"),
    (_CONFIG, b"a: [1,\n b", "not valid YAML at line 2, column 3"),
    (_CONFIG, b"- just\n- a list\n", "must contain a mapping"),
    (_CONFIG, b"temperature: .nan\n", "temperature"),
    (_TASKS, None, "is a folder"),
    (_TASKS, b"\x00\xff\xfe", "not UTF-8"),
    (_TASKS, b'{"question": "q"', "invalid JSON"),
    (_TEXTS, None, "is a folder"),
    (_TEXTS, b"\xff\xfe", "not UTF-8"),
])
def test_bad_files_are_one_line(argv, content, fragment, tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    path = tmp_path / ("file.jsonl" if argv is _TASKS else "file.yaml")
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    extra = [] if argv is _CONFIG else ["--out-dir", tmp_path / "runs"]
    code, _, err = cli([*argv, path, *extra], capsys)
    one_line_error(code, err, fragment)


def test_usage_errors_are_one_line(capsys):
    code, _, err = cli(["generate", "x", "--no-such-option"], capsys)
    one_line_error(code, err, "No such option: --no-such-option", "vecgen generate --help")
    code, _, err = cli(["generate"], capsys)
    one_line_error(code, err, "Missing argument")


def test_a_bad_checkpoint_never_suggests_unsafe_loading(tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(pickle.dumps({"format": "x", "obj": _Touch(str(tmp_path / "UNPICKLED"))}))
    for argv in (["softprompt", "inspect", "-c", bad], ["softprompt", "eval", "-c", bad]):
        code, _, err = cli(argv, capsys)
        one_line_error(code, err, "is not a vecgen soft-prompt checkpoint")
        assert "weights_only" not in err
    assert not (tmp_path / "UNPICKLED").exists()


def test_changed_settings_are_named_not_dumped():
    from vecgen.config import changed_settings

    old = {"model": "m", "methods": {"cot": {"max_think_tokens": 320, "mixing": {"rule": "soft"}}, "direct": {"a": 1}}}
    new = {"model": "m", "methods": {"cot": {"max_think_tokens": 32, "mixing": {"rule": "soft"}}, "direct": {"a": 1}}}
    assert changed_settings(old, new) == ["methods.cot.max_think_tokens: 320 → 32"]
    many = changed_settings({f"k{i}": i for i in range(10)}, {f"k{i}": -i for i in range(1, 11)}, limit=3)
    assert len(many) == 4 and many[-1] == "and 8 more"


# ---------------------------------------------------------------------------------------------
# 8. A run folder is locked: a second process gets one line naming the holder.


def test_a_second_process_on_a_locked_run_is_refused_naming_the_holder(tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom vecgen.locks import exclusive\n"
        f"with exclusive({str(run / '.vecgen.lock')!r}, wait=False, what='x'):\n"
        "    print('held', flush=True)\n    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = cli(["think", "-b", "arena", "--limit", "1", "--out-dir", tmp_path / "runs", "--run-name", "r"],
                           capsys)
        one_line_error(code, err, f"run folder {run} is in use by pid {holder.pid}", "choose another --run-name")
    finally:
        holder.kill()
        holder.wait()
    assert list(run.iterdir()) == [run / ".vecgen.lock"]  # the refused run wrote nothing


def test_locks_leave_no_file_and_wake_waiters(tmp_path):
    from vecgen.locks import LockedError, exclusive

    lock = tmp_path / "x.lock"
    with exclusive(lock, wait=False, what="x"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        waiter = subprocess.Popen([sys.executable, "-c", (
            "from vecgen.locks import exclusive\n"
            f"with exclusive({str(lock)!r}, wait=True, what='x'):\n    print('got it')\n")],
            stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiter.poll() is None  # still waiting
        probe = subprocess.run([sys.executable, "-c", (
            "from vecgen.locks import exclusive, LockedError\n"
            f"try:\n    exclusive({str(lock)!r}, wait=False, what='x').__enter__()\n"
            "except LockedError as e:\n    print(e)\n")], capture_output=True, text=True)
        assert f"x is in use by pid {os.getpid()}" in probe.stdout
    assert waiter.communicate(timeout=60)[0].strip() == "got it"
    assert not lock.exists()
    with exclusive(lock, wait=False, what="x"):  # free again, and taken again at once
        again = subprocess.run([sys.executable, "-c", (
            "import sys\nfrom vecgen.locks import exclusive, LockedError\n"
            f"try:\n    exclusive({str(lock)!r}, wait=False, what='x').__enter__()\n"
            "except LockedError:\n    sys.exit(3)\n")])
        assert again.returncode == 3
    with pytest.raises(LockedError):  # a second lock of the same file in this process is refused too (flock)
        with exclusive(lock, wait=False, what="x"), exclusive(lock, wait=False, what="x"):
            pass


# ---------------------------------------------------------------------------------------------
# 9. Ctrl-C, torn lines and leftovers.


def _default_sigint() -> None:
    """In the child: Ctrl-C handling as in a terminal (a shell's background job, such as a CI runner, may
    have inherited SIGINT ignored, and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept_and_how_to_resume(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "vecgen", "think", "-b", "gsm8k", "--limit", "400", "-m", str(tiny_model_dir("qwen2")),
            "--batch-size", "2", "--max-think-tokens", "64", "--out-dir", str(runs), "--run-name", "ctrlc"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    records = runs / "ctrlc" / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (records.exists() and records.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"interrupted: kept {runs / 'ctrlc'} (records.jsonl:" in " ".join(err.split())
    assert "rerun the same command with --run-name ctrlc to resume" in " ".join(err.split())
    assert not (runs / "ctrlc" / ".vecgen.lock").exists()


@pytest.mark.slow
def test_generate_ctrl_c_says_nothing_was_written(tmp_path):
    from helpers.models import save_tiny_model

    long = save_tiny_model(tmp_path / "long", "qwen2", max_position_embeddings=1_000_000)
    argv = [sys.executable, "-m", "vecgen", "generate", "Hello", "-m", str(long), "-n", "500000", "--temperature", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert proc.stdout.read(5) == "Hello"  # decoding has started
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "interrupted: nothing was being written" in err
    assert out.endswith("\n")  # the partial output ends its line: the "interrupted" line is not glued onto it


def test_opening_a_run_cuts_a_torn_line_and_removes_orphan_temp_files(tmp_path):
    from vecgen.reports import RunWriter

    run = tmp_path / "r"
    run.mkdir()
    good = json.dumps({"id": 1}) + "\n" + json.dumps({"id": 2}) + "\n"
    (run / "records.jsonl").write_text(good + '{"id": 3, "tru')
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half")
    (run / ".results.json.x.tmp").write_bytes(b"half")
    (run / ".tokens.partial").mkdir()
    with RunWriter("think", name="r", root=tmp_path) as w:
        assert (run / "records.jsonl").read_text() == good
        assert [r["id"] for r in w.read_records()] == [1, 2]
        w.append_record({"id": 3})
    assert sorted(p.name for p in run.iterdir()) == [".vecgen-run.json", "records.jsonl"]
    assert [json.loads(x)["id"] for x in (run / "records.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_a_failed_start_removes_the_run_folder_it_created(tmp_path):
    from vecgen.reports import RunWriter

    with pytest.raises(RuntimeError):
        with RunWriter("think", name="r", root=tmp_path):
            raise RuntimeError("model failed to load")
    assert not (tmp_path / "r").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with RunWriter("think", name="kept", root=tmp_path):
            raise RuntimeError("x")
    assert (tmp_path / "kept").is_dir()  # a folder the user made is left in place


# ---------------------------------------------------------------------------------------------
# 11. Soft-prompt checkpoints name local models by absolute path.


def test_soft_prompt_configs_and_checkpoints_store_absolute_model_paths(tiny_model_dir, tmp_path, monkeypatch):
    from vecgen.models import load_model
    from vecgen.softprompt import TrainConfig
    from vecgen.checkpoints import model_identity

    src = Path(tiny_model_dir("qwen2"))
    monkeypatch.chdir(src.parent)
    rel = f"./{src.name}"
    assert TrainConfig.create(model=rel).model == str(src.resolve())
    assert TrainConfig.create(model="default").model == "default"
    assert model_identity(load_model(rel, device="cpu"))["name"] == str(src.resolve())


def test_eval_of_a_checkpoint_with_a_stale_relative_model_path_says_to_pass_model(tmp_path, capsys, monkeypatch):
    import torch

    never_load(monkeypatch)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"format": "vecgen-softprompt/1", "model": {"name": "./gone-model"}, "soft_prompt": torch.zeros(1, 2)},
               ckpt)
    code, _, err = cli(["softprompt", "eval", "-c", ckpt], capsys)
    one_line_error(code, err, "the checkpoint's model './gone-model' is not found from here", "pass --model")


# ---------------------------------------------------------------------------------------------
# The machine's state (full disk, read-only folder) is not a bug; other OS errors are.


@pytest.mark.parametrize("err,code,fragment", [
    (errno.ENOSPC, 2, "No space left on device (runs/x/report.md); free some space"),
    (errno.EROFS, 2, "Read-only file system"),
    (errno.ENOENT, 1, "internal error"),
])
def test_os_errors_of_the_machine_are_one_line_and_others_are_bugs(err, code, fragment, capsys, monkeypatch):
    def fail(*a, **k):
        raise OSError(err, os.strerror(err), "runs/x/report.md")

    monkeypatch.setattr("vecgen.api.load_model", fail)
    got, _, out = cli(["generate", "x"], capsys)
    assert got == code and fragment in out


def test_an_out_dir_that_cannot_be_created_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli(["vocab", "english", "--out-dir", blocker / "sub", "--run-name", "v"], capsys)
    one_line_error(code, err, "cannot create the run folder", "choose another --out-dir")


def test_an_empty_marker_is_refused_before_loading(capsys, monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli(["think", "--marker", "  "], capsys)
    one_line_error(code, err, "--marker is empty")
