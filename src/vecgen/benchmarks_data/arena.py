"""The reasoning arena: procedurally generated task families with answer checkers.

Every family turns ``(seed, index, difficulty)`` into one :class:`~vecgen.benchmarks_data.Task`
deterministically (same inputs → same question on any machine); responses are checked by the task's
answer type's checker (:func:`vecgen.benchmarks_data.checkers.check_answer`), tolerant of formatting
(``"42"``, ``"42.0"``, ``"The answer is 42."`` are all accepted for 42).
Answers are short (a number, Yes/No, or a name) so that a 0.5B Instruct model can answer in
16–32 new tokens.

Families (registry :data:`FAMILIES`, add more with :func:`register_family`):

=============  ==========================================================  ====================
family         source                                                      answer
=============  ==========================================================  ====================
arithmetic     reasoning-gym ``basic_arithmetic``                          integer
sequence       reasoning-gym ``number_sequence`` (next term)               integer
logic          reasoning-gym ``syllogism`` (logical deduction)             Yes / No
math_word      levels 1–2: vecgen templates; level 3: reasoning-gym        integer
               ``gsm_symbolic`` (GSM8K-style templates)
causal         vecgen                                                      Yes / No
comparison     vecgen                                                      a number or a name
=============  ==========================================================  ====================

Why some generators are our own (reasoning-gym 0.1.x covers the rest):

* **causal** — reasoning-gym has no cause → effect task. Ours states causal rules ("If the alarm
  rings, the dog barks."), a closed-world clause ("Nothing happens unless a fact or a rule causes
  it.") and one fact, then asks whether an event happens: forward chains (Yes), unrelated chains and
  causes upstream of the fact (No). Difficulty = chain length (1, 2, 3 rules).
* **math_word** levels 1–2 — reasoning-gym's word problems (``gsm_symbolic``) have one fixed
  difficulty (its config accepts only ``difficulty=1.0``) and need several steps, which a 0.5B model
  cannot do without chain of thought in a few tokens. Ours are one-step (level 1) and two-step
  (level 2) problems; level 3 uses ``gsm_symbolic``.
* **comparison** — no reasoning-gym task asks which of two numbers is larger or to order people by a
  transitive relation. Level 1: two integers; level 2: two decimals with different digit counts
  (3.9 vs 3.11); level 3: three or four people ordered by height ("Who is the tallest?").

Prompts (:func:`arena_prompt`): the question (a ``choice`` task's options lettered after it) and one
answer-format instruction per answer type (:data:`INSTRUCTIONS`).

Evaluation set: :func:`heldout_set` draws ``size`` items round-robin over the families from a
stream seeded separately from training, without duplicates; :func:`training_schedule` draws the
training episodes (family chosen by a seeded RNG, next unused index of that family) and skips every
item whose question is in the held-out set, so the two never overlap. Both are prefix-stable: the
first ``n`` episodes of a longer schedule are the ``n``-episode schedule (resume and extension keep
the data order).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..config import derive_seed
from ..errors import ConfigError
from .task import Task, task_text

#: Virtual size of every reasoning-gym dataset (``gsm_symbolic`` draws its template list from the size,
#: so it must be fixed for indices to mean the same item in every run).
RG_VIRTUAL_SIZE = 100_000
#: Difficulty levels accepted by every family.
DIFFICULTIES = (1, 2, 3)

#: The soft-prompt arena's answer-format instruction per answer type (after the question).
INSTRUCTIONS: dict[str, str] = {
    "numeric": "Answer with only the final number.",
    "yesno": "Answer with only Yes or No.",
    "choice": "Answer with only the correct option, no explanation.",
    "exact": "Answer with only the answer, no explanation.",
}


def arena_prompt(task: Task) -> str:
    """The question as the soft-prompt arena asks it: :func:`~vecgen.benchmarks_data.tasks.task_text` and the
    type's :data:`INSTRUCTIONS` line."""
    return f"{task_text(task)}\n{INSTRUCTIONS[task.answer_type]}"


