"""The run viewer's data (no browser): per-step trace records, the page's payload, `vecgen view` and its errors.
The page itself is tested in Chromium by tests/browser/test_view_browser.py."""

import json
import math
from pathlib import Path

import pytest
import torch

from vecgen.reports.view import VIEW_FILE, render_html, view_payload, write_view
from vecgen.thinking import ThinkConfig, run_thinking
from vecgen.thinking.records import TRACE_TOP_K, ThinkRecord
from vecgen.thinking.markers import EndMarker

from helpers.synthetic import HOSTILE_QUESTION
from helpers.cli import cli, one_line_error


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]


def test_think_records_hold_one_step_per_thinking_token(tiny_runs):
    recs = records(tiny_runs["think"])
    assert len(recs) == 9
    for r in recs:
        steps = r["steps"]
        assert len(steps) == r["think_tokens"], r["method"]
        for s in steps:
            weights = [w for _, w in s["top"]]
            assert 1 <= len(weights) <= TRACE_TOP_K
            assert weights == sorted(weights, reverse=True) and sum(weights) <= 1.0 + 1e-3
            # the trace token is the top-1 of the mixture (soft) and the argmax of the distribution (greedy cot)
            assert s["top"][0][0] == s["token"]
        if r["method"] == "cot":  # greedy: the untruncated softmax, so the alternatives are there
            assert all(len(s["top"]) == TRACE_TOP_K and s["mix_entropy"] == 0.0 for s in steps)
        if r["method"] == "soft":
            assert any(s["mix_entropy"] > 0 for s in steps)
            # the mixture entropy of a step is at least that of its recorded top weights' share
            assert all(s["mix_entropy"] >= 0 for s in steps)
    assert "".join(s["token"] for s in recs[3]["steps"]) == recs[3]["trace"]


def first_step(lm, method):
    """Thinking on "Hello there" with top-5 records, and the model's own last-position logits ``(1, V)``."""
    ids = lm.tokenizer("Hello there", add_special_tokens=False)["input_ids"]
    out = run_thinking(lm, [ids], ThinkConfig.create(method=method, max_think_tokens=4), EndMarker(lm.tokenizer, "Answer:"),
                       trace_top_k=5)[0]
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[:, -1, : lm.n_real_vocab].float()
    return out, logits


def test_greedy_step_weights_are_the_models_softmax(tiny_lm):
    """Step 0 of greedy thinking records the top-k of softmax(logits) of the prompt's last position."""
    out, logits = first_step(tiny_lm("qwen2"), "cot")
    p, i = torch.topk(torch.softmax(logits[0], -1), 5)
    assert out.top_ids[0] == i.tolist()
    # float32 forward of the same model: the engine's step and this call differ only by kernel order
    torch.testing.assert_close(torch.tensor(out.top_weights[0]), p, rtol=1e-4, atol=1e-6)
    assert out.top_tokens[0][0] == out.trace_tokens[0] and len(out.top_ids) == out.think_tokens


def test_soft_step_weights_are_the_fed_mixture(tiny_lm):
    """Step 0 of soft thinking records the soft rule's mixture at Soft Thinking's sampling (same seed)."""
    from vecgen.decoding.mixing import MixingConfig, get_rule
    from vecgen.decoding.sampling import make_generator

    out, logits = first_step(tiny_lm("qwen2"), "soft")
    cfg = ThinkConfig.create(method="soft")
    mix = get_rule("soft")(logits, cfg.think_sampling, MixingConfig(rule="soft"), None,
                           make_generator(cfg.think_sampling.seed))
    ref_ids, ref_w = mix.top(5)
    assert out.top_ids[0] == ref_ids[0].tolist()
    torch.testing.assert_close(torch.tensor(out.top_weights[0]), ref_w[0].float(), rtol=1e-4, atol=1e-6)


def test_soft_with_a_one_token_rule_records_the_distribution(tiny_lm):
    """``soft`` with the ``onehot`` rule feeds one token: its steps record the sampler's distribution (5 weights),
    not a one-entry "mixture"; the viewer labels them the same way."""
    from vecgen.thinking.report import step_weights

    lm = tiny_lm("qwen2")
    ids = lm.tokenizer("Hello there", add_special_tokens=False)["input_ids"]
    cfg = ThinkConfig.create(method="soft", mixing={"rule": "onehot"}, max_think_tokens=3)
    out = run_thinking(lm, [ids], cfg, EndMarker(lm.tokenizer, "Answer:"), trace_top_k=5)[0]
    assert all(len(w) == 5 and w[0] < 1.0 for w in out.top_weights)
    assert step_weights(cfg.model_dump(mode="json")) == "distribution"
    assert step_weights(ThinkConfig.create(method="soft").model_dump(mode="json")) == "mixture"


def test_payload_round_trips_the_records(tiny_runs):
    run = tiny_runs["think"]
    payload = view_payload(run)
    think = payload["think"]
    assert think["methods"] == ["direct", "cot", "soft"] and think["kinds"]["soft"] == "mixture"
    assert think["kinds"]["cot"] == "distribution"
    assert [it["id"] for it in think["items"]] == ["t1", "t2", "t3"]
    toks = think["tokens"]
    for r in records(run):
        row = next(it for it in think["items"] if it["id"] == r["id"])["r"][r["method"]]
        assert row["c"] == int(r["correct"]) and row["s"] == r["stop_reason"] and row["n"] == r["think_tokens"]
        if r["steps"]:
            assert [toks[t] for t in row["t"]] == [s["token"] for s in r["steps"]]
            for j, s in enumerate(r["steps"]):
                assert [toks[t] for t in row["k"][j]] == [t for t, _ in s["top"]]
                assert row["w"][j] == [int(1000 * w + 0.5) for _, w in s["top"]]  # thousandths, rounded half up
            assert row["h"] == [int(1000 * s["entropy"] + 0.5) for s in r["steps"]]


