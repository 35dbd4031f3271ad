"""`vecgen concept` and `vecgen diagnose embeds` from the command line (in-process, tiny models)."""

import json
import sys

import pytest

from helpers.cli import cli


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--n", "0"], "N=0"),
        (["--n", "2,x"], "expected comma-separated integers"),
        (["-p", "  "], "empty prompt"),
        (["--rule", "telepathy"], "unknown mixing rule 'telepathy'"),
        (["--methods", "nearest,poetry"], "unknown translation method 'poetry'"),
        (["--top-p", "0"], "top_p=0.0"),
        (["--min-p", "1.5"], "min_p=1.5"),
        (["--top-k", "-1"], "top_k=-1"),
        (["--temperature", "3"], "temperature=3.0"),
        (["--max-topk", "0"], "max_topk=0"),
        (["--noise", "loud"], "noise="),
        (["--translation-tokens", "0"], "translation_tokens=0"),
    ],
)
def test_bad_input_is_one_clear_line(monkeypatch, capsys, tmp_path, args, fragment):
    code, out, err = cli_args("concept", *args, "--out-dir", str(tmp_path))
    assert code == 2, (out, err)
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3  # one message (rich may wrap a long line)
    assert not list(tmp_path.iterdir())  # rejected before any run folder is made


def test_instruction_without_chat_template_fails_before_loading(monkeypatch, capsys, tmp_path, tiny_model_dir):
    code, _, err = cli_args("concept", "-m", str(tiny_model_dir("gpt2")), "--methods",
                       "nearest,instruction", "--out-dir", str(tmp_path))
    assert code == 2 and "needs a chat template" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_concept_end_to_end_on_a_tiny_model(monkeypatch, capsys, tmp_path, tiny_model_dir):
    code, out, err = cli_args("concept", "-m", str(tiny_model_dir("qwen2")), "-p", "Hello there",
                         "--n", "1,2", "--translation-tokens", "2", "--rule", "moi", "--beta", "0.5",
                         "--temperature", "0.9", "--seed", "3", "--run-name", "c", "--out-dir", str(tmp_path))
    assert code == 0, err
    assert "Vector 1 top weights:" in out and "instruction" in out
    run = tmp_path / "c"
    for name in ("results.json", "records.jsonl", "report.md", "concept_weights.png", "vectors.pt"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    cfg = results["config"]["concept"]
    assert cfg["mixing"]["rule"] == "moi" and cfg["mixing"]["beta"] == 0.5
    assert cfg["sampling"]["temperature"] == 0.9 and cfg["sampling"]["seed"] == 3
    assert [r["n"] for r in results["results"]["records"]] == [1, 2]


def test_side_by_side_two_models(monkeypatch, capsys, tmp_path, tiny_model_dir):
    a, b = str(tiny_model_dir("qwen2")), str(tiny_model_dir("gpt2"))
    code, out, err = cli_args("concept", "--models", f"{a},{b}", "-p", "Hi", "--n", "1",
                         "--methods", "nearest,direct", "--translation-tokens", "1", "--run-name", "s",
                         "--out-dir", str(tmp_path))
    assert code == 0, err
    assert "side by side" in out
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [m["family"] for m in results["model"]] == ["qwen2", "gpt2"]
    report = (tmp_path / "s" / "report.md").read_text()
    assert "## Side by side" in report
    table = report.split("## Side by side")[1]
    for method in ("vector 1 top", "nearest", "direct"):  # one row per (prompt, N, method), one cell per model
        row = next(line for line in table.splitlines() if line.startswith(f"| Hi | 1 | {method} |"))
        assert row.count("|") == 6 and "—" not in row


def test_diagnose_embeds_cli_args(tmp_path, tiny_model_dir):
    code, out, err = cli_args("diagnose", "embeds", "-m", str(tiny_model_dir("qwen2")), "-n", "2",
                         "--n-vectors", "2", "--run-name", "d", "--out-dir", str(tmp_path))
    assert code == 0, err
    assert "identical" in out
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    assert results["results"]["ids_equal_embeddings"] is True and len(results["results"]["rows"]) == 10
    code, _, err = cli_args("diagnose", "embeds", "-m", str(tiny_model_dir("qwen2")), "--n-vectors",
                       "0", "--out-dir", str(tmp_path / "bad"))
    assert code == 2 and "n_vectors=0" in err and not (tmp_path / "bad").exists()


def cli_args(*args):
    """``vecgen *args`` through the one test runner (:func:`helpers.cli.cli`)."""
    return cli(args)
