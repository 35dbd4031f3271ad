"""Vocabulary classification, English-only sets and the allowed-token mask in decoding."""

import json

import pytest

from helpers.cli import cli
import regex
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, generate
from vecgen.errors import ConfigError, UnsupportedModelError
from vecgen.models import load_tokenizer
from vecgen.vocab import (
    AllowedTokensLogitsProcessor,
    Policy,
    TokenClass,
    bytes_to_unicode,
    classify_tokenizer,
    decoded_texts,
    english_token_mask,
)
from vecgen.vocab.validate import (
    _set_pieces,
    encode_with_set,
    read_texts,
    round_trip,
    summarize_round_trip,
    word_list_agreement,
)


@pytest.fixture(scope="module")
def qwen3():
    return load_tokenizer("qwen3")


@pytest.fixture(scope="module")
def gpt2():
    return load_tokenizer("gpt2")


@pytest.fixture(scope="module")
def qwen3_cls(qwen3):
    return classify_tokenizer(qwen3, cache=False)


@pytest.fixture(scope="module")
def gpt2_cls(gpt2):
    return classify_tokenizer(gpt2, cache=False)


def token_id(tok, data: bytes) -> int:
    """Id of the token whose bytes are ``data`` (fails if the vocabulary has no such token)."""
    table = bytes_to_unicode()
    return tok.get_vocab()["".join(table[b] for b in data)]


def test_byte_table_is_gpt2s():
    from transformers.convert_slow_tokenizer import bytes_to_unicode as reference

    assert bytes_to_unicode() == reference()


@pytest.mark.parametrize("name", ["qwen3", "gpt2"])
def test_hand_picked_tokens(name, request):
    tok = request.getfixturevalue(name)
    cls = request.getfixturevalue(f"{name}_cls")
    strict, text = cls.mask(Policy.strict), cls.mask(Policy.text)

    def check(data: bytes, expected: TokenClass, in_strict: bool, in_text: bool):
        i = token_id(tok, data)
        assert cls.class_of(i) is expected, (data, cls.class_of(i))
        assert bool(strict[i]) is in_strict and bool(text[i]) is in_text, data

    check(b" the", TokenClass.english, True, True)
    check(b"Paris", TokenClass.english, True, True)
    check(b"7", TokenClass.number, False, True)
    check(b"\n\n", TokenClass.punctuation, False, True)
    check(b"'s", TokenClass.code_symbol, False, True)
    check(b" +=", TokenClass.code_symbol, False, True)
    check("и".encode(), TokenClass.cyrillic, False, False)
    check("中".encode(), TokenClass.cjk, False, False)
    check("é".encode(), TokenClass.latin_other, False, False)
    check("α".encode(), TokenClass.other_script, False, False)
    for fragment in (b"\xe4", b"\xe4\xbd", b"\xd0"):  # lead bytes of 3- and 2-byte characters
        i = token_id(tok, fragment)
        assert tok.decode([i]) == "\ufffd"  # what a naive decode would call text
        assert cls.class_of(i) is TokenClass.byte_fragment
        assert not text[i]
    if name == "qwen3":
        check("，".encode(), TokenClass.punctuation, False, False)  # punctuation, but not ASCII
        check(" при".encode(), TokenClass.cyrillic, False, False)
        for special in ("<|im_end|>", "<|endoftext|>", "<think>"):
            i = tok.convert_tokens_to_ids(special)
            assert cls.class_of(i) is TokenClass.special and not text[i] and not strict[i]
    else:
        check(b" 1880", TokenClass.number, False, True)
        assert cls.class_of(50256) is TokenClass.special  # <|endoftext|>


def test_counts_add_up_to_the_vocabulary(qwen3, qwen3_cls, gpt2_cls):
    counts = qwen3_cls.counts()
    assert sum(counts.values()) == len(qwen3) == 151_669
    assert counts["special"] == 26 and counts["padding"] == 0  # 26 added tokens (ANCHORS)
    assert sum(gpt2_cls.counts().values()) == 50_257 and gpt2_cls.counts()["special"] == 1
    # With a model's 151,936 embedding rows, the 267 rows past the tokenizer are padding.
    padded = classify_tokenizer(qwen3, 151_936, cache=False)
    assert padded.counts()["padding"] == 151_936 - 151_669
    assert sum(padded.counts().values()) == 151_936
    assert torch.equal(padded.codes[:151_669], qwen3_cls.codes)


