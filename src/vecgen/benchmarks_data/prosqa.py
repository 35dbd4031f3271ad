"""ProsQA (Hao et al. 2024, arXiv 2412.06769, appendix A; facebookresearch/coconut, MIT): "Is Tom a lempus or
scrompus?" over a random DAG of "Every X is a Y." facts, answered by a proof along the shortest path.

Two sources of the same :class:`~vecgen.benchmarks_data.Task` items (``answer_type`` ``exact``; ``steps`` the
proof, one sentence per edge; the graph in :attr:`Task.meta` under ProsQA's own keys ``idx_to_symbol``, ``edges``,
``root``, ``target``, ``neg_target``):

* :func:`load_prosqa_valid` — the real validation split (300 items) shipped under ``vecgen/data/prosqa/`` with its
  licence (the ``prosqa`` benchmark);
* :func:`generate_prosqa` — training sets of any size and seed, built the way the paper's appendix describes: person
  names and ``-pus`` concepts from ProsQA's own pool (:data:`PERSONS`, :data:`CONCEPTS`: the 17 names and 38 concepts
  of the validation split); a root person whose target is reached by exactly ``d`` edges at the shortest (3–6), a
  negative target reachable only from another person, both leaves; every other node and edge placed so that
  reachability from the root and the shortest path stay as planted. Sizes follow the validation split's measured
  distributions (17–28 nodes, about 36 edges, 2–6 persons, proof length 3: 41 %, 4: 44 %, 5: 12 %, 6: 2 %).
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from .task import Task
from .tasks import load_task_file

#: The person names of ProsQA's validation split.
PERSONS = ("Alex", "Bob", "Carol", "Davis", "Eva", "Fae", "Gabriel", "Jack", "Max", "Oliver", "Polly", "Rex", "Sally",
           "Sam", "Stella", "Tom", "Wren")
#: The concept words of ProsQA's validation split.
CONCEPTS = ("bompus", "boompus", "brimpus", "chorpus", "dumpus", "felpus", "fompus", "gerpus", "gorpus", "grimpus",
            "gwompus", "hilpus", "impus", "jelpus", "jompus", "kerpus", "lempus", "lorpus", "numpus", "quimpus",
            "rempus", "rompus", "rorpus", "scrompus", "shumpus", "sterpus", "storpus", "terpus", "timpus", "tumpus",
            "vumpus", "worpus", "wumpus", "yerpus", "yimpus", "yumpus", "zhorpus", "zumpus")
#: Items in the shipped validation split.
PROSQA_VALID_SIZE = 300
#: Proof lengths and their shares in the validation split (124, 133, 36, 7 of 300).
_DEPTHS = ((3, 124), (4, 133), (5, 36), (6, 7))
#: Persons per question and their shares in the validation split.
_PERSONS = ((2, 180), (3, 93), (4, 21), (5, 5), (6, 1))


def shipped_prosqa_path() -> Path:
    """Path of the packaged ProsQA validation split (``vecgen/data/prosqa/prosqa_valid.json``)."""
    return Path(str(resources.files("vecgen") / "data" / "prosqa" / "prosqa_valid.json"))


def load_prosqa_valid() -> list[Task]:
    """The 300 ProsQA validation items as tasks (ids ``prosqa-valid-NNNN``, 0-based in file order)."""
    return load_task_file(shipped_prosqa_path(), id_prefix="prosqa-valid")


def _weighted(rng: random.Random, table: tuple[tuple[int, int], ...]) -> int:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def node_depths(edges: Sequence[Sequence[int]], root: int) -> dict[int, int]:
    """Every node the ``root`` reaches along ``edges`` (``[from, to]`` index pairs), with its fewest edges from it
    (breadth-first; the root at 0)."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(int(a), []).append(int(b))
    return _bfs(adj, int(root))


def _bfs(adj: dict[int, list[int]], start: int) -> dict[int, int]:
    depth, queue = {start: 0}, deque([start])
    while queue:
        node = queue.popleft()
        for nxt in adj.get(node, ()):
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    return depth


def _layered(rng: random.Random, source: int, nodes: list[int], path: list[int], edges: set[tuple[int, int]],
             leaves: set[int]) -> dict[int, int]:
    """Place ``nodes`` in layers below ``source`` (``path`` planted at layers 1, 2, ...), each with a parent one layer
    up, and add extra edges one layer down only; returns each node's layer (its BFS depth from ``source``)."""
    layer = {source: 0}
    for i, node in enumerate(path):
        layer[node] = i + 1
        edges.add((path[i - 1] if i else source, node))
    deepest = max(len(path), 2)
    for node in nodes:
        if node in layer:
            continue
        depth = rng.randint(1, deepest)
        parents = [n for n, d in layer.items() if d == depth - 1 and n not in leaves]
        if not parents:
            depth, parents = 1, [source]
        layer[node] = depth
        edges.add((rng.choice(parents), node))
    ranked = sorted(layer, key=layer.get)  # type: ignore[arg-type]
    for node in ranked:
        if node == source or node in leaves:
            continue
        below = [n for n in ranked if layer[n] == layer[node] + 1]
        for nxt in rng.sample(below, k=min(len(below), rng.choice((0, 1, 1, 2, 2)))):
            edges.add((node, nxt))
    return layer


