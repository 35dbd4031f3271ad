"""Data-parallel runs: the same command on N processes, each doing its share of the items.

Launch with PyTorch's launcher or accelerate's (one machine or several)::

    torchrun --nproc_per_node 2 -m vecgen think --benchmark gsm8k --limit 8 --run-name r
    accelerate launch --num_processes 8 -m vecgen think ...        # GPUs

Without a launcher (``WORLD_SIZE`` unset or 1) a command is one process and nothing here initialises
``torch.distributed``. With one, accelerate's :class:`~accelerate.PartialState` joins the process group
(gloo on the CPU, NCCL on GPUs; each process gets its GPU by local rank).

How work is shared: items are cut into the same batches as a one-process run (``--batch-size``), and
batch ``b`` goes to process ``b mod N``. Sampling generators are seeded per batch from the run seed, so
every item is decoded in the same batch with the same seed whatever ``N`` is: records do not depend on the
number of processes. Each process appends to its own ``records.rank<i>.jsonl``; after a barrier the main
process merges them into ``records.jsonl`` and writes the results, exactly as a one-process run does. A
resumed run (any ``N``) skips the items found in all of these files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Processes:
    """This process's place in a data-parallel run.

    Attributes:
        index: rank (0 = main). count: number of processes. state: accelerate's ``PartialState`` (None alone).
    """

    index: int = 0
    count: int = 1
    state: Any = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def owns(self, batch: int) -> bool:
        """Whether batch number ``batch`` is this process's share."""
        return batch % self.count == self.index

    def wait(self) -> None:
        """Barrier: return when every process has reached it (no-op alone)."""
        if self.count > 1:
            self.state.wait_for_everyone()

    def device(self, device: str) -> str:
        """The device this process decodes on: ``device``, or its own GPU (by local rank) for ``auto``/``cuda``."""
        if self.count > 1 and device in ("auto", "cuda"):
            return str(self.state.device)
        return device

    @property
    def records_file(self) -> str:
        """This process's records file: ``records.jsonl`` alone, ``records.rank<i>.jsonl`` in a group."""
        return "records.jsonl" if self.count == 1 else f"records.rank{self.index}.jsonl"


def processes(device: str = "auto") -> Processes:
    """Join the data-parallel group when started by ``torchrun`` / ``accelerate launch``; else one process.

    Args:
        device: the ``--device`` option; ``cpu`` (or no CUDA) selects the gloo backend.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    from accelerate import PartialState  # lazy: only data-parallel runs need it

    state = PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
    return Processes(state.process_index, state.num_processes, state)