def test_every_run_command_writes_the_page(tiny_runs):
    for kind, run in tiny_runs.items():
        page = (run / VIEW_FILE).read_text()
        assert page.startswith("<!DOCTYPE html>") and 'id="vecgen-data"' in page, kind
        assert "http://" not in page and "https://" not in page, kind  # self-contained: nothing to fetch
    soft = json.loads((tiny_runs["softprompt"] / "results.json").read_text())["results"]["soft_prompt"]
    assert len(soft["vectors"]) == 2 and len(soft["vectors"][0]["nearest"]) == 5


def test_markup_in_records_cannot_end_the_data_block(tiny_runs):
    page = (tiny_runs["think"] / VIEW_FILE).read_text()
    data = page.split('<script id="vecgen-data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data
    payload = json.loads(data)
    assert payload["think"]["items"][0]["q"] == HOSTILE_QUESTION


def test_nan_in_records_becomes_null():
    page = render_html({"command": "x", "name": "n", "results": {"a": float("nan"), "b": [1.0, math.inf]}})
    data = json.loads(page.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert data["results"] == {"a": None, "b": [1.0, None]}


def test_old_records_without_steps_show_their_trace_text(tmp_path, tiny_runs):
    run = tmp_path / "old"
    run.mkdir()
    (run / "results.json").write_text((tiny_runs["think"] / "results.json").read_text())
    lines = []
    for r in records(tiny_runs["think"]):
        r.pop("steps")
        lines.append(json.dumps(r))
    (run / "records.jsonl").write_text("\n".join(lines) + "\n{\"method\": \"co")  # and a torn last line
    think = view_payload(run)["think"]
    row = think["items"][0]["r"]["cot"]
    cot = next(r for r in records(tiny_runs["think"]) if r["method"] == "cot" and r["id"] == "t1")
    assert "t" not in row and row["tr"] == cot["trace"] != ""
    assert ThinkRecord.from_json(json.loads(lines[0])).steps == []


def test_cli_writes_prints_and_respects_out(tiny_runs, tmp_path):
    target = tmp_path / "page.html"
    res = cli(["view", str(tiny_runs["concept"]), "--out", str(target)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(target) and target.read_text().startswith("<!DOCTYPE html>")
    assert write_view(tiny_runs["concept"]) == tiny_runs["concept"] / VIEW_FILE


@pytest.mark.parametrize("setup,fragment", [
    (lambda p: p / "missing", "is not a folder"),
    (lambda p: p, "is not a vecgen run folder (no results.json)"),
    (lambda p: (p / "results.json").write_text("{not json") and p, "is not readable JSON"),
    (lambda p: (p / "results.json").write_text("[1, 2]") and p, "is not a vecgen results file"),
])
def test_bad_run_folders_are_one_line_exit_2(tmp_path, capsys, setup, fragment):
    code, _, err = cli(["view", setup(tmp_path)], capsys)
    one_line_error(code, err, fragment)


def test_unwritable_out_is_one_line(tiny_runs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = cli(["view", tiny_runs["concept"], "--out", blocker / "x.html"], capsys)
    one_line_error(code, err, "cannot write")


def test_missing_or_odd_numbers_in_steps_are_shown_as_missing():
    from vecgen.reports.view import StringTable, compact_steps

    strings = StringTable()
    cols = compact_steps([{"token": "a", "entropy": None, "mix_entropy": 0.1235, "top": [["a", 0.9], ["b", "x"]]},
                   {"token": "b", "entropy": float("nan"), "mix_entropy": 0.0, "top": []}], strings)
    assert cols == {"t": [0, 1], "h": [None, None], "m": [124, 0], "k": [[0, 1], []], "w": [[900, None], []]}
    assert strings.items == ["a", "b"]


@pytest.mark.parametrize("opened", [True, False])
def test_open_hands_the_page_to_the_browser(tiny_runs, tmp_path, monkeypatch, opened):
    import webbrowser

    calls = []
    monkeypatch.setattr(webbrowser, "open", lambda url: calls.append(url) or opened)
    target = tmp_path / "page.html"
    res = cli(["view", str(tiny_runs["think"]), "--out", str(target), "--open"])
    assert res.exit_code == 0, res.output
    assert calls == [target.resolve().as_uri()]
    assert ("no web browser found here" in res.output) is (not opened)


def test_switch_and_gated_traces_carry_which_steps_were_explicit():
    """A trace that mixes latent and explicit steps (switch, gated) gets the ``x`` column the page underlines; a
    trace of one kind (soft, cot, or records without modes) does not, so their pages stay as they were."""
    from vecgen.reports.view import StringTable, compact_steps

    step = {"token": "a", "entropy": 0.5, "mix_entropy": 0.25, "top": [["a", 0.9]]}
    mixed = [{**step, "mode": "latent"}, {**step, "mode": "explicit"}, {**step, "mode": "latent"}]
    assert compact_steps(mixed, StringTable())["x"] == [0, 1, 0]
    assert "x" not in compact_steps([{**step, "mode": "latent"}] * 2, StringTable())
    assert "x" not in compact_steps([step, step], StringTable())
    js = (Path(__file__).resolve().parents[2] / "src/vecgen/data/view/view.js").read_text()
    assert 'c.classList.add("explicit")' in js and "underlined = explicit step" in js
