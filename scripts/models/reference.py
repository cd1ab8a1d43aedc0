"""Reference outputs for hippo's model tests, computed the plain Python way:
onnxruntime on the same graphs, the `tokenizers` package on the same
tokenizer.json, pooling in numpy, one text per run (no padding at all).

    reference.py MODELS_DIR OUT_JSON

Written by scripts/fetch-models next to the graphs; read by tests/models.rs.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_LENGTH = 256
TEXTS = [
    "I like dark chocolate",
    "I prefer dark chocolate",
    "Paris is the capital of France",
    "The user's daughter starts school in September and needs a new backpack.",
    "Remember to call the dentist on Monday about the cleaning appointment.",
    # longer than MAX_LENGTH tokens: checks that both sides truncate the same way
    " ".join(["the quarterly budget review covers travel, hiring and cloud costs"] * 40),
]
QUERY = "what does the user like to eat?"
PASSAGES = [
    "I like dark chocolate",
    "Paris is the capital of France",
    "The user prefers spicy food and dislikes mushrooms.",
]


def tokenizer(models_dir):
    tok = Tokenizer.from_file(str(models_dir / "all-minilm-l6-v2" / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_LENGTH)
    return tok


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feed(sess, encoding):
    ids = np.array([encoding.ids], np.int64)
    inputs = {"input_ids": ids, "attention_mask": np.array([encoding.attention_mask], np.int64)}
    if any(i.name == "token_type_ids" for i in sess.get_inputs()):
        inputs["token_type_ids"] = np.array([encoding.type_ids], np.int64)
    return sess.run(None, inputs)[0][0]


def embeddings(sess, tok):
    mean, cls = [], []
    for text in TEXTS:
        hidden = feed(sess, tok.encode(text))  # [sequence, hidden]; one text: no padding
        pooled = hidden.mean(axis=0)
        mean.append((pooled / np.linalg.norm(pooled)).tolist())
        cls.append(hidden[0].tolist())
    return mean, cls


def main(models_dir, out):
    models_dir = Path(models_dir)
    tok = tokenizer(models_dir)
    minilm = models_dir / "all-minilm-l6-v2"
    int8_mean, int8_cls = embeddings(session(minilm / "model-int8.onnx"), tok)
    fp32_mean, _ = embeddings(session(minilm / "model-fp32.onnx"), tok)
    reranker = session(models_dir / "test-cross-encoder" / "model.onnx")
    logits = [float(feed(reranker, tok.encode(QUERY, passage))[0]) for passage in PASSAGES]
    reference = {
        "max_length": MAX_LENGTH,
        "texts": TEXTS,
        "int8_mean_normalized": int8_mean,
        "int8_cls_raw": int8_cls,
        "fp32_mean_normalized": fp32_mean,
        "rerank_query": QUERY,
        "rerank_passages": PASSAGES,
        "rerank_logits": logits,
    }
    tmp = Path(out + ".tmp")
    tmp.write_text(json.dumps(reference))
    tmp.replace(out)
    print(f"reference.py: {out}: {len(TEXTS)} texts, {len(PASSAGES)} rerank pairs")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
