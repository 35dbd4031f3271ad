"""What a ProsQA continuous thought decodes to: the logit lens of every thought over the graph's nodes.

"Reasoning by superposition" (Zhu et al. 2025, arXiv 2505.12514) reports that continuous thoughts on graph
reachability hold several frontier nodes of a breadth-first search at once. :func:`thought_readout` asks this of a
``coconut`` checkpoint on ProsQA items (their graphs in :attr:`Task.meta`): for thought ``j`` (0-based) the
*frontier* is the set of nodes exactly ``j + 1`` edges from the root; the readout is the softmax of the LM head on the
hidden state that becomes the thought (the logits at the position before it, so it is what the model "would say"
there: the last-layer logit lens), restricted to the graph's node words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..benchmarks_data import Task
from ..benchmarks_data.prosqa import node_depths
from ..errors import ConfigError
from ..models import LoadedModel, adapter_for
from .forward import thought_logits
from .sequences import Example, collate, encode_task, marker_ids


@dataclass
class ThoughtReadout:
    """Per thought position, means over items (lists indexed by thought).

    Attributes:
        n_items: items read.
        frontier_mass: probability on the frontier's node words (nodes ``j + 1`` edges from the root).
        reachable_mass: probability on every node the root reaches.
        frontier_share: ``frontier_mass`` over the mass on all node words (where the thought's node mass goes).
        frontier_nodes_above: frontier nodes with probability >= ``threshold`` (several = superposition).
        frontier_size: nodes in the frontier.
        frontier_chance: the frontier's share of the graph's nodes (``frontier_share`` of a thought that spreads its
            node mass evenly: the baseline to read ``frontier_share`` against).
        top1_frontier: share of items whose top node word is a frontier node.
        top1_on_proof: share of items whose top node word is the proof's node at that depth.
        threshold: the probability a node needs to count in ``frontier_nodes_above``.
    """

    n_items: int = 0
    frontier_mass: list[float] = field(default_factory=list)
    reachable_mass: list[float] = field(default_factory=list)
    frontier_share: list[float] = field(default_factory=list)
    frontier_nodes_above: list[float] = field(default_factory=list)
    frontier_size: list[float] = field(default_factory=list)
    frontier_chance: list[float] = field(default_factory=list)
    top1_frontier: list[float] = field(default_factory=list)
    top1_on_proof: list[float] = field(default_factory=list)
    threshold: float = 0.05


def thought_readout(lm: LoadedModel, tasks: Sequence[Task], *, n_thoughts: int | None = None,
                    threshold: float = 0.05, batch_size: int = 16) -> ThoughtReadout:
    """The logit lens of each continuous thought over ProsQA's graph nodes (module docstring).

    Args:
        lm: a ``coconut`` checkpoint of ``vecgen train`` on the transformers backend.
        tasks: ProsQA items with their graphs (``idx_to_symbol``, ``edges``, ``root`` in :attr:`Task.meta`).
        n_thoughts: thoughts to read (default the checkpoint's).
        threshold: probability for a frontier node to count as held (``frontier_nodes_above``).

    Raises:
        ConfigError: a model that vecgen did not train, no PyTorch model, or items without a graph.
    """
    fmt = lm.reasoning
    if fmt is None or lm.model is None:
        raise ConfigError("thought_readout reads a coconut checkpoint of vecgen train on the transformers backend",
                          param="model")
    if not tasks or any("edges" not in t.meta or "idx_to_symbol" not in t.meta for t in tasks):
        raise ConfigError("thought_readout needs ProsQA items with their graphs (meta: idx_to_symbol, edges, root)",
                          param="tasks")
    n = fmt.n_thoughts if n_thoughts is None else n_thoughts
    tok, model = lm.tokenizer, lm.model
    ids = marker_ids(tok, fmt)
    scale = float(adapter_for(model.config).embed_scale(model.config))
    sums: dict[str, list[float]] = {k: [0.0] * n for k in ("fm", "rm", "fs", "fa", "fz", "fc", "t1", "tp")}
    for b0 in range(0, len(tasks), batch_size):
        chunk = tasks[b0:b0 + batch_size]
        encs = [encode_task(tok, t, fmt) for t in chunk]
        batch = collate([Example((*e.question, ids.bot), n, (ids.eot,), (False,)) for e in encs], ids)
        with torch.no_grad():
            logits = thought_logits(model, batch.to(lm.device), continuous=True, embed_scale=scale)
        probs = torch.softmax(logits[:, batch.prefix_width - 1: batch.prefix_width - 1 + n].float(), -1).cpu()
        for i, t in enumerate(chunk):
            names = t.meta["idx_to_symbol"]
            node_ids = [tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in names]
            depth = node_depths(t.meta["edges"], int(t.meta["root"]))
            proof = [names.index(s.rstrip(".").split()[-1]) if s.rstrip(".").split()[-1] in names else -1
                     for s in t.steps]
            for j in range(n):
                p = probs[i, j]
                node_p = torch.tensor([float(p[k]) for k in node_ids])
                frontier = [k for k, d in depth.items() if d == j + 1]
                reach = [k for k, d in depth.items() if d >= 1]
                fm = float(node_p[frontier].sum()) if frontier else 0.0
                total = float(node_p.sum())
                top = int(node_p.argmax())
                sums["fm"][j] += fm
                sums["rm"][j] += float(node_p[reach].sum()) if reach else 0.0
                sums["fs"][j] += fm / total if total > 0 else 0.0
                sums["fa"][j] += sum(1 for k in frontier if node_p[k] >= threshold)
                sums["fz"][j] += len(frontier)
                sums["fc"][j] += len(frontier) / len(names)
                sums["t1"][j] += float(top in frontier)
                sums["tp"][j] += float(j < len(proof) and top == proof[j])
    m = len(tasks)
    avg = {k: [v / m for v in vs] for k, vs in sums.items()}
    return ThoughtReadout(m, avg["fm"], avg["rm"], avg["fs"], avg["fa"], avg["fz"], avg["fc"], avg["t1"], avg["tp"], threshold)


__all__ = ["ThoughtReadout", "thought_readout"]
