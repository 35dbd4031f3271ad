"""Run by test_vllm_backend.py in a process of its own: a tiny random model folder (argv[1]) decodes the same greedy
tokens and soft-thinking traces on vLLM as on transformers. Its own process, because vLLM's parallel state is global
to a process: freeing a second in-process engine would tear down the groups the test module's engine still uses."""

import os
import sys

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

if __name__ == "__main__":
    import vecgen

    folder = sys.argv[1]
    prompts = ["def fib(n):", "The capital of France is", "Write a haiku about the sea."]
    questions = ["What is 12 + 30?", "Is 17 a prime number?"]
    vl = vecgen.load(folder, backend="vllm", n_ctx=256)
    tf = vecgen.load(folder)
    a, b = vl.generate(prompts, max_new_tokens=16), tf.generate(prompts, max_new_tokens=16)
    assert a == b, (a, b)
    a = [(o.trace, o.answer) for o in vl.think(questions, method="soft", max_think_tokens=12, max_answer_tokens=6)]
    b = [(o.trace, o.answer) for o in tf.think(questions, method="soft", max_think_tokens=12, max_answer_tokens=6)]
    assert a == b, (a, b)
    print("PARITY OK", flush=True)
