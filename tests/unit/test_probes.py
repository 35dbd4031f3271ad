"""Probes (issue 17): vector arithmetic on a hand-made embedding and the shipped analogy pairs."""

import pytest
import torch

from vecgen.errors import ConfigError
from vecgen.probes.analogy import (
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
    from vecgen.probes.analogy import word_token

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
