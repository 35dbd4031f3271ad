"""Local lm-evaluation-harness tasks for tests: a JSON Lines file and its task YAML, no hub access."""

from __future__ import annotations

import json
from pathlib import Path


def generate_until_task(directory: Path, name: str, rows: list[dict], *, doc_to_text: str, until: list[str],
                        max_gen_toks: int, temperature: float | None = None) -> Path:
    """Write ``NAME.jsonl`` (the rows) and ``NAME.yaml`` (a ``generate_until`` task scored by exact match).

    ``doc_to_text`` is a Jinja template over the rows' fields (e.g. ``"Question: {{question}}\\nAnswer:"``); the
    target is the row's ``answer``. Returns ``directory`` (pass it as ``TaskManager(include_path=...)``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    generation = {"until": until, "max_gen_toks": max_gen_toks}
    if temperature is not None:
        generation["temperature"] = temperature
    gen_lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in generation.items())
    (directory / f"{name}.yaml").write_text(f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: {json.dumps(doc_to_text)}
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
{gen_lines}metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")
    return directory
