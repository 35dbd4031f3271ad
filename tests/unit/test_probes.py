"""Probes (issue 17): vector arithmetic on a hand-made embedding and the shipped analogy pairs."""

import pytest
import torch

from vecgen.errors import ConfigError
from vecgen.probes.arithmetic import (
    Quadruple,
    accuracy_by_relation,
    load_pairs,
    make_quadruples,
    solve_analogies,
)


class WordTokenizer:
    """" word" → one id; anything else → two ids (not a single token)."""

    def __init__(self, words):
        self.ids = {" " + w: i for i, w in enumerate(words)}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.ids[text]] if text in self.ids else [0, 0]}


WORDS = ["man", "woman", "king", "queen", "boy", "girl", "apple", "noise"]


def hand_made_space():
    """Axes: 0 royalty, 1 female, 2 child, 3 fruit, 4 other. Rows past the 8 real ones are padding."""
    E = torch.zeros(10, 5)
    E[0] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])  # man
    E[1] = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])  # woman
    E[2] = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])  # king
    E[3] = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])  # queen = king − man + woman exactly
    E[4] = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0])  # boy
    E[5] = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])  # girl = boy − man + woman
    E[6] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.2])  # apple
    E[7] = torch.tensor([0.3, 0.2, 0.1, 0.1, 0.1])  # noise
    E[8] = E[3] * 2.0  # padding rows: cosine 1 with queen's answer vector, never to be returned
    E[9] = E[5]
    return E


def test_arithmetic_on_a_hand_made_embedding():
    E = hand_made_space()
    tok = WordTokenizer(WORDS)
    quads = [Quadruple("gender", "man", "woman", "king", "queen"), Quadruple("gender", "man", "woman", "boy", "girl"),
             Quadruple("gender", "man", "king", "woman", "queen"), Quadruple("gender", "man", "woman", "man", "woman"),
             Quadruple("x", "man", "woman", "king", "unknown-word")]
    hits, skipped = solve_analogies(E, 8, tok, quads, k=3)
    assert skipped == [quads[4]]
    assert [h.rank for h in hits[:3]] == [1, 1, 1]
    assert hits[0].top_ids[0] == 3 and hits[0].top_scores[0] == pytest.approx(1.0, abs=1e-6)
    for h in hits:
        assert not set(h.top_ids) & set(h.ids[:3])  # a, b and c are never answers
        assert all(i < 8 for i in h.top_ids)  # nor padding rows
        assert h.top_scores == sorted(h.top_scores, reverse=True)
    # man : woman :: man : ? — the answer "woman" is b, excluded, so it cannot be found
    assert hits[3].rank is None
    acc = accuracy_by_relation(hits, 3)
    assert acc["gender"] == {"n": 4, "top1": 0.75, "top3": 0.75} and acc["all"]["n"] == 4


def test_quadruples_are_consecutive_pairs_cyclically():
    pairs = {"r": [("a", "A"), ("b", "B"), ("c", "C")], "lonely": [("x", "X")]}
    assert make_quadruples(pairs) == [Quadruple("r", "a", "A", "b", "B"), Quadruple("r", "b", "B", "c", "C"),
                                      Quadruple("r", "c", "C", "a", "A")]


def test_shipped_pairs_give_over_100_single_token_quadruples_for_the_default_tokenizer():
    from vecgen.models import load_tokenizer
    from vecgen.probes.arithmetic import word_token

    pairs = load_pairs()
    assert set(pairs) == {"capital", "gender", "plural", "tense", "comparative"}
    quads = make_quadruples(pairs)
    tok = load_tokenizer("default")
    usable = [q for q in quads if all(word_token(tok, w) is not None for w in (q.a, q.b, q.c, q.d))]
    assert len(quads) >= 120 and len(usable) >= 100


@pytest.mark.parametrize("text,fragment", [
    ("capital\tFrance\n", "line 1: expected relation<TAB>word<TAB>word"),
    ("# only a comment\n\n", "holds no pairs"),
    ("capital\tFrance\tParis\ncapital\t\tRome\n", "line 2"),
])
def test_bad_pairs_files_are_named_with_their_line(tmp_path, text, fragment):
    path = tmp_path / "pairs.tsv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_pairs(path)


