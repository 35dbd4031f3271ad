"""The probes of issue 17 on the real default model: the mechanics hold at full size (24 layers, 151,936 rows)."""

import json

import pytest
import torch

from helpers.cli import cli

from vecgen.backends.contract import build_batch
from vecgen.probes.logit_lens import lens_logprobs
from vecgen.probes.sweep import run_superposition

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ids_logprobs(lm, ids):
    state = lm.backend.prefill(build_batch(lm, [ids]))
    return torch.log_softmax(state.logits[0, : lm.n_real_vocab].float(), -1).cpu()


def test_sweep_endpoints_and_the_model_pair_on_the_default_model(default_lm):
    lm = default_lm
    comma, there = lm.encode(",")[0], lm.encode(" there")[0]
    res = run_superposition(lm, ["Once upon a time"], user_pairs=[("Once upon a time", comma, there)],
                            alphas=[0, 0.5, 1], mixture_top_k=0)
    model_pair, user_pair = res.pairs
    ids = lm.encode("Once upon a time")
    assert [model_pair.a, model_pair.b] == _ids_logprobs(lm, ids).topk(2).indices.tolist()  # the model's own top-2
    assert model_pair.a == comma and user_pair.source == "user"  # "," is the default model's top-1 here
    # α = 1 / 0 continue exactly as after the discrete token (float32 rounding of the cached path only; 24 layers)
    after_comma = _ids_logprobs(lm, ids + [comma])
    assert user_pair.next_a == int(after_comma.argmax())
    assert user_pair.p_next_a[-1] == pytest.approx(float(after_comma.exp().max()), abs=1e-4)
    assert 0.0 <= user_pair.position[1] <= 1.0 and user_pair.divergence > 0.1


def test_lens_last_layer_is_the_default_models_output(default_lm):
    lm = default_lm
    ids = lm.encode("The capital of France is")
    lens = lens_logprobs(lm, [ids])  # (25, 1, 1, V)
    assert lens.shape[0] == 25
    torch.testing.assert_close(lens[-1, 0, 0], _ids_logprobs(lm, ids), atol=1e-4, rtol=0)  # float32 rounding
    assert lm.tokenizer.decode([int(lens[-1, 0, 0].argmax())]) == " Paris"


def test_analogy_command_on_the_default_model(capsys, tmp_path):
    code, out, err = cli(["probe", "analogy", "--no-frames", "--out-dir", tmp_path, "--run-name", "a"], capsys)
    assert code == 0, err
    acc = json.loads((tmp_path / "a" / "results.json").read_text())["results"]["accuracy"]
    # 119 of the 126 shipped quadruples have four single-token words in this tokenizer (7 skipped: Hanoi, empress,
    # duchess, swam are 2–3 tokens)
    assert acc["input"]["all"]["n"] == 119 and acc["output"]["all"]["n"] == 119
    for space in acc.values():
        assert 0.0 <= space["all"]["top1"] <= space["all"]["top5"] <= 1.0
