"""Procedural benchmarks from reasoning-gym: ``--benchmark rg:NAME[:key=value,...]``.

Any of reasoning-gym's generators (``reasoning_gym.factory.DATASETS``; ``vecgen think --list-benchmarks`` lists them
with their settings) becomes a benchmark: items are generated from a seed (``seed=``, default 0) and the settings
given after the name (values read as JSON where they parse, e.g. ``min_terms=3``, ``operators=["+","-"]``, else as
text), as many as ``--limit`` asks for (default :data:`DEFAULT_RG_ITEMS`). Each item is scored by the generator's own
``score_answer`` (reasoning-gym's verifier): a score in [0, 1], where some generators give partial credit (word
sorting, for instance); an item counts as correct at score 1, and the mean score is reported beside the accuracy.

The answer read from the model's output depends on the reference's shape: a number → the numeric checker's reading
(math-verify: ``The answer is 42.`` gives ``42``); anything else → the answer span the other checkers read (after
the last "answer is" / "Answer:", or ``\boxed{}``), stripped of markdown.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from typing import Any

from ..errors import ConfigError
from .checkers import (
    _MINUS,
    CHECKERS,
    NUMBER_LITERAL,
    NumericChecker,
    Verdict,
    _strip_markup,
    answer_region,
    clean_response,
    restated_expression,
)
from .task import Task

#: Items of an ``rg:`` benchmark without ``--limit``.
DEFAULT_RG_ITEMS = 1000
#: The answer type of reasoning-gym tasks (scored by the generator; not a task-file type).
RG_ANSWER_TYPE = "rg"


def _datasets() -> dict[str, Any]:
    from reasoning_gym.factory import DATASETS  # lazy: reasoning-gym takes ~1.7 s to import

    return DATASETS


#: reasoning-gym's datasets that are not generators of their own, with why.
_NOT_GENERATORS = {"composite": "it mixes other generators (a list of DatasetSpec objects, which a benchmark spec "
                                "cannot give); run each generator as its own rg: benchmark"}


def rg_names() -> list[str]:
    """The names of reasoning-gym's generators (``composite``, a mixture of others, is not one)."""
    return sorted(n for n in _datasets() if n not in _NOT_GENERATORS)


def rg_settings(name: str) -> dict[str, Any]:
    """A generator's settings and their defaults (its config dataclass's fields, ``size`` and ``seed`` excluded)."""
    _, config = _datasets()[name]
    out = {}
    for f in dataclasses.fields(config):
        if f.name in ("size", "seed"):
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_rg_spec(spec: str) -> tuple[str, int, dict[str, Any]]:
    """``rg:NAME[:key=value,...]`` → ``(name, seed, settings)``.

    Raises:
        ConfigError: not an ``rg:`` spec, an unknown generator (the message says how to list them), a setting the
            generator does not have (its settings are listed), or a malformed ``key=value``.
    """
    if not spec.startswith("rg:"):
        raise ConfigError(f"benchmark {spec!r} is not a reasoning-gym benchmark (rg:NAME)", param="benchmark")
    name, _, rest = spec[3:].partition(":")
    if name in _NOT_GENERATORS:
        raise ConfigError(f"benchmark {spec!r}: {name} is not a generator: {_NOT_GENERATORS[name]}", param="benchmark")
    if name not in _datasets():
        raise ConfigError(f"benchmark {spec!r}: reasoning-gym has no generator {name!r}; `vecgen think "
                          "--list-benchmarks` lists them", param="benchmark")
    known = rg_settings(name)
    settings: dict[str, Any] = {}
    seed = 0
    for part in _split(rest):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"benchmark {spec!r}: expected key=value after the name, got {part!r}", param="benchmark")
        if key == "seed":
            parsed = _value(value)
            if isinstance(parsed, bool) or not isinstance(parsed, int) or parsed < 0:
                raise ConfigError(f"benchmark {spec!r}: seed must be an integer >= 0", param="benchmark")
            seed = parsed
            continue
        if key not in known:
            raise ConfigError(f"benchmark {spec!r}: {name} has no setting {key!r}; its settings: "
                              f"{', '.join(sorted(known)) or '(none)'}", param="benchmark")
        settings[key] = _value(value)
    return name, seed, settings