def test_sets_follow_their_definitions(qwen3, qwen3_cls):
    texts = decoded_texts(qwen3, qwen3_cls.n_real)
    strict, text = qwen3_cls.mask("strict"), qwen3_cls.mask("text")
    assert bool((strict <= text).all())  # strict is a subset of text
    ascii_text = regex.compile(r"^[\t\n\r\x20-\x7e]+$")
    for i in text.nonzero().flatten().tolist():
        assert ascii_text.match(texts[i]), (i, texts[i])
    for i in strict.nonzero().flatten().tolist():
        assert regex.match(r"^ ?[A-Za-z]+$", texts[i]), (i, texts[i])
    # ...and nothing outside the text set is plain ASCII text, except special tokens (and fragments,
    # whose display form spells their bytes as \xNN).
    outside = (~text).nonzero().flatten().tolist()
    skip = (TokenClass.special, TokenClass.byte_fragment)
    leaked = [i for i in outside if ascii_text.match(texts[i]) and qwen3_cls.class_of(i) not in skip]
    assert leaked == []


def test_classification_is_cached(gpt2, gpt2_cls, monkeypatch, tmp_path):
    monkeypatch.setenv("VECGEN_CACHE", str(tmp_path))
    first = classify_tokenizer(gpt2)
    files = list((tmp_path / "vocab").glob("*.pt"))
    assert len(files) == 1 and first.key in files[0].name
    assert torch.equal(first.codes, gpt2_cls.codes)
    files[0].write_bytes(b"not a tensor file")  # a corrupt entry is recomputed, not trusted
    again = classify_tokenizer(gpt2)
    assert torch.equal(again.codes, gpt2_cls.codes) and torch.equal(again.ascii_text, gpt2_cls.ascii_text)


def test_non_byte_level_tokenizer_is_refused():
    class SentencePieceLike:
        added_tokens_decoder = {}

        def __len__(self):
            return 3

        def convert_ids_to_tokens(self, ids):
            table = ["▁the", "▁house", "▁of"]
            return table[ids] if isinstance(ids, int) else [table[i] for i in ids]

    with pytest.raises(UnsupportedModelError, match="byte-level"):
        classify_tokenizer(SentencePieceLike(), cache=False)


def test_unknown_policy_is_a_config_error(qwen3_cls):
    with pytest.raises(ConfigError, match="unknown vocabulary policy"):
        qwen3_cls.mask("latin")


# ---------------------------------------------------------------------------------------------
# The mask in decoding


def test_mask_of_a_loaded_model(tiny_lm):
    lm = tiny_lm("qwen2")
    mask = english_token_mask(lm)
    assert mask.shape == (lm.vocab_rows,) and mask.dtype == torch.bool
    assert not bool(mask[lm.n_real_vocab:].any())  # padding rows
    tok = lm.tokenizer
    assert all(bool(mask[i]) for i in lm.stop_token_ids())  # eos / <|im_end|> stay allowed
    assert not mask[tok.convert_tokens_to_ids("<|im_start|>")]
    no_stop = english_token_mask(lm, "strict", keep_stop_tokens=False)
    assert not bool(no_stop[lm.stop_token_ids()].any())
    assert int(no_stop.sum()) == 68_923  # the strict set of the Qwen3 tokenizer (docs/vocabulary.md)


@pytest.mark.parametrize("rule", ["onehot", "soft", "full"])
def test_generation_never_leaves_the_allowed_set(tiny_lm, rule):
    lm = tiny_lm("qwen2")
    allowed = english_token_mask(lm, "strict")
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=16, seed=3)
    mixing = MixingConfig(rule=rule, max_topk=10)
    prompts = [lm.encode(t) for t in ("Hello", "Привет")]

    def outside(result):
        bad = 0
        for step in result.steps:
            bad += int((~allowed[step.token]).sum())
            used = step.mix_weights > 0  # (B, K): every token the mixture put weight on
            bad += int((~allowed[step.mix_ids] & used).sum())
        return bad

    free = generate(lm, prompts, sampling=sampling, mixing=mixing, stop_ids=[], max_new_tokens=4, record_top_k=10)
    assert outside(free) > 0  # without the mask a random model does leave the set (the check can fail)
    res = generate(lm, prompts, sampling=sampling, mixing=mixing, stop_ids=[], allowed=allowed, record_top_k=10)
    assert len(res.steps) == 16  # 2 x 16 sampled steps at temperature 1, no truncation
    assert outside(res) == 0
    for step in res.steps:
        # the sampler's distribution gives the disallowed tokens exactly zero and sums to 1 over the rest
        assert bool(allowed[step.top_ids[step.top_probs > 0]].all())
        if rule == "soft":
            torch.testing.assert_close(step.mix_weights.sum(-1), torch.ones(2), atol=1e-5, rtol=0)  # every index of the soft mixture (max_topk = record_top_k = 10) is allowed
            assert bool(allowed[step.mix_ids].all())