# ------------------------------------------------------------------------------------ superposition sweep

import json  # noqa: E402

from helpers.cli import cli, never_load, one_line_error  # noqa: E402

from vecgen.backends.contract import build_batch  # noqa: E402
from vecgen.probes.common import continuation_logprobs, js, kl, next_logprobs  # noqa: E402
from vecgen.probes.sweep import check_alphas, measure_pair, run_superposition, sweep_logprobs  # noqa: E402

ALPHAS = [i / 10 for i in range(11)]


def _ids_logprobs(lm, ids):
    """Next-token log-probabilities after a token-id prompt, one plain prefill (the discrete path)."""
    state = lm.backend.prefill(build_batch(lm, [ids]))
    return torch.log_softmax(state.logits[0, : lm.n_real_vocab].float(), -1).cpu()


@pytest.mark.parametrize("family", ["qwen2", "gpt2", "gemma3"])
def test_alpha_endpoints_reproduce_the_discrete_continuations(tiny_lm, family):
    lm = tiny_lm(family)
    ids = lm.encode("Once upon a time")
    a, b = lm.encode(" there")[0], lm.encode(",")[0]
    sweep = sweep_logprobs(lm, ids, a, b, ALPHAS)  # (11, V)
    # α = 1 feeds exactly e(a) (Gemma: the sqrt(d) scale included). The sweep runs through the KV cache (prompt once,
    # then one vector per row) and the discrete path is one prefill of the whole prompt: the same arithmetic in a
    # different summation order, so float32 rounding (~1e-6 in log-probabilities) is the only allowed difference.
    torch.testing.assert_close(sweep[-1], _ids_logprobs(lm, ids + [a]), atol=1e-5, rtol=0)
    torch.testing.assert_close(sweep[0], _ids_logprobs(lm, ids + [b]), atol=1e-5, rtol=0)
    # an interior α is neither endpoint
    assert float(kl(sweep[5], sweep[0])) > 1e-4 and float(kl(sweep[5], sweep[-1])) > 1e-4


def test_continuations_are_the_same_alone_and_batched_with_other_prompts(tiny_lm):
    lm = tiny_lm("qwen2")
    p1, p2 = lm.encode("Hello"), lm.encode("The capital of France is")
    v = lm.backend.input_rows(torch.tensor([11, 12, 13]))  # (3, d)
    both = continuation_logprobs(lm, [p1, p2], [v[:1], v[1:]], batch_size=8)
    alone = continuation_logprobs(lm, [p2], [v[1:]], batch_size=8)[0]
    # left padding of the shorter prompt must not leak: float32 rounding only (batch shapes differ)
    torch.testing.assert_close(both[1], alone, atol=1e-5, rtol=0)
    assert [t.shape[0] for t in both] == [1, 2]


def _dist(*ps):
    return torch.log(torch.tensor(ps, dtype=torch.float32))


def test_measures_of_a_linear_reading_and_of_a_switch():
    pa, pb = _dist(0.7, 0.2, 0.1), _dist(0.1, 0.1, 0.8)
    linear = torch.stack([torch.log(a * pa.exp() + (1 - a) * pb.exp()) for a in ALPHAS])
    m = measure_pair(linear, ALPHAS)
    assert max(m["kl_linear"]) < 1e-6  # reads the mixture linearly
    assert m["position"] == pytest.approx(ALPHAS, abs=1e-6)
    assert m["switch_alpha"] == pytest.approx(0.5, abs=1e-6) and m["sharpness"] == pytest.approx(1.0, abs=1e-5)
    assert not m["follows_one"]
    step = torch.stack([pa if a > 0.5 else pb for a in ALPHAS])  # follows the larger component
    s = measure_pair(step, ALPHAS)
    assert max(s["kl_nearer"]) < 1e-6 and min(s["kl_linear"][1:-1]) > 0.01
    assert s["follows_one"] and s["sharpness"] == pytest.approx(10.0)
    assert 0.5 <= s["switch_alpha"] <= 0.6
    assert s["next_a"] == 0 and s["next_b"] == 2
    assert s["divergence"] == pytest.approx(float(js(pa, pb)))