def _split(text: str) -> list[str]:
    """Split ``a=1,b=[1,2],c=x`` at the commas outside brackets and quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if cur or parts:
        parts.append("".join(cur))
    return [p for p in (p.strip() for p in parts) if p]


@lru_cache(maxsize=16)
def _dataset(name: str, seed: int, size: int, settings: str) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, seed=seed, size=size, **json.loads(settings))
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        raise ConfigError(f"benchmark rg:{name}: reasoning-gym refused the settings {json.loads(settings)} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'invalid'})",
                          param="benchmark") from None


#: Metadata keys where a generator without one reference answer (``answer`` None) keeps an answer it accepts.
_EXAMPLE_KEYS = ("example_answer", "example_correct_answer", "possible_answer")
#: The reference of an item whose generator has neither a reference nor an example answer (rush_hour, boxnet).
NO_REFERENCE = "(no reference: the generator's verifier accepts any valid solution)"


def reference_answer(entry: dict[str, Any]) -> str:
    """An item's reference answer: the generator's ``answer``; for generators whose items have many right answers
    (``answer`` None: propositional_logic, graph_color, rubiks_cube) the example answer of its metadata (JSON where
    it is not text); else :data:`NO_REFERENCE`. The verdict never compares with it: ``score_answer`` judges."""
    if entry.get("answer") is not None:
        return str(entry["answer"]).strip()
    meta = entry.get("metadata") or {}
    for key in _EXAMPLE_KEYS:
        value = meta.get(key)
        if value is not None:
            return value.strip() if isinstance(value, str) else json.dumps(value)
    return NO_REFERENCE


def rg_tasks(spec: str, limit: int | None = None) -> list[Task]:
    """The items of ``spec`` (``rg:NAME[:key=value,...]``): ``limit`` of them (default :data:`DEFAULT_RG_ITEMS`),
    ids ``rg-NAME-<index>``, answer type ``rg`` (scored by the generator, :class:`RgChecker`).

    Raises:
        ConfigError: see :func:`parse_rg_spec`; settings reasoning-gym refuses (its message quoted).
    """
    name, seed, settings = parse_rg_spec(spec)
    size = limit or DEFAULT_RG_ITEMS
    ds = _dataset(name, seed, size, json.dumps(settings, sort_keys=True))
    tasks = []
    for i in range(size):
        entry = ds[i]
        tasks.append(Task(id=f"rg-{name}-{i:05d}", question=str(entry["question"]).strip(),
                          answer=reference_answer(entry), answer_type=RG_ANSWER_TYPE,
                          meta={"rg": {"name": name, "seed": seed, "size": size, "settings": settings, "index": i,
                                       "entry": entry}}))
    return tasks


def _entry(task: Task) -> tuple[Any, dict[str, Any]]:
    """The generator and the item a task was made from (the item kept in the task: not every generator makes the same
    items twice in one process; list_functions does not)."""
    info = task.meta["rg"]
    ds = _dataset(info["name"], info["seed"], info["size"], json.dumps(info["settings"], sort_keys=True))
    return ds, info.get("entry") or ds[info["index"]]


_NUMERIC = NumericChecker()
#: reasoning-gym's rewards for an answer that parses but is wrong (``0.01`` "json parsable", ``0.05`` "valid format"):
#: a verdict counts them as 0, not as partial credit.
FORMAT_REWARDS = (0.01, 0.05)
#: Pairs that enclose a stated answer (bold, code, math, quotes); :func:`_unwrap` removes them, keeping what is inside.
_ENCLOSING = ("**", "__", "`", "$", "'", '"')


def _unwrap(text: str) -> str:
    """``text`` without the pairs of :data:`_ENCLOSING` around all of it (``**'x**2'**`` → ``x**2``); markup inside
    stays (``**`` is also Python's power)."""
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for mark in _ENCLOSING:
            if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark):
                text, changed = text[len(mark):-len(mark)].strip(), True
    return text