def test_logits_processor_restricts_model_generate(tiny_lm):
    from transformers import LogitsProcessorList

    lm = tiny_lm("qwen2")
    allowed = english_token_mask(lm, "strict")
    x = torch.tensor([lm.encode("Once upon a time")] * 2)
    kwargs = dict(attention_mask=torch.ones_like(x), do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                  max_new_tokens=12, min_new_tokens=12, pad_token_id=lm.tokenizer.pad_token_id)
    torch.manual_seed(0)
    free = lm.model.generate(x, **kwargs)[:, x.shape[1]:]
    assert not bool(allowed[free].all())
    torch.manual_seed(0)
    out = lm.model.generate(x, logits_processor=LogitsProcessorList([AllowedTokensLogitsProcessor(allowed)]),
                            **kwargs)[:, x.shape[1]:]
    assert out.shape == (2, 12) and bool(allowed[out].all())


def test_empty_or_impossible_sets_are_clear_errors(tiny_lm):
    lm = tiny_lm("qwen2")
    ids = lm.encode("Hello")
    with pytest.raises(ConfigError, match="empty"):
        generate(lm, [ids], allowed=torch.zeros(lm.vocab_rows, dtype=torch.bool), max_new_tokens=2)
    only_padding = torch.zeros(lm.vocab_rows, dtype=torch.bool)
    only_padding[lm.n_real_vocab:] = True
    with pytest.raises(ConfigError, match="empty"):
        generate(lm, [ids], allowed=only_padding, max_new_tokens=2, mixing="soft")
    with pytest.raises(ConfigError, match="empty"):
        AllowedTokensLogitsProcessor([])
    proc = AllowedTokensLogitsProcessor([1, 2])
    scores = torch.zeros(2, 10)
    scores[1, [1, 2]] = float("-inf")  # every allowed token impossible in row 1: error, not NaN
    with pytest.raises(ConfigError, match="finite"):
        proc(torch.zeros(2, 1, dtype=torch.long), scores)
    out = proc(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 10))
    assert torch.isfinite(out[0]).tolist() == [False, True, True] + [False] * 7
    with pytest.raises(ConfigError, match="outside"):
        english_token_mask(lm, extra_ids=[lm.vocab_rows + 5])


# ---------------------------------------------------------------------------------------------
# Validation


def test_set_only_encoding_round_trips(gpt2, gpt2_cls):
    text = "Hello, world. It costs 12 dollars."
    res = round_trip(gpt2, [text, "Caf\u00e9 \u2019s"], gpt2_cls.mask("text"))
    assert res[0].reproducible and res[0].tokens_in_set == res[0].tokens
    assert not res[1].reproducible and res[1].first_missing == "\u00e9"
    pieces = _set_pieces(gpt2, gpt2_cls.ids("text"))
    seg = encode_with_set(text, pieces)
    assert gpt2.decode(seg) == text and all(gpt2_cls.mask("text")[seg])
    strict = summarize_round_trip(round_trip(gpt2, [text], gpt2_cls.mask("strict")))
    assert strict["texts_reproducible"] == 0 and strict["first_missing_characters"] == {",": 1}
    assert 0 < strict["share_tokens_in_set"] < 1