def test_js_is_bounded_by_ln2():
    a, b = _dist(1.0, 1e-30), _dist(1e-30, 1.0)
    assert float(js(a, b)) == pytest.approx(0.6931, abs=1e-3)
    assert float(js(a, a)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("bad", [[0.0, 0.5], [0.1, 0.5, 1.0], [0.0, 0.5, 0.9], [0.0, 1.5, 1.0], [0.0, -0.1, 1.0],
                                 [0.0, float("nan"), 1.0]])
def test_bad_alphas_are_refused(bad):
    with pytest.raises(ConfigError):
        check_alphas(bad)


def test_run_superposition_on_a_tiny_model(tiny_lm):
    lm = tiny_lm("qwen2")
    prompts = ["Once upon a time", "The capital of France is", "2 plus 2 equals"]
    user = [("Hello", lm.encode(" world")[0], lm.encode(",")[0])]
    res = run_superposition(lm, prompts, user_pairs=user, alphas=[0, 0.25, 0.5, 0.75, 1], min_divergence=0.0,
                            mixture_top_k=4)
    assert [p.source for p in res.pairs] == ["model"] * 3 + ["user"]
    first = next_logprobs(lm, [lm.encode(p) for p in prompts])
    for p, row in zip(res.pairs, first):  # model pairs are its top-2, a first
        top2 = row.topk(2).indices.tolist()
        assert [p.a, p.b] == top2 and p.p_a >= p.p_b
    assert all(p.informative for p in res.pairs)  # min_divergence 0
    assert res.summary["informative_pairs"] == 4 and res.summary["switch_alpha"]["n"] <= 4
    assert len(res.mixtures) == 3 and all(len(m.ids) == 4 and abs(sum(m.weights) - 1) < 1e-5 for m in res.mixtures)


def test_a_one_token_mixture_is_its_token(tiny_lm):
    lm = tiny_lm("qwen2")
    res = run_superposition(lm, ["Once upon a time"], alphas=[0, 0.5, 1], mixture_top_k=1)
    m = res.mixtures[0]
    assert len(m.ids) == 1 and m.weights == [1.0]
    assert m.kl_linear < 1e-5 and m.kl_top1 < 1e-5 and m.same_argmax_top1


# ------------------------------------------------------------------------------------------ logit lens

from vecgen.probes.logit_lens import first_token_lens, lens_logprobs, lens_trace  # noqa: E402


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "gpt2", "gemma3", "reference"])
def test_lens_at_the_last_layer_equals_the_logits(tiny_lm, family):
    if family == "reference":
        from vecgen.reference import from_transformers

        hf = tiny_lm("qwen2")
        lm = hf.with_model(from_transformers(hf))
    else:
        lm = tiny_lm(family)
    short, long = lm.encode("Hi"), lm.encode("The capital of France is")
    lens = lens_logprobs(lm, [short, long], positions=[0, -1])  # (L + 1, 2, 2, V)
    L = lm.model.config.num_hidden_layers
    assert lens.shape[0] == L + 1
    for row, ids in enumerate((short, long)):
        for j, upto in enumerate((1, len(ids))):
            expect = _ids_logprobs(lm, ids[:upto])
            # left padding (the short row) and a longer forward than the plain prefill: float32 rounding only
            torch.testing.assert_close(lens[-1, row, j], expect, atol=1e-4, rtol=0)
    if not lm.adapter.rotary:  # GPT-2's layer 0 also holds its learned position embedding
        return
    # layer 0 decodes the input vectors themselves through the final norm and the head
    norm, head = lm.adapter.final_norm(lm.model), lm.model.get_output_embeddings()
    x = norm(lm.backend.input_rows(torch.tensor(long[-1:])))
    z = torch.log_softmax(head(x).float()[0, : lm.n_real_vocab], -1)
    torch.testing.assert_close(lens[0, 1, 1], z, atol=1e-4, rtol=0)