def is_numeric_reference(reference: str) -> bool:
    """True when ``reference`` is one plain number (``-4``, ``1,200``, ``9.36e-18``, ``−14282``; then the numeric
    reading applies)."""
    return bool(NUMBER_LITERAL.fullmatch(str(reference).strip().translate(_MINUS)))


def _forms(text: str) -> list[str]:
    """The forms of one stated answer that a verifier is asked about: as written, without enclosing bold, code, math
    or quotes (:func:`_unwrap`), without any markup (``**``, ``$``, backticks, ``\\boxed``), without a final
    period, with ASCII minus signs."""
    out = [text.strip()]
    for form in list(out):
        out += [_unwrap(form), _strip_markup(form), _unwrap(_strip_markup(form))]
    for form in list(out):
        if form.endswith("."):
            out.append(form[:-1].rstrip())
    out += [f.translate(_MINUS) for f in out]
    return list(dict.fromkeys(f for f in out if f))


def answer_candidates(task: Task, output: str) -> list[str]:
    """The answers read from ``output`` for a reasoning-gym ``task``, the first the one a report shows: the answer
    region's first line, the whole region (grids and other answers over several lines), each in its
    :func:`_forms`; for a numeric task (:func:`is_numeric_reference`) the numeric checker's reading first, or the
    expression itself where the span restates the question's arithmetic
    (:func:`~vecgen.benchmarks_data.checkers.restated_expression`), and none at all without a number."""
    text = clean_response(output)
    region = answer_region(text)
    lines = [line.strip() for line in region.splitlines() if line.strip()]
    spans = [lines[0], region] if lines else []
    out = [f for span in spans for f in _forms(span)]
    if is_numeric_reference(task.answer):
        pred, _, span = _NUMERIC.read(output)
        if pred is None:  # no number: nothing a numeric verifier could accept
            return []
        restated = restated_expression(span, task.question)
        out.insert(0, pred if restated is None else restated)
    return list(dict.fromkeys(out))


class RgChecker:
    """``rg``: the generator's own ``score_answer`` on the answers read from the output (:func:`answer_candidates`);
    the verdict is the best-scored one. Accuracy counts score 1; reasoning-gym's format rewards
    (:data:`FORMAT_REWARDS`) score 0."""

    answer_type = RG_ANSWER_TYPE

    def check(self, task: Task, output: str) -> Verdict:
        candidates = answer_candidates(task, output)
        if not candidates:
            return Verdict(None, False, 0.0)
        ds, entry = _entry(task)
        best, best_score = candidates[0], 0.0
        for cand in candidates:
            try:
                score = float(ds.score_answer(answer=cand, entry=entry))
            except Exception:  # noqa: BLE001 - a generator's verifier failing on odd model output scores 0
                score = 0.0
            if score != score or score in FORMAT_REWARDS:
                score = 0.0
            if score > best_score:
                best, best_score = cand, score
            if score >= 1.0:
                break
        return Verdict(best, best_score >= 1.0, min(best_score, 1.0))

    def validate(self, task: Task, where: str) -> None:
        """Generated items are always scorable."""


CHECKERS[RG_ANSWER_TYPE] = RgChecker()

__all__ = ["DEFAULT_RG_ITEMS", "FORMAT_REWARDS", "NO_REFERENCE", "RG_ANSWER_TYPE", "RgChecker", "answer_candidates",
           "is_numeric_reference", "reference_answer", "parse_rg_spec", "rg_names", "rg_settings", "rg_tasks"]
