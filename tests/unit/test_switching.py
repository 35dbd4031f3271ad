"""``switch`` (SwiReasoning) and ``gated`` (SeLaR-style) thinking: the switching rule on scripted entropies, the
cap, the gate, the anti-collapse push, and their runs on a tiny model (the contract suite runs them on every
backend × family)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding.mixing import Mixture, mix_embeddings, push_from_top1
from vecgen.thinking.markers import EndMarker
from vecgen.thinking.prompts import build_prompt, prompt_style
from vecgen.thinking.runner import ThinkConfig, run_thinking
from vecgen.thinking.switching import SwitchState, gate_is_latent, math_token_ids

SOFT_T1 = SamplingConfig(temperature=1.0)


def test_switch_follows_the_entropy_trend_with_a_window():
    s = SwitchState(window=2)
    modes = []
    for h in [2.0, 1.5, 1.8, 1.9, 2.5, 3.0, 1.0, 0.5, 4.0, 4.0]:
        s.step(h)
        modes.append("L" if s.latent else "E")
    # 2.0 sets the reference; 1.5 < 2.0 → explicit (ref 1.5); 1.8 > 1.5 but stay 1 < 2; 1.9 > 1.5 at stay 2 → latent
    # (ref 1.9); 2.5, 3.0 not below 1.9; 1.0 < 1.9 → explicit (ref 1.0); 0.5 stay 1; 4.0 > 1.0 at stay 2 → latent
    assert "".join(modes) == "LEELLLEELL"
    assert s.switches == 2


def test_the_switch_cap_ends_thinking_at_the_capped_switch():
    s = SwitchState(window=0, max_switches=2)
    ends = [s.step(h) for h in [2.0, 1.0, 3.0, 2.0, 5.0]]
    assert ends == [False, False, False, True, False]
    assert s.switches == 2


def test_the_gate_is_the_normalised_entropy():
    assert gate_is_latent(math.log(10), 10, 1.0)  # uniform over 10: normalised entropy 1
    assert not gate_is_latent(0.2, 10, 0.5) and gate_is_latent(0.6 * math.log(10), 10, 0.5)
    assert not gate_is_latent(5.0, 1, 0.0)  # a one-token mixture is never latent


def test_math_tokens_are_the_papers_symbols(tiny_lm):
    tok = tiny_lm("qwen2").tokenizer
    ids = math_token_ids(tok)
    for s in ["7", "+", "x", "=", "("]:
        assert set(tok.encode(s, add_special_tokens=False)) <= ids
    assert tok.encode(" the", add_special_tokens=False)[0] not in ids


def test_anti_collapse_pushes_the_vector_away_from_the_top1_token():
    E = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([[0.5, 0.3, 0.2]])
    idx = torch.tensor([[4, 1, 2]])
    m = Mixture(w, idx, torch.tensor([4]), None, w)
    pushed = push_from_top1(m, 1.0)
    h = -(w * w.log()).sum() / math.log(3)
    base = (w[0, :, None] * E[idx[0]]).sum(0)
    expected = base + h * (base - E[4])
    torch.testing.assert_close(mix_embeddings(E, pushed)[0], expected, rtol=1e-5, atol=1e-6)  # float32 sums
    torch.testing.assert_close(pushed.weights, w)  # the distribution is unchanged
    torch.testing.assert_close(pushed.vector_weights.sum(-1), torch.ones(1))
    assert push_from_top1(m, 0.0) is m


def _prompts(lm, questions=("What is 2 + 3?", "Halve 10.")):
    style = prompt_style(lm)
    return [lm.encode(build_prompt(lm, q, style, direct=False)) for q in questions]


def test_gated_with_tau_0_is_soft_thinking_and_with_greedy_mixtures_is_cot(tiny_lm):
    lm = tiny_lm("qwen2")
    prompts, marker = _prompts(lm), EndMarker(lm.tokenizer, "Answer:")
    common = dict(max_think_tokens=8, max_answer_tokens=3, cold_stop_tau=0.0, think_sampling=SOFT_T1)
    soft = run_thinking(lm, prompts, ThinkConfig.create(method="soft", **common), marker)
    gated = run_thinking(lm, prompts, ThinkConfig.create(method="gated", gate_tau=0.0, math_explicit=False, **common),
                         marker)
    for s, g in zip(soft, gated):
        assert (s.trace_ids, s.answer_ids) == (g.trace_ids, g.answer_ids)
        assert set(g.modes[:-1] if g.stop_reason == "marker" else g.modes) <= {"latent"}
    cot = run_thinking(lm, prompts, ThinkConfig.create(method="cot", max_think_tokens=8, max_answer_tokens=3,
                                                      cold_stop_tau=0.0), marker)
    never = run_thinking(lm, prompts, ThinkConfig.create(method="switch", switch_window=0, max_think_tokens=8,
                                                         max_answer_tokens=3, cold_stop_tau=0.0,
                                                         think_sampling=SamplingConfig()), marker)
    for c, n in zip(cot, never):  # greedy concept sampling: every mixture is one-hot, so switch = cot
        assert (c.trace_ids, c.answer_ids) == (n.trace_ids, n.answer_ids)


def test_the_cap_forces_the_marker_and_then_the_answer(tiny_lm, monkeypatch):
    """A scripted state machine (tiny random models' entropies barely move) reaches the cap on its 4th step: the
    row's trace stops there (that step is not fed), the marker is forced, then the row answers."""
    import vecgen.thinking.methods.switch as switch_module

    class Scripted(SwitchState):
        def step(self, entropy):
            self.calls = getattr(self, "calls", 0) + 1
            self.latent = self.calls % 2 == 1  # latent, explicit, latent, then the cap
            return self.calls == 4

    monkeypatch.setattr(switch_module, "SwitchState", Scripted)
    lm = tiny_lm("qwen2")
    marker = EndMarker(lm.tokenizer, "Answer:")
    cfg = ThinkConfig.create(method="switch", switch_max=2, max_think_tokens=40, max_answer_tokens=3,
                             cold_stop_tau=0.0, math_explicit=False, think_sampling=SOFT_T1)
    for o in run_thinking(lm, _prompts(lm), cfg, marker):
        assert o.stop_reason == "switch_cap" and o.modes == ["latent", "explicit", "latent"]
        assert o.forced_ids == marker.forced_ids(o.trace_ids) and o.answer_ids


def test_think_runs_switch_and_gated_and_records_modes(tiny_model_dir, tmp_path, capsys):
    from vecgen.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["think", "-m", str(tiny_model_dir("qwen2")), "--methods", "cot,switch,gated", "--limit", "2",
              "--max-think-tokens", "6", "--max-answer-tokens", "2", "--switch-window", "1", "--gate-tau", "0.2",
              "--anti-collapse", "1", "--out-dir", str(tmp_path), "--run-name", "r"])
    assert exc.value.code == 0, capsys.readouterr().err
    recs = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    assert {r["method"] for r in recs} == {"cot", "switch", "gated"}
    for r in recs:
        modes = [s["mode"] for s in r["steps"]]
        assert r["latent_steps"] == modes.count("latent")
        if r["method"] == "cot":
            assert r["latent_steps"] == 0
    settings = json.loads((tmp_path / "r" / "settings.json").read_text())
    assert "switch_window" not in settings["methods"]["cot"] and settings["methods"]["switch"]["switch_window"] == 1
    assert settings["methods"]["gated"]["mixing"]["anti_collapse"] == 1.0