def test_lens_trace_of_one_token_mixtures_equals_the_discrete_run(tiny_lm):
    lm = tiny_lm("qwen2")
    rec = lens_trace(lm, "Once upon a time", n=2, after=2, mixture_top_k=1, top=3)
    L1 = lm.model.config.num_hidden_layers + 1
    assert len(rec.concept.entropy) == L1 and len(rec.concept.entropy[0]) == 4
    assert rec.concept.roles == ["concept", "concept", "after", "after"]
    # a one-token concept token is its token: both runs see the same inputs
    assert rec.discrete.inputs[:2] == [i[1:] for i in rec.concept.inputs[:2]]
    assert max(max(r) for r in rec.kl_concept_discrete) < 1e-4
    assert rec.concept.top_ids == rec.discrete.top_ids


def test_lens_trace_with_real_mixtures_differs_from_the_discrete_run(tiny_lm):
    lm = tiny_lm("qwen2")
    rec = lens_trace(lm, "Once upon a time", n=2, after=1, mixture_top_k=10)
    assert len(rec.mixtures[0]["ids"]) == 10
    assert rec.kl_concept_discrete[-1][0] > 1e-4  # the first concept position's output differs


def test_first_token_lens_of_one_token_mixtures_is_zero(tiny_lm):
    lm = tiny_lm("qwen2")
    ft = first_token_lens(lm, ["Hello", "Once upon a time"], mixture_top_k=1)
    assert ft.prompts == 2 and ft.layers == lm.model.config.num_hidden_layers + 1
    assert all(d["mean"] < 1e-4 for d in ft.kl_top1 + ft.kl_linear)
    ft10 = first_token_lens(lm, ["Hello", "Once upon a time"], mixture_top_k=10)
    assert ft10.kl_top1[-1]["mean"] > 1e-4


# --------------------------------------------------------------------------------- analogy: frames

from vecgen.probes.arithmetic import AnalogyHit, frame_accuracy, frame_test, output_space  # noqa: E402


def test_frame_test_of_a_vector_equal_to_d(tiny_lm):
    lm = tiny_lm("qwen2")
    f, g = lm.encode(" France")[0], lm.encode(" Germany")[0]
    # a == b, so e(b) − e(a) + e(c) = e(c) = e(d): the frame continues exactly as after d
    hit = AnalogyHit(Quadruple("capital", "France", "France", "Germany", "Germany"), (f, f, g, g), [], [], None)
    other = AnalogyHit(Quadruple("colour", "red", "red", "blue", "blue"), (f, f, g, g), [], [], None)
    fh, missing = frame_test(lm, [hit, other])
    assert missing == ["colour"] and len(fh) == 1
    assert fh[0].top1 and fh[0].top5 and fh[0].control_top1 and fh[0].kl_d < 1e-4
    assert frame_accuracy(fh)["all"]["top1"] == 1.0


def test_output_space_is_the_lm_head(tiny_lm):
    lm = tiny_lm("qwen2")
    assert output_space(lm).data_ptr() == lm.model.get_output_embeddings().weight.data_ptr()

    class NoModel:
        model = None

    assert output_space(NoModel()) is None


