"""A sentence embedder in Python, the way a Python service runs one: the
`tokenizers` package on the model's tokenizer.json (padded to the longest
text of each batch, truncated to `max_length`), one onnxruntime
InferenceSession with hippo's session options (intra-op spinning off, all
graph optimisations), mean pooling over the attention mask and L2
normalisation in numpy. Used by embed_bench.py (speed) and recall_bench.py
(the reference rankings)."""

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


class Embedder:
    def __init__(self, graph, tokenizer, threads=2, max_length=256):
        self.tokenizer = Tokenizer.from_file(tokenizer)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.type_ids = any(i.name == "token_type_ids" for i in self.session.get_inputs())

    def embed(self, batch):
        """Unit vectors of `batch` (a list of strings), one row each."""
        encodings = self.tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if self.type_ids:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        states = self.session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def embed_all(self, texts, batch=64):
        """Unit vectors of any number of texts, embedded `batch` at a time."""
        rows = [self.embed(texts[i:i + batch]) for i in range(0, len(texts), batch)]
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
