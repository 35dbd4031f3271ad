"""The English-vocabulary analysis behind ``vecgen vocab english``: statistics, validation, files, report.

:func:`analyze` computes everything for one tokenizer (both policies, so the report can compare them);
:func:`write_token_files` writes the chosen set as TSV and JSON and the classification of every row as
TSV; :func:`render_report` turns the results into ``report.md``.

TSV text columns are escaped by :func:`vecgen.vocab.classify.escape_tsv` (backslash, tab, newline, CR,
other control characters; undecodable bytes of fragments as ``\\xNN``); leading spaces are kept. In the
JSON file, fragment bytes appear as ``\\xNN`` inside the string.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import torch

from ..io import atomic_write_json, atomic_write_text
from ..reports import RunWriter
from ..reports.plots import new_figure
from . import validate
from .classify import (
    CLASS_DESCRIPTIONS,
    CLASS_LIST,
    Policy,
    VocabClassification,
    classify_tokenizer,
    decoded_texts,
    escape_tsv,
)
from .validate import (
    SAMPLE_TEXTS,
    available_word_lists,
    common_words,
    round_trip,
    summarize_round_trip,
    word_list_agreement,
)


def _pct(n: int, total: int) -> float:
    return round(100.0 * n / total, 3) if total else 0.0


def class_table(cls: VocabClassification) -> list[dict[str, Any]]:
    """Rows ``{"class", "description", "count", "percent"}`` in :data:`CLASS_LIST` order."""
    counts = cls.counts()
    return [
        {"class": c.value, "description": CLASS_DESCRIPTIONS[c], "count": counts[c.value],
         "percent": _pct(counts[c.value], cls.n_rows)}
        for c in CLASS_LIST
    ]


def set_composition(cls: VocabClassification, policy: Policy) -> dict[str, int]:
    """Tokens of the set under ``policy`` per class (classes with none omitted)."""
    mask = cls.mask(policy)
    counts = torch.bincount(cls.codes[mask].long(), minlength=len(CLASS_LIST)).tolist()
    return {c.value: int(n) for c, n in zip(CLASS_LIST, counts) if n}


def analyze(
    tokenizer: Any,
    *,
    texts: Sequence[str] | None = None,
    texts_source: str | None = None,
    n_common: int = 5000,
    wamerican: Any = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[VocabClassification, dict[str, Any]]:
    """Classify ``tokenizer`` and validate both English sets.

    Args:
        tokenizer: a byte-level BPE tokenizer.
        texts: extra English texts for the round-trip check (besides :data:`SAMPLE_TEXTS`).
        texts_source: where ``texts`` came from (recorded in the results).
        n_common: how many of ``wordfreq``'s most common English words to encode.
        wamerican: path of the ``wamerican`` list (default ``/usr/share/dict/american-english``).
        progress: called with a short description before each stage.

    Returns:
        ``(classification, results)``; ``results`` is JSON-ready.

    Raises:
        UnsupportedModelError: not a byte-level BPE tokenizer.
    """
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    say("classifying tokens")
    t0 = time.perf_counter()
    cls = classify_tokenizer(tokenizer)
    timings["classify_s"] = round(time.perf_counter() - t0, 3)
    say("loading word lists")
    lists = available_word_lists(validate.WAMERICAN if wamerican is None else wamerican)
    common = common_words(n_common)
    policies: dict[str, Any] = {}
    for policy in Policy:
        mask = cls.mask(policy)
        say(f"validating the {policy.value} set")
        t0 = time.perf_counter()
        entry: dict[str, Any] = {
            "size": int(mask.sum()),
            "percent_of_rows": _pct(int(mask.sum()), cls.n_rows),
            "composition": set_composition(cls, policy),
            "round_trip_samples": summarize_round_trip(round_trip(tokenizer, SAMPLE_TEXTS, mask)),
        }
        if texts:
            entry["round_trip_texts"] = summarize_round_trip(round_trip(tokenizer, texts, mask))
        entry["word_lists"] = word_list_agreement(tokenizer, mask, lists, common)
        timings[f"validate_{policy.value}_s"] = round(time.perf_counter() - t0, 3)
        policies[policy.value] = entry
    results = {
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "entries": len(tokenizer),
            "rows": cls.n_rows,
            "real_tokens": cls.n_real,
            "classification_key": cls.key,
            "classification_from_cache": cls.from_cache,
        },
        "classes": class_table(cls),
        "policies": policies,
        "word_lists": {name: len(words) for name, words in lists.items()},
        "word_list_versions": _versions(),
        "texts": {"samples": len(SAMPLE_TEXTS), "extra": len(texts or []), "extra_source": texts_source},
        "timings": timings,
    }
    return cls, results


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("wordfreq", "regex"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_token_files(writer: RunWriter, tokenizer: Any, cls: VocabClassification, policy: Policy) -> dict[str, str]:
    """Write ``tokens.tsv`` / ``tokens.json`` (the set under ``policy``: id, class, text) and
    ``classes.tsv`` (every row: id, class, in strict set, in text set, text). Returns the file names."""
    raw = decoded_texts(tokenizer, cls.n_real, surrogates=True) + [""] * (cls.n_rows - cls.n_real)
    texts = [t.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for t in raw]  # JSON form
    classes = cls.classes()
    strict = cls.mask(Policy.strict).tolist()
    text_set = cls.mask(Policy.text).tolist()
    ids = cls.ids(policy)
    lines = ["id\tclass\ttext"] + [f"{i}\t{classes[i].value}\t{escape_tsv(raw[i])}" for i in ids]
    atomic_write_text(writer.path("tokens.tsv"), "\n".join(lines) + "\n")
    atomic_write_json(writer.path("tokens.json"), {
        "policy": policy.value,
        "count": len(ids),
        "ids": ids,
        "texts": [texts[i] for i in ids],
        "classes": [classes[i].value for i in ids],
    })
    rows = ["id\tclass\tstrict\ttext_policy\ttext"] + [
        f"{i}\t{classes[i].value}\t{int(strict[i])}\t{int(text_set[i])}\t{escape_tsv(raw[i])}" for i in range(cls.n_rows)
    ]
    atomic_write_text(writer.path("classes.tsv"), "\n".join(rows) + "\n")
    return {"tokens_tsv": "tokens.tsv", "tokens_json": "tokens.json", "classes_tsv": "classes.tsv"}


def class_figure(results: dict[str, Any]):
    """Horizontal bar chart of token counts per class (log scale)."""
    fig, axes = new_figure(1, 1, height=4.0)
    ax = axes[0][0]
    rows = [r for r in results["classes"] if r["count"]]
    ax.barh([r["class"] for r in rows][::-1], [r["count"] for r in rows][::-1], color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("tokens (log scale)")
    ax.set_title(f"token classes of {results.get('tokenizer_spec', 'the tokenizer')} ({results['tokenizer']['rows']:,} rows)")
    return fig


def _f(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def render_report(results: dict[str, Any], policy: Policy) -> str:
    """``report.md``: method, class statistics, both sets and their validation."""
    tok = results["tokenizer"]
    spec = results.get("tokenizer_spec", "?")
    out = [
        f"# English vocabulary of `{spec}`",
        "",
        f"Tokenizer `{tok['class']}`: {tok['entries']:,} entries, {tok['rows']:,} rows classified, "
        f"{tok['real_tokens']:,} real tokens. Set written to `tokens.tsv` / `tokens.json`: policy **{policy.value}**.",
        "",
        "## Method",
        "",
        "Each regular token's vocabulary string is mapped back to bytes through the byte-level BPE table "
        "(GPT-2's `bytes_to_unicode`, inverted) and decoded as strict UTF-8; bytes that are not complete "
        "UTF-8 are byte fragments. Added tokens are `special`; rows past the real vocabulary are `padding`. "
        "The first matching rule gives the class: `english` = `^ ?[A-Za-z]+$`, `number` = `^ ?[0-9]+$`, "
        "`punctuation` = only `\\p{P}` and white space, then scripts by the `regex` package's Unicode "
        "properties (CJK: Han/Hiragana/Katakana/Hangul/Bopomofo; Cyrillic; other letters; Latin beyond ASCII), "
        "and `code_symbol` for the rest (mixed ASCII such as `'s` or `();`, symbols, emoji, control characters).",
        "",
        "Policies: **strict** = the `english` class (ASCII letters, optional leading space); **text** = every "
        "regular token made only of ASCII letters, digits, ASCII punctuation, space, tab, newline and "
        "carriage return. Neither contains special tokens; decoding with `--english-only` adds the stop "
        "tokens (eos / end of turn) back so generation can end.",
        "",
        "## Classes",
        "",
        "| class | tokens | % of rows | description |",
        "| --- | ---: | ---: | --- |",
    ]
    for r in results["classes"]:
        out.append(f"| `{r['class']}` | {r['count']:,} | {r['percent']:.2f} | {r['description']} |")
    out += ["", "## English sets", "", "| | strict | text |", "| --- | ---: | ---: |"]
    pol = results["policies"]
    out.append(f"| tokens | {pol['strict']['size']:,} | {pol['text']['size']:,} |")
    out.append(f"| % of rows | {pol['strict']['percent_of_rows']:.2f} | {pol['text']['percent_of_rows']:.2f} |")

    def row(label: str, get: Callable[[dict[str, Any]], str]) -> None:
        out.append(f"| {label} | {get(pol['strict'])} | {get(pol['text'])} |")

    for key, label in (("round_trip_samples", f"built-in samples ({results['texts']['samples']} texts)"),
                       ("round_trip_texts", f"extra texts ({results['texts']['extra']}, "
                                             f"{results['texts']['extra_source']})")):
        if key not in pol["strict"]:
            continue
        row(f"{label}: tokens in set", lambda p: _f(p[key]["share_tokens_in_set"]))
        row(f"{label}: texts reproducible with set tokens only",
            lambda p: f"{p[key]['texts_reproducible']}/{p[key]['texts']} ({_f(p[key]['share_texts_reproducible'])})")
        row(f"{label}: first missing characters",
            lambda p: ", ".join(f"`{c!r}` ×{n}" for c, n in list(p[key]["first_missing_characters"].items())[:4])
            or "none")
    for name, size in results["word_lists"].items():
        row(f"letter tokens that are {name} words ({size:,} words)",
            lambda p: _f(p["word_lists"]["lists"][name]["share"]))
        row("… with leading space / without",
            lambda p: f"{_f(p['word_lists']['lists'][name]['share_with_space'])} / "
                      f"{_f(p['word_lists']['lists'][name]['share_without_space'])}")
    cw = pol["text"]["word_lists"]["common_words"]
    if cw["n"]:
        row(f"top {cw['n']:,} wordfreq words that are one set token, ` word` / `word`",
            lambda p: f"{_f(p['word_lists']['common_words']['share_with_space'])} / "
                      f"{_f(p['word_lists']['common_words']['share_without_space'])}")
    if not results["word_lists"]:
        out += ["", "No English word list is installed (Debian `wamerican` or PyPI `wordfreq`); "
                "the dictionary agreement was skipped."]
    out += [
        "",
        "Reading the validation: *tokens in set* is the share of the ordinary tokenization of the texts that "
        "lies in the set; *reproducible* means a segmentation into set tokens exists whose decoding equals the "
        "text exactly (a shortest one is found by dynamic programming over token bytes). `strict` has no "
        "punctuation or digits, so texts with them cannot be reproduced. `wordfreq` contains word pieces "
        "from web text (`ing`, `tion`), so its agreement is an upper bound; `wamerican` is stricter.",
        "",
        "## Composition of the sets",
        "",
    ]
    for name in ("strict", "text"):
        comp = ", ".join(f"`{k}` {v:,}" for k, v in pol[name]["composition"].items())
        out.append(f"- **{name}**: {comp}")
    t = results["timings"]
    how = "read from the cache" if tok.get("classification_from_cache") else "computed"
    out += ["", f"Classification {how} in {t['classify_s']:.2f} s.", ""]
    return "\n".join(out)