# ------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("args, fragments", [
    (["superposition", "--alphas", "0,1.5,1"], ["--alphas", "outside [0, 1]"]),
    (["superposition", "--alphas", "0.2,0.5,1"], ["--alphas", "including 0 and 1"]),
    (["superposition", "--alphas", "0,x,1"], ["--alphas", "comma-separated numbers"]),
    (["superposition", "--pair", "Once, a, b"], ["--pair", "JSON list of three strings"]),
    (["superposition", "--pair", '["", "a", "b"]'], ["--pair", "empty prompt"]),
    (["superposition", "--min-divergence", "2"], ["--min-divergence", "ln 2"]),
    (["superposition", "--mixture-top-k", "-1"], ["--mixture-top-k"]),
    (["lens", "--backend", "llamacpp"], ["--backend", "transformers or reference"]),
    (["lens", "--n", "0"], ["--n=0"]),
    (["lens", "--prompt", "  "], ["empty prompt"]),
    (["lens", "--mixture-top-k", "1"], ["--mixture-top-k"]),
    (["analogy", "--k", "0"], ["--k=0"]),
])
def test_bad_probe_options_fail_before_loading(args, fragments, capsys, monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli(["probe", *args], capsys)
    one_line_error(code, err, *fragments)


def test_unknown_tokens_in_a_pair_are_named(tiny_model_dir, capsys, monkeypatch, tmp_path):
    model = str(tiny_model_dir("qwen2"))
    never_load(monkeypatch)
    code, _, err = cli(["probe", "superposition", "--model", model, "--out-dir", tmp_path, "--pair",
                        json.dumps(["Hello", " world", " xqzvbnmwk"])], capsys)
    one_line_error(code, err, "token b", "not one")
    code, _, err = cli(["probe", "superposition", "--model", model, "--out-dir", tmp_path, "--pair",
                        json.dumps(["Hello", " world", " world"])], capsys)
    one_line_error(code, err, "same token")


def test_bad_prompt_and_pair_files(tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    code, _, err = cli(["probe", "superposition", "--prompts", empty], capsys)
    one_line_error(code, err, "no prompts")
    code, _, err = cli(["probe", "lens", "--prompts", tmp_path / "missing.txt"], capsys)
    one_line_error(code, err, "missing.txt")
    single = tmp_path / "single.tsv"
    single.write_text("capital\tFrance\tParis\n")
    code, _, err = cli(["probe", "analogy", "--pairs", single], capsys)
    one_line_error(code, err, "no relation has two pairs")


@pytest.mark.slow
def test_probe_commands_write_their_runs(tiny_model_dir, capsys, tmp_path):
    model = str(tiny_model_dir("qwen2"))
    prompts = tmp_path / "p.txt"
    prompts.write_text("Once upon a time\nThe capital of France is\n")
    code, out, err = cli(["probe", "superposition", "--model", model, "--out-dir", tmp_path, "--run-name", "sp",
                          "--prompts", prompts, "--alphas", "0,0.5,1", "--min-divergence", "0", "--mixture-top-k", "3",
                          "--pair", json.dumps(["Hello", " world", ","])], capsys)
    assert code == 0, err
    run = tmp_path / "sp"
    res = json.loads((run / "results.json").read_text())
    assert res["command"] == "probe-superposition" and res["results"]["summary"]["pairs"] == 3
    assert len((run / "records.jsonl").read_text().splitlines()) == 3 + 2
    assert (run / "superposition.png").exists() and len(list((run / "plots").glob("pair-*.png"))) == 3
    assert (run / "view.html").exists() and "Superposition" in (run / "report.md").read_text()

    code, out, err = cli(["probe", "lens", "--model", model, "--out-dir", tmp_path, "--run-name", "lens", "-p", "Hi",
                          "--n", "2", "--after", "1", "--prompts", prompts, "--summary-prompts", "2"], capsys)
    assert code == 0, err
    run = tmp_path / "lens"
    res = json.loads((run / "results.json").read_text())
    assert res["results"]["first_token"]["prompts"] == 2 and (run / "lens-1.png").exists()
    assert (run / "lens-first-token.png").exists()
    layers = res["results"]["first_token"]["layers"]
    assert len(res["results"]["first_token"]["patchscope_top1"]) == layers - 1
    assert "Patchscopes reads the first concept token" in out
    rec = json.loads((run / "records.jsonl").read_text().splitlines()[0])
    assert rec["prompt"] == "Hi" and len(rec["concept"]["inputs"]) == 3

    code, out, err = cli(["probe", "analogy", "--model", model, "--out-dir", tmp_path, "--run-name", "an"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "an" / "results.json").read_text())["results"]
    assert set(res["accuracy"]) == {"input", "output"} and res["accuracy"]["input"]["all"]["n"] > 100
    assert res["frame_accuracy"]["all"]["n"] == res["accuracy"]["input"]["all"]["n"]


def test_figure_labels_escape_what_the_default_font_cannot_draw():
    """Latin, Greek and Cyrillic stay; Ethiopic, CJK and Devanagari (no DejaVu Sans glyph) and control characters are
    escaped, so matplotlib draws no missing-glyph boxes."""
    from vecgen.probes.report import _label

    assert _label("Ωж é", 20) == "Ωж é"
    assert _label("ሤab", 20) == "\\u1224ab" and _label("日本", 20) == "\\u65e5\\u672c"
    assert _label("हि", 20) == "\\u0939\\u093f" and _label("a\nb", 20) == "a\\nb"