def generate_item(rng: random.Random, index: int, *, prefix: str = "prosqa-gen") -> Task:
    """One ProsQA-style item drawn with ``rng`` (the module docstring says how)."""
    depth = _weighted(rng, _DEPTHS)
    n_persons = _weighted(rng, _PERSONS)
    n_concepts = max(rng.randint(17, 28) - n_persons, depth + 4)
    names = rng.sample(PERSONS, n_persons) + rng.sample(CONCEPTS, n_concepts)
    persons = list(range(n_persons))
    concepts = list(range(n_persons, n_persons + n_concepts))
    rng.shuffle(concepts)
    root = persons[0]
    n_reach = max(depth + 1, round(n_concepts * rng.uniform(0.5, 0.75)))
    reach, other = concepts[:n_reach], concepts[n_reach:]
    path, target = reach[:depth], reach[depth - 1]
    edges: set[tuple[int, int]] = set()
    _layered(rng, root, reach, path, edges, leaves={target})
    # the negative target: reachable from another person only, 1-4 edges down, a leaf
    neg_depth = min(rng.choice((1, 2, 2, 2, 3, 3)), len(other))
    neg_path, neg_target = other[:neg_depth], other[neg_depth - 1]
    others = persons[1:]
    _layered(rng, others[0], other, neg_path, edges, leaves={neg_target})
    for person in others[1:]:  # further persons: facts about concepts on either side
        for concept in rng.sample([c for c in concepts if c not in (target, neg_target)], k=rng.randint(1, 2)):
            edges.add((person, concept))
    # edges from the root's unreachable side into the reachable side change neither reachability nor the proof
    for node in rng.sample(other, k=min(len(other), rng.randint(0, 3))):
        if node != neg_target:
            edges.add((node, rng.choice([c for c in reach if c != target])))
    adj: dict[int, list[int]] = {}
    for a, b in sorted(edges):
        adj.setdefault(a, []).append(b)
    found = _bfs(adj, root)
    if found.get(target) != depth or neg_target in found or adj.get(target) or adj.get(neg_target):
        raise RuntimeError("ProsQA generator: the planted proof did not hold")  # a bug, not bad input
    edge_list = sorted(edges)
    rng.shuffle(edge_list)

    def fact(a: int, b: int) -> str:
        return f"{names[a]} is a {names[b]}." if a in persons else f"Every {names[a]} is a {names[b]}."

    options = [names[target], names[neg_target]]
    rng.shuffle(options)
    question = " ".join(fact(a, b) for a, b in edge_list) + f" Is {names[root]} a {options[0]} or {options[1]}?"
    proof = [root, *path]
    steps = tuple(fact(a, b) for a, b in zip(proof, proof[1:]))
    meta = {"idx_to_symbol": names, "edges": [list(e) for e in edge_list], "root": root, "target": target,
            "neg_target": neg_target}
    return Task(id=f"{prefix}-{index:05d}", question=question, answer=f"{names[root]} is a {names[target]}.",
                answer_type="exact", steps=steps, meta=meta)


def generate_prosqa(n: int, *, seed: int = 0, prefix: str = "prosqa-gen") -> list[Task]:
    """``n`` ProsQA-style items from ``seed`` (the same ``n`` and ``seed`` give the same items; a larger ``n`` extends
    a smaller one). Questions that equal one of the shipped validation questions are skipped, so a generated training
    set never holds a dev item.

    Raises:
        ConfigError: ``n < 1``.
    """
    if n < 1:
        raise ConfigError(f"n={n}: allowed range is >= 1", param="n")
    rng = random.Random(f"prosqa-{seed}")
    held_out = {t.question for t in load_prosqa_valid()}
    out: list[Task] = []
    while len(out) < n:
        item = generate_item(rng, len(out), prefix=prefix)
        if item.question not in held_out:
            out.append(item)
    return out


def write_coconut_json(path: str | Path, tasks: list[Task]) -> Path:
    """Write ``tasks`` in the coconut/iCoT JSON format (a list of ``question``/``steps``/``answer`` objects with
    their meta), which :func:`~vecgen.benchmarks_data.load_task_file` reads back."""
    from ..io import atomic_write_text

    data = [{"question": t.question, "steps": list(t.steps), "answer": t.answer, **t.meta} for t in tasks]
    return atomic_write_text(path, json.dumps(data, ensure_ascii=False) + "\n")


__all__ = ["CONCEPTS", "PERSONS", "PROSQA_VALID_SIZE", "generate_item", "generate_prosqa", "load_prosqa_valid",
           "node_depths",
           "shipped_prosqa_path", "write_coconut_json"]
