"""Embedding throughput of Python onnxruntime, the way a Python service runs
it: the `tokenizers` package on the same tokenizer.json (padded to the
longest text of each batch, truncated to --max-length), one InferenceSession
with the same thread count and session options as hippo's (intra-op spinning
off, all graph optimisations), mean pooling over the attention mask and
normalisation in numpy.

    python embed_bench.py --graph G --tokenizer T --texts FILE.json \
        [--threads 2] [--batches 1,8,32] [--seconds 3] [--max-length 256]

FILE.json holds a list of strings. Prints one JSON line:
{"graph": ..., "threads": N, "texts_per_second": {"1": x, "8": y, "32": z}}
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


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
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_length=args.max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(args.graph, options, providers=["CPUExecutionProvider"])
    type_ids = any(i.name == "token_type_ids" for i in session.get_inputs())

    def embed(batch):
        encodings = tok.encode_batch(batch)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if type_ids:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        states = session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

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
