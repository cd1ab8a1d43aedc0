"""Embedding throughput of Python onnxruntime, the way a Python service runs
it (minilm.Embedder: the same tokenizer.json, graph, thread count and session
options as hippo's).

    python embed_bench.py --graph G --tokenizer T --texts FILE.json \
        [--threads 2] [--batches 1,8,32] [--seconds 3] [--max-length 256]

FILE.json holds a list of strings. Prints one JSON line:
{"graph": ..., "threads": N, "texts_per_second": {"1": x, "8": y, "32": z}}
"""

import argparse
import json
import time

from minilm import Embedder


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--graph", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--texts", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    texts = json.load(open(args.texts))
    embed = Embedder(args.graph, args.tokenizer, args.threads, args.max_length).embed

    rates = {}
    for size in [int(b) for b in args.batches.split(",")]:
        embed(texts[:size])  # warm-up
        done, position, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            batch = texts[position:position + size]
            if len(batch) < size:
                position, batch = 0, texts[:size]
            embed(batch)
            done += len(batch)
            position += size
        rates[str(size)] = done / (time.perf_counter() - start)
    print(json.dumps({"graph": args.graph, "threads": args.threads, "texts_per_second": rates}))


if __name__ == "__main__":
    main()
