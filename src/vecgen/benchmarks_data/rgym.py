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
from .checkers import CHECKERS, NumericChecker, Verdict, _strip_markup, answer_span, clean_response
from .task import Task

#: Items of an ``rg:`` benchmark without ``--limit``.
DEFAULT_RG_ITEMS = 1000
#: The answer type of reasoning-gym tasks (scored by the generator; not a task-file type).
RG_ANSWER_TYPE = "rg"


def _datasets() -> dict[str, Any]:
    from reasoning_gym.factory import DATASETS  # lazy: reasoning-gym takes ~1.7 s to import

    return DATASETS


def rg_names() -> list[str]:
    """The names of reasoning-gym's generators."""
    return sorted(_datasets())


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
                          answer=str(entry["answer"]).strip(), answer_type=RG_ANSWER_TYPE,
                          meta={"rg": {"name": name, "seed": seed, "size": size, "settings": settings, "index": i}}))
    return tasks


def _entry(task: Task) -> tuple[Any, dict[str, Any]]:
    info = task.meta["rg"]
    ds = _dataset(info["name"], info["seed"], info["size"], json.dumps(info["settings"], sort_keys=True))
    return ds, ds[info["index"]]


_NUMERIC = NumericChecker()


class RgChecker:
    """``rg``: the generator's ``score_answer`` on the answer read from the output (module docstring)."""

    answer_type = RG_ANSWER_TYPE

    def check(self, task: Task, output: str) -> Verdict:
        if _NUMERIC.read(task.answer)[0] is not None:  # a number: read it as the numeric checker does
            pred = _NUMERIC.read(output)[0]
        else:
            pred = _strip_markup(answer_span(clean_response(output))) or None
        if pred is None:
            return Verdict(None, False, 0.0)
        ds, entry = _entry(task)
        try:
            score = float(ds.score_answer(answer=pred, entry=entry))
        except Exception:  # noqa: BLE001 - a generator's verifier failing on odd model output scores 0
            score = 0.0
        return Verdict(pred, score >= 1.0, score)

    def validate(self, task: Task, where: str) -> None:
        """Generated items are always scorable."""


CHECKERS[RG_ANSWER_TYPE] = RgChecker()

__all__ = ["DEFAULT_RG_ITEMS", "RG_ANSWER_TYPE", "RgChecker", "parse_rg_spec", "rg_names", "rg_settings", "rg_tasks"]
