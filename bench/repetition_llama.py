"""Calibrate the repetition check on a real model: SmolLM2-135M through llama-server, at
temperature 0, where small models loop readily.

    python bench/repetition_llama.py [--max-tokens 400] [--out bench/results-repetition-smollm2.json]

Needs the llama-server built by scripts/llama-server.sh. Asks a fixed set of prompts
(chat and plain completions: explanations, lists, code, stories, questions), keeps
each answer, and prints for each whether ``loop_period`` calls its tail a loop, the
candidate unit and its cover. The answers are written to ``--out`` so the labels (loop
or not, read by a person) can be checked against the detector: docs/quality.md gives
the result.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import httpx

from proxy.quality.repetition import loop_period, measure
from tests.llamacpp.conftest import LlamaServer, find_llama_paths

PROMPTS = [
    "Explain how a bicycle works.",
    "Write a poem about the sea.",
    "List ten fruits.",
    "What is the capital of France?",
    "Write a Python function that reverses a string.",
    "Tell me a story about a dragon.",
    "What are the benefits of exercise?",
    "Describe the water cycle.",
    "Give me a recipe for pancakes.",
    "Why is the sky blue?",
    "Count from one to twenty in words.",
    "Write a haiku about autumn.",
    "Explain recursion to a child.",
    "What is machine learning?",
    "Summarize the plot of Romeo and Juliet.",
    "Write a letter to a friend about your holiday.",
    "List the planets of the solar system.",
    "How do I make a cup of tea?",
    "What is the meaning of life?",
    "Translate 'good morning' into five languages.",
    "Write SQL to count rows in a table named users.",
    "Describe your favourite animal.",
    "What happened in 1066?",
    "Give three tips for learning a language.",
]
COMPLETIONS = [
    "The history of the city begins",
    "Once upon a time there was a",
    "def fibonacci(n):",
    "1. Apples\n2.",
    "The rules of the game are simple:",
    "Dear Sir or Madam,",
    "In conclusion,",
    "The best way to learn is",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--out", default="bench/results-repetition-smollm2.json")
    parser.add_argument("--score", metavar="FILE", help="no server: score the labelled answers in FILE "
                        "(each has a label, loop or normal, read by a person) against the detector as it is now")
    args = parser.parse_args()
    if args.score:
        score(json.loads(Path(args.score).read_text()))
        return
    # ggml's AMX weight repacking crashes (SIGSEGV in ggml_backend_amx_mul_mat) on hosts whose
    # CPU has AMX but whose kernel or VM does not let a process use it; plain kernels work.
    os.environ.setdefault("LLAMA_ARG_REPACK", "false")
    paths = find_llama_paths()
    if isinstance(paths, str):
        raise SystemExit(paths)
    results = []
    with LlamaServer(paths, Path("/tmp/repetition-llama.log"), parallel=1) as server, \
            httpx.Client(base_url=server.url, timeout=300) as client:
        asks = [("chat", p) for p in PROMPTS] + [("completion", p) for p in COMPLETIONS]
        for kind, prompt in asks:
            if kind == "chat":
                r = client.post("/v1/chat/completions", json={
                    "model": "smollm2", "messages": [{"role": "user", "content": prompt}],
                    "temperature": 0, "max_tokens": args.max_tokens})
                text = r.json()["choices"][0]["message"]["content"]
            else:
                r = client.post("/v1/completions", json={"model": "smollm2", "prompt": prompt, "temperature": 0,
                                                          "max_tokens": args.max_tokens})
                text = r.json()["choices"][0]["text"]
            found = measure(text)
            period = loop_period(text)
            results.append({"kind": kind, "prompt": prompt, "text": text, "label": "?"})
            print(f"{'LOOP' if period else '    '} {kind:10} {prompt[:40]!r:44} len={len(text):5} "
                  f"cand={found[0] if found else '-'} cover={round(found[1], 2) if found else '-'} tail={text[-70:]!r}")
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"answers in {args.out}: label each 'loop' or 'normal' by reading it, then --score {args.out}")


def score(answers: list[dict[str, str]]) -> None:
    loops = [a for a in answers if a["label"] == "loop"]
    normal = [a for a in answers if a["label"] == "normal"]
    caught = sum(loop_period(a["text"]) is not None for a in loops)
    false = [a["prompt"] for a in normal if loop_period(a["text"]) is not None]
    print(f"loops caught: {caught} of {len(loops)}; normal answers flagged: {len(false)} of {len(normal)} {false}")


if __name__ == "__main__":
    main()