def _task(family: str, seed: int, index: int, difficulty: int, question: str, answer: str, answer_type: str,
          source: str, choices: tuple[str, ...] = ()) -> Task:
    return Task(id=f"arena-{family}-{difficulty}-{index}", question=question, answer=answer, answer_type=answer_type,
                choices=choices, meta={"family": family, "index": index, "source": source, "seed": seed,
                                       "difficulty": difficulty})


def brief(task: Task) -> dict[str, Any]:
    """JSON-friendly summary of an arena task for records: family, index, question (as asked), answer."""
    return {"family": task.meta["family"], "index": task.meta["index"], "question": arena_prompt(task),
            "answer": task.answer}


Generator = Callable[[int, int, int], Task]


@dataclass(frozen=True)
class TaskFamily:
    """A registered task family.

    Attributes:
        name: registry key.
        description: one line for help texts and reports.
        source: ``reasoning-gym:<dataset>`` or ``vecgen`` (own generator).
        make: ``make(seed, index, difficulty) -> Task``, deterministic.
    """

    name: str
    description: str
    source: str
    make: Generator

    def item(self, seed: int, index: int, difficulty: int = 1) -> Task:
        """The task at ``index`` of the stream seeded by ``seed``.

        Raises:
            ConfigError: difficulty outside 1–3.
        """
        if difficulty not in DIFFICULTIES:
            raise ConfigError(f"difficulty={difficulty!r}: allowed values are 1, 2, 3")
        return self.make(int(seed), int(index), int(difficulty))


FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily) -> TaskFamily:
    """Add a family to :data:`FAMILIES` (name must be new)."""
    if family.name in FAMILIES:
        raise ValueError(f"task family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> TaskFamily:
    """The family called ``name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown task family {name!r}; choose from: {', '.join(FAMILIES)}") from None


def _rng(seed: int, family: str, index: int, difficulty: int) -> random.Random:
    return random.Random(derive_seed("vecgen-arena", family, seed, index, difficulty))


# ---------------------------------------------------------------- reasoning-gym families


@lru_cache(maxsize=64)
def _rg_dataset(name: str, seed: int, settings: tuple[tuple[str, Any], ...]) -> Any:
    import reasoning_gym  # lazy: 1.7 s to import, needed by the arena only

    return reasoning_gym.create_dataset(name, seed=seed, size=RG_VIRTUAL_SIZE, **dict(settings))


def _rg_family(
    family: str,
    dataset: str,
    levels: dict[int, dict[str, Any]],
    answer_type: str,
    template: str = "{q}",
) -> Generator:
    def make(seed: int, index: int, difficulty: int) -> Task:
        if not 0 <= index < RG_VIRTUAL_SIZE:
            raise ConfigError(f"{family}: index {index} outside [0, {RG_VIRTUAL_SIZE})")
        settings = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in levels[difficulty].items()))
        ds = _rg_dataset(dataset, derive_seed("rg", family, seed, difficulty), settings)
        entry = ds[index]
        question = template.format(q=entry["question"].strip())
        answer = str(entry["answer"]).strip()
        if answer_type == "yesno":
            answer = answer.capitalize()
        return _task(family, seed, index, difficulty, question, answer, answer_type, f"reasoning-gym:{dataset}")

    return make


register_family(TaskFamily(
    "arithmetic", "integer arithmetic expressions (+, -, *, /)", "reasoning-gym:basic_arithmetic",
    _rg_family("arithmetic", "basic_arithmetic", {
        1: dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1, operators=("+", "-"),
                allow_parentheses=False, allow_negation=False),
        2: dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2, operators=("+", "-", "*"),
                allow_parentheses=False, allow_negation=False),
        3: dict(min_terms=3, max_terms=4, min_digits=1, max_digits=2, operators=("+", "-", "*", "/"),
                allow_parentheses=True, allow_negation=True),
    }, "numeric"),
))

register_family(TaskFamily(
    "sequence", "next term of an integer sequence", "reasoning-gym:number_sequence",
    _rg_family("sequence", "number_sequence", {
        1: dict(min_terms=5, max_terms=6, max_complexity=1),
        2: dict(min_terms=5, max_terms=7, max_complexity=2),
        3: dict(min_terms=4, max_terms=8, max_complexity=3),
    }, "numeric", template="What number comes next in the sequence {q}"),
))

register_family(TaskFamily(
    "logic", "syllogisms: does a conclusion follow from two premises", "reasoning-gym:syllogism",
    _rg_family("logic", "syllogism", {
        1: dict(allow_no=False, allow_some_not=False, inversion_probability=0.0),
        2: dict(inversion_probability=0.0),
        3: dict(inversion_probability=0.5),
    }, "yesno"),
))

# ---------------------------------------------------------------- vecgen generators

_NAMES = ("Alice", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
          "Mia", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tara", "Victor")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "coins", "cards", "shells", "stamps")


def _word_problem(rng: random.Random, level: int) -> tuple[str, int]:
    name, friend = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    top = 20 if level == 1 else 50
    if level == 1:
        kind = rng.randrange(4)
        if kind == 0:
            a, b = rng.randint(2, top), rng.randint(2, top)
            return f"{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?", a + b
        if kind == 1:
            a = rng.randint(5, top)
            b = rng.randint(1, a - 1)
            return f"{name} has {a} {item} and gives {b} of them to {friend}. How many {item} does {name} have left?", a - b
        if kind == 2:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            return f"There are {a} boxes with {b} {item} in each box. How many {item} are there in total?", a * b
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return f"{name} shares {a * b} {item} equally among {a} friends. How many {item} does each friend get?", b
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(10, top), rng.randint(2, top)
        c = rng.randint(1, a + b - 1)
        return (f"{name} has {a} {item}, buys {b} more and then gives {c} to {friend}. "
                f"How many {item} does {name} have now?"), a + b - c
    if kind == 1:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        c = rng.randint(1, a * b - 1)
        return (f"{name} buys {a} packs of {item} with {b} {item} in each pack and loses {c} of them. "
                f"How many {item} does {name} have now?"), a * b - c
    if kind == 2:
        a, b = rng.randint(2, top), rng.randint(1, top)
        return (f"{name} has {a} {item}. {friend} has {b} more {item} than {name}. "
                f"How many {item} do they have together?"), a + (a + b)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return (f"{name} has {a} bags with {b} {item} each. {friend} has twice as many {item} as {name}. "
            f"How many {item} does {friend} have?"), 2 * a * b


def _make_math_word(seed: int, index: int, difficulty: int) -> Task:
    if difficulty == 3:
        return _rg_family("math_word", "gsm_symbolic", {3: {}}, "numeric")(seed, index, 3)
    rng = _rng(seed, "math_word", index, difficulty)
    question, answer = _word_problem(rng, difficulty)
    return _task("math_word", seed, index, difficulty, question, str(answer), "numeric", "vecgen:math_word")


register_family(TaskFamily(
    "math_word", "word problems (one-step, two-step; level 3: GSM8K-style)", "vecgen + reasoning-gym:gsm_symbolic",
    _make_math_word,
))

#: Events of the causal family: (statement, question).
_EVENTS = (
    ("the alarm rings", "Does the alarm ring?"), ("the dog barks", "Does the dog bark?"),
    ("the baby wakes up", "Does the baby wake up?"), ("the lights go out", "Do the lights go out?"),
    ("the pump starts", "Does the pump start?"), ("the tank fills", "Does the tank fill?"),
    ("the bell rings", "Does the bell ring?"), ("the fan turns on", "Does the fan turn on?"),
    ("the door opens", "Does the door open?"), ("the cat runs away", "Does the cat run away?"),
    ("the kettle boils", "Does the kettle boil?"), ("the road gets wet", "Does the road get wet?"),
    ("the fuse blows", "Does the fuse blow?"), ("the gate closes", "Does the gate close?"),
    ("the heater stops", "Does the heater stop?"), ("the plant grows", "Does the plant grow?"),
)


def _make_causal(seed: int, index: int, difficulty: int) -> Task:
    rng = _rng(seed, "causal", index, difficulty)
    length = difficulty  # rules in the chain that starts at the fact
    events = rng.sample(range(len(_EVENTS)), 2 * length + 3)
    chain = events[: length + 1]  # chain[0] causes chain[1] causes ...
    other = events[length + 1 : length + 1 + max(2, length)]  # an unrelated chain
    rules = [(chain[i], chain[i + 1]) for i in range(length)] + [(other[i], other[i + 1]) for i in range(len(other) - 1)]
    start = 0
    if difficulty >= 2 and rng.random() < 0.3:
        start = 1  # the fact is in the middle: events upstream of it do not happen
    fact = chain[start]
    choice = rng.random()
    if choice < 0.5:
        target, answer = chain[-1], "Yes"
    elif start == 1 and choice < 0.75:
        target, answer = chain[0], "No"
    else:
        target, answer = rng.choice(other), "No"
    rng.shuffle(rules)
    text = " ".join(f"If {_EVENTS[a][0]}, {_EVENTS[b][0]}." for a, b in rules)
    question = (f"Rules: {text} Nothing happens unless a fact or a rule causes it.\n"
                f"Fact: {_EVENTS[fact][0]}.\nQuestion: {_EVENTS[target][1]}")
    return _task("causal", seed, index, difficulty, question, answer, "yesno", "vecgen:causal")


register_family(TaskFamily("causal", "cause-and-effect chains: does an event happen", "vecgen", _make_causal))


def _make_comparison(seed: int, index: int, difficulty: int) -> Task:
    rng = _rng(seed, "comparison", index, difficulty)
    if difficulty in (1, 2):
        if difficulty == 1:
            a, b = rng.sample(range(10, 100), 2)
            sa, sb = str(a), str(b)
        else:  # same integer part, different numbers of decimals (3.9 vs 3.11)
            whole = rng.randint(1, 20)
            while True:
                x, y = rng.randint(1, 9), rng.randint(10, 99)
                if x * 10 != y:
                    break
            sa, sb = f"{whole}.{x}", f"{whole}.{y}"
            if rng.random() < 0.5:
                sa, sb = sb, sa
        larger = rng.random() < 0.5
        word = "larger" if larger else "smaller"
        answer = max(sa, sb, key=float) if larger else min(sa, sb, key=float)
        question = f"Which number is {word}: {sa} or {sb}?"
        return _task("comparison", seed, index, difficulty, question, answer, "choice", "vecgen:comparison",
                     choices=(sa, sb))
    people = rng.sample(_NAMES, rng.choice((3, 4)))  # tallest first
    pairs = [(people[i], people[i + 1]) for i in range(len(people) - 1)]
    rng.shuffle(pairs)
    facts = " ".join(f"{a} is taller than {b}." if rng.random() < 0.5 else f"{b} is shorter than {a}." for a, b in pairs)
    tallest = rng.random() < 0.5
    answer = people[0] if tallest else people[-1]
    question = f"{facts} Who is the {'tallest' if tallest else 'shortest'}?"
    return _task("comparison", seed, index, difficulty, question, answer, "choice", "vecgen:comparison",
                 choices=tuple(sorted(people)))


register_family(TaskFamily("comparison", "which number is larger / who is tallest", "vecgen", _make_comparison))

# ---------------------------------------------------------------- held-out set and schedule


def _check_families(families: Sequence[str]) -> list[str]:
    if not families:
        raise ConfigError("no task families given; choose from: " + ", ".join(FAMILIES))
    for name in families:
        get_family(name)
    return list(families)


def eval_seed(seed: int) -> int:
    """Seed of the held-out stream of a run seeded ``seed``."""
    return derive_seed("eval", seed)


def train_seed(seed: int) -> int:
    """Seed of the training stream of a run seeded ``seed``."""
    return derive_seed("train", seed)


def heldout_set(seed: int, size: int, families: Sequence[str], difficulty: int = 1) -> list[Task]:
    """The fixed held-out evaluation set of a run: ``size`` items, round-robin over ``families``.

    Items of one family are taken in index order from the eval stream, skipping repeated questions.

    Raises:
        ConfigError: unknown family, ``size < 1``, or a family that cannot produce enough distinct items.
    """
    families = _check_families(families)
    if size < 1:
        raise ConfigError(f"eval_size={size}: allowed range is >= 1")
    seen: set[str] = set()
    next_index = dict.fromkeys(families, 0)
    items: list[Task] = []
    for k in range(size):
        name = families[k % len(families)]
        for _ in range(1000):
            item = get_family(name).item(eval_seed(seed), next_index[name], difficulty)
            next_index[name] += 1
            if item.question not in seen:
                break
        else:
            raise ConfigError(f"family {name!r} cannot produce {size} distinct held-out items at difficulty {difficulty}")
        seen.add(item.question)
        items.append(item)
    return items


def arena_tasks(
    families: Sequence[str] | None = None, size: int = 300, *, seed: int = 0, difficulty: int = 1
) -> list[Task]:
    """Held-out arena items as benchmark tasks, for ``vecgen think --benchmark arena``.

    The items are :func:`heldout_set`'s (round-robin over ``families``, default all, eval stream of
    ``seed``), each of its family's answer type; ids are ``arena-<family>-<difficulty>-<index>`` and ``meta``
    keeps ``family``, ``index``, ``source``, ``seed`` (the stream's) and ``difficulty``.
    :func:`~vecgen.benchmarks_data.write_task_file` saves them as a task file.

    Raises:
        ConfigError: an unknown family, or a bad ``size`` / ``difficulty``.
    """
    return heldout_set(seed, size, list(FAMILIES) if families is None else families, difficulty)


def training_schedule(
    seed: int, episodes: int, families: Sequence[str], heldout: Sequence[Task], difficulty: int = 1
) -> list[tuple[str, int]]:
    """The data order of training: ``(family, index)`` per episode (index in the training stream).

    The family of each episode is drawn by an RNG seeded from ``seed``; the index is the family's next
    index whose question is not in ``heldout``. Prefix-stable: ``schedule(n)[:m] == schedule(m)``.
    """
    families = _check_families(families)
    rng = random.Random(derive_seed("schedule", seed))
    banned = {item.question for item in heldout}
    next_index = dict.fromkeys(families, 0)
    order: list[tuple[str, int]] = []
    for _ in range(episodes):
        name = families[rng.randrange(len(families))]
        for _ in range(1000):
            index = next_index[name]
            next_index[name] += 1
            if get_family(name).item(train_seed(seed), index, difficulty).question not in banned:
                break
        else:  # pragma: no cover - only with a held-out set covering the whole family
            raise ConfigError(f"family {name!r} has no training items left outside the held-out set")
        order.append((name, index))
    return order


def training_item(seed: int, family: str, index: int, difficulty: int = 1) -> Task:
    """The training item ``(family, index)`` of a run seeded ``seed``."""
    return get_family(family).item(train_seed(seed), index, difficulty)


def questions_digest(items: Any) -> str:
    """sha256 of the held-out questions (as asked, :func:`~vecgen.benchmarks_data.arena.arena_prompt`) and answers, in
    order (detects a changed arena on resume)."""
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.meta['family']}\x00{arena_prompt(item)}\x00{item.answer}\x01".encode())
    return h.hexdigest()
