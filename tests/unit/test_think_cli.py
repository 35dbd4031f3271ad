"""`vecgen think` on a tiny random model: outputs, resumption, bad input."""

import json

import pytest

from helpers.cli import cli, cli_subprocess, one_line_error

TASKS = [
    {"id": "t1", "question": "What is 2 + 3?", "answer": "5"},
    {"id": "t2", "question": "Tom has 3 apples and buys 4 more. How many apples?", "answer": "7"},
    {"id": "t3", "question": "Halve 10.", "answer": "5"},
]


@pytest.fixture()
def task_file(tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return path


def think_args(model_dir, task_file, out_dir, *extra):
    return ["think", "--benchmark", str(task_file), "--model", str(model_dir), "--methods", "direct,cot,soft",
            "--batch-size", "2", "--max-think-tokens", "3", "--max-answer-tokens", "2", "--run-name", "r",
            "--out-dir", str(out_dir), "--device", "cpu", *extra]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]


def test_think_writes_records_results_report_and_plot_then_resumes(tiny_model_dir, task_file, tmp_path, monkeypatch):
    import vecgen.thinking.evaluate as ev

    ran = []
    real = ev.run_thinking

    def counting(lm, prompts, cfg, marker, **kw):
        ran.append((cfg.method, len(prompts), kw.get("max_batch")))
        return real(lm, prompts, cfg, marker, **kw)

    monkeypatch.setattr(ev, "run_thinking", counting)
    out = tmp_path / "runs"
    res = cli(think_args(tiny_model_dir("qwen2"), task_file, out))
    assert res.exit_code == 0, res.output
    run_dir = out / "r"
    recs = records(run_dir)
    assert len(recs) == 9 and {(r["method"], r["id"]) for r in recs} == {(m, t["id"]) for m in ("direct", "cot", "soft")
                                                                          for t in TASKS}
    for r in recs:
        assert {"question", "trace", "answer", "correct", "tokens", "seconds", "pred", "stop_reason"} <= set(r)
        assert r["think_tokens"] == (0 if r["method"] == "direct" else 3)
        assert r["tokens"] == r["think_tokens"] + r["answer_tokens"]
    # continuous batching: one chunk (up to 4 batches' worth of items) per method, through rows of --batch-size
    assert sorted(ran) == sorted([("direct", 3, 2), ("cot", 3, 2), ("soft", 3, 2)])
    results = json.loads((run_dir / "results.json").read_text())
    summary = results["results"]
    assert set(summary) == {"direct", "cot", "soft"} and summary["cot"]["n"] == 3
    lo, hi = summary["cot"]["ci95"]
    assert 0.0 <= lo <= (summary["cot"]["accuracy"] or 0.0) <= hi <= 1.0
    assert results["config"]["marker"] == "Answer:" and results["model"]["family"] == "qwen2"
    pairs = {(c["a"], c["b"]): c for c in results["paired"]}
    assert set(pairs) == {("direct", "cot"), ("direct", "soft"), ("cot", "soft")}
    by = {(r["method"], r["id"]): r["correct"] for r in recs}
    c = pairs[("cot", "soft")]
    assert c["n"] == 3 and c["both"] + c["only_a"] + c["only_b"] + c["neither"] == 3
    assert c["only_a"] == sum(by[("cot", t["id"])] and not by[("soft", t["id"])] for t in TASKS)
    report = (run_dir / "report.md").read_text()
    assert "95% CI" in report and "| soft | 3 |" in report and "Trace:" in report
    assert "| cot vs soft | 3 |" in report and "McNemar" in report
    assert (run_dir / "think.png").stat().st_size > 1000

    # Interrupt: keep the first 4 records (a torn 5th line, as after a crash) and resume.
    lines = (run_dir / "records.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "records.jsonl").write_text("".join(lines[:4]) + lines[4][:10])
    kept = {(r["method"], r["id"]) for r in records_safe(run_dir)}
    ran.clear()
    res = cli(think_args(tiny_model_dir("qwen2"), task_file, out))
    assert res.exit_code == 0, res.output
    assert sum(n for _, n, _ in ran) == 9 - len(kept)  # only the missing items ran
    again = records_safe(run_dir)
    assert len({(r["method"], r["id"]) for r in again}) == 9 and len(again) == 9

    # Static batching (for comparisons) runs batches of --batch-size items; it is not a resume setting.
    ran.clear()
    res = cli(think_args(tiny_model_dir("qwen2"), task_file, out, "--static-batching", "--run-name", "s"))
    assert res.exit_code == 0, res.output
    assert sorted(ran) == sorted([(m, n, None) for m in ("direct", "cot", "soft") for n in (2, 1)])
    static = {(r["method"], r["id"]): r["answer"] for r in records(out / "s")}
    assert static == {(r["method"], r["id"]): r["answer"] for r in records(run_dir)}  # the same greedy answers

    # Resuming with different settings is refused.
    res = cli(think_args(tiny_model_dir("qwen2"), task_file, out, "--cold-stop-steps", "7"))
    one_line_error(res.code, res.err, "different settings")


def records_safe(run_dir):
    from vecgen.reports import RunWriter

    return list(RunWriter("think", name=run_dir.name, root=run_dir.parent).read_records())


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--benchmark", "gsm9k"], "unknown benchmark 'gsm9k'"),
        (["--limit", "0"], "--limit=0"),
        (["--methods", "cot,dream"], "unknown method 'dream'"),
        (["--batch-size", "0"], "--batch-size=0"),
    ],
)
def test_bad_options_are_clear_errors(args, fragment, capsys):
    """One line naming the flag (the library names its parameter, ``limit=0``; the command line shows its flag)."""
    code, _, err = cli(["think", *args], capsys)
    one_line_error(code, err, fragment)


@pytest.mark.slow
def test_malformed_task_file_is_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "1"}\n{"question": "b"\n')
    out = cli_subprocess("think", "--benchmark", bad)
    assert out.returncode == 2
    assert "line 2" in out.stderr and "invalid JSON" in out.stderr and "Traceback" not in out.stderr