def test_word_list_agreement_counts(gpt2, gpt2_cls):
    mask = torch.zeros_like(gpt2_cls.mask("strict"))
    for word in (b" the", b" house", b"ing", b" qzx"):  # " qzx" is not one GPT-2 token: skipped below
        try:
            mask[token_id(gpt2, word)] = True
        except KeyError:
            pass
    res = word_list_agreement(gpt2, mask, {"mini": {"the", "house"}}, ["the", "house", "june", "zzzq"])
    assert res["lists"]["mini"]["letter_tokens"] == 3
    assert res["lists"]["mini"]["dictionary_words"] == 2
    assert res["lists"]["mini"]["share_with_space"] == 1.0 and res["lists"]["mini"]["share_without_space"] == 0.0
    assert res["common_words"]["single_token_with_space"] == 2  # " the", " house"; " June" is not in this set
    assert res["common_words"]["examples_not_single_with_space"] == ["june", "zzzq"]


def test_read_texts(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"question": "How many?"}) + "\n\n" + json.dumps({"text": "Two."}) + "\n")
    assert read_texts(p) == ["How many?", "Two."]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": "x"}\n')
    with pytest.raises(ConfigError, match="no 'text'"):
        read_texts(bad)
    with pytest.raises(ConfigError, match="--texts file not found"):
        read_texts(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="is a folder"):
        read_texts(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text .* at byte 3"):
        read_texts(tmp_path / "latin1.txt")


# ---------------------------------------------------------------------------------------------
# CLI


def test_vocab_english_writes_the_set_and_report(tmp_path, monkeypatch, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\nIt is 5 o\u2019clock.\n")
    code, out, err = cli(["vocab", "english", "--tokenizer", "gpt2", "--policy", "strict", "--texts", str(texts),
                              "--common-words", "300", "--run-name", "v", "--out-dir", str(tmp_path / "runs")])
    assert code in (0, None), err
    run = tmp_path / "runs" / "v"
    results = json.loads((run / "results.json").read_text())["results"]
    assert sum(r["count"] for r in results["classes"]) == 50_257
    strict = results["policies"]["strict"]
    tokens = json.loads((run / "tokens.json").read_text())
    assert tokens["policy"] == "strict" and tokens["count"] == strict["size"] == len(tokens["ids"])
    lines = (run / "tokens.tsv").read_text().splitlines()
    assert lines[0] == "id\tclass\ttext" and len(lines) == strict["size"] + 1
    assert f"{token_id(load_tokenizer('gpt2'), b' the')}\tenglish\t the" in lines
    rows = (run / "classes.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(rows) == 50_258 and all(r.count("\t") == 4 for r in rows)
    assert "160\tbyte_fragment\t0\t0\t\\xe4" in rows  # the lone lead byte 0xE4
    assert "0\tpunctuation\t0\t1\t!" in rows
    text_rt = results["policies"]["text"]["round_trip_texts"]
    assert text_rt["texts"] == 2 and text_rt["texts_reproducible"] == 1  # the curly apostrophe is not ASCII
    assert results["policies"]["text"]["word_lists"]["common_words"]["n"] == 300
    report = (run / "report.md").read_text()
    assert "## Classes" in report and "| `english` | 46,893 |" in report
    assert (run / "classes.png").stat().st_size > 0
    assert "46,893" in out


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--tokenizer", "nosuch"], "unknown tokenizer 'nosuch'"),
        (["--tokenizer", "/nonexistent/tok"], "no such tokenizer file or folder"),
        (["--tokenizer", "EMPTY"], "holds no tokenizer files"),
        (["--tokenizer", "gpt2", "--policy", "latin"], "unknown vocabulary policy"),
        (["--tokenizer", "gpt2", "--texts", "/nonexistent/texts.txt"], "--texts file not found"),
    ],
)
def test_vocab_bad_input_is_one_clear_line(args, fragment, tmp_path, monkeypatch, capsys):
    args = [str(tmp_path) if a == "EMPTY" else a for a in args]
    code, _, err = cli(["vocab", "english", *args, "--out-dir", str(tmp_path / "runs")])
    assert code == 2
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_generate_english_only(tiny_model_dir, monkeypatch, capsys):
    base = ["generate", "Hello", "-m", str(tiny_model_dir("qwen2")), "-n", "12", "--temperature", "1", "--seed", "0",
            "--device", "cpu"]
    code, free, err = cli(base)
    assert code in (0, None), err
    assert not free.isascii()  # a random tiny model writes all scripts
    code, out, err = cli([*base, "--english-only"])
    assert code in (0, None), err
    assert out.startswith("Hello") and out.isascii() and len(out) > len("Hello\n")
