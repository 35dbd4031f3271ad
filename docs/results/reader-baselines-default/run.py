"""The reader table's translation rows for Patchscopes and SelfIE: the held-out examples `vecgen reader train`
evaluates on (60 arena questions, seed 1, the default ReaderConfig), scored by the same top-1 exact match."""
import json, sys, time
import vecgen
from vecgen.probes.reader import translation_scores
from vecgen.probes.reader_data import ReaderConfig, cut_prompts, make_examples, source_texts

t0 = time.perf_counter()
m = vecgen.load("default", device="cpu", dtype="float32")
cfg = ReaderConfig.create()
examples = make_examples(m, cut_prompts(source_texts("arena"), cfg.eval_examples, cfg.seed + 1), cfg, seed=cfg.seed + 1)
t1 = time.perf_counter()
methods = ["nearest", "instruction", "patchscope", "selfie"]
scores = translation_scores(m, examples, methods)
out = {"model": m.describe(), "examples": len(examples), "seed": cfg.seed + 1, "methods": methods,
       "exact_match": scores, "data_s": t1 - t0, "translate_s": time.perf_counter() - t1}
json.dump(out, open(sys.argv[1], "w"), indent=2, default=str)
print(json.dumps({k: v["exact_match"] for k, v in scores.items()}, indent=1), out["data_s"], out["translate_s"])
