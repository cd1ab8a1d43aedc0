"""Recall quality on tests/data/recall/conversations.json, through hippo's
REST API as a user would run it, beside two references computed here over
the same texts.

hippo: every user's turns go in with one `memory.batch-create` (no
deduplication, each turn with its session and time), then every question is
asked with `POST /api/v1/memories/recall` (k = 10) in each mode: `vector`,
`keyword` and `hybrid`.

References, per user (recall searches one user's memories):
- bm25: rank-bm25's BM25Okapi with its standard settings (k1 1.5, b 0.75),
  over lowercased word tokens (no stemming, no stop words);
- rrf: reciprocal-rank fusion (k = 60) of that BM25 ranking (the turns it
  scores above 0) and the cosine ranking of the same MiniLM graph hippo
  embeds with (minilm.Embedder).

Figures: recall@1/5/10 (an answer turn among the first k) and MRR@10, for
all questions and by kind (exact, paraphrase, mixed, stale), and hippo's
recall latency over HTTP (p50, p99). Prints a table, then one JSON line.

    python recall_bench.py --api URL --key KEY --graph G --tokenizer T [--data FILE]
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import statistics
import sys
import time
import urllib.parse

import numpy as np
from minilm import Embedder
from rank_bm25 import BM25Okapi

K = 10
RRF_K = 60
MODES = ["vector", "keyword", "hybrid"]
REFERENCES = ["bm25", "rrf"]
KINDS = ["exact", "paraphrase", "mixed", "stale"]


class Api:
    """hippo's REST API over one kept-alive connection."""

    def __init__(self, url, key):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path, body):
        self.conn.request("POST", path, json.dumps(body), self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            sys.exit(f"recall_bench: POST {path} answered {response.status}: {data[:500]!r}")
        return json.loads(data)


def tokens(text):
    return re.findall(r"\w+", text.lower())


def rank_of(ranked, answers):
    """1-based rank of the first answer in `ranked`, or None."""
    for i, key in enumerate(ranked[:K]):
        if key in answers:
            return i + 1
    return None


def figures(ranks):
    n = len(ranks)
    hit = lambda k: sum(1 for r in ranks if r is not None and r <= k) / n
    return {
        "recall_at_1": round(hit(1), 4),
        "recall_at_5": round(hit(5), 4),
        "recall_at_10": round(hit(10), 4),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 4),
    }


def cached_vectors(embedder, texts, graph):
    """The unit vectors of `texts`, cached under ~/.cache/hippo/bench by the
    texts and the graph (embedding 5,000 turns takes a minute here)."""
    digest = hashlib.sha256((graph + "\0" + "\0".join(texts)).encode()).hexdigest()[:16]
    folder = os.path.expanduser("~/.cache/hippo/bench")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"recall-vectors-{digest}.npy")
    if os.path.exists(path):
        return np.load(path)
    vectors = embedder.embed_all(texts)
    np.save(path, vectors)
    return vectors


def rrf(*rankings):
    fused = {}
    for ranking in rankings:
        for position, key in enumerate(ranking):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + position + 1)
    return sorted(fused, key=lambda key: (-fused[key], key))


def main():
    parser = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    default_data = os.path.join(here, "..", "..", "tests", "data", "recall", "conversations.json")
    parser.add_argument("--api", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--data", default=default_data)
    args = parser.parse_args()

    data = json.load(open(args.data))
    users = data["users"]
    questions = data["questions"]
    api = Api(args.api, args.key)

    # Ingest: one batch per user, as a conversation is imported.
    started = time.perf_counter()
    key_of_id = {}
    for user in users:
        batch = [
            {"text": m["text"], "user_id": user["user_id"], "session_id": m["session"],
             "created_at": m["created_at"]}
            for m in user["memories"]
        ]
        status = api.post(
            "/api/v1/tasks/memory/batch-create?wait=60",
            {"memories": batch, "check_duplicates": False},
        )
        if status.get("status") != "SUCCESS":
            sys.exit(f"recall_bench: batch-create of {user['user_id']} ended {status.get('status')}: "
                     f"{status.get('error')}")
        results = status["result"]["results"]
        for memory, result in zip(user["memories"], results):
            key_of_id[result["memory"]["id"]] = memory["key"]
    ingest_s = time.perf_counter() - started
    memories = sum(len(u["memories"]) for u in users)
    print(f"ingested {memories} memories of {len(users)} users in {ingest_s:.1f} s", file=sys.stderr)

    # hippo's three modes.
    ranks = {name: [] for name in MODES + REFERENCES}
    latencies = {mode: [] for mode in MODES}
    for q in questions:
        for mode in MODES:
            t = time.perf_counter()
            out = api.post(
                "/api/v1/memories/recall",
                {"query": q["question"], "user_id": q["user_id"], "k": K, "mode": mode},
            )
            latencies[mode].append((time.perf_counter() - t) * 1000)
            ranked = [key_of_id[r["memory"]["id"]] for r in out["results"]]
            ranks[mode].append(rank_of(ranked, set(q["answers"])))

    # The references, per user.
    embedder = Embedder(args.graph, args.tokenizer)
    by_user = {u["user_id"]: u for u in users}
    texts = [m["text"] for u in users for m in u["memories"]]
    vectors = cached_vectors(embedder, texts, args.graph)
    offsets, position = {}, 0
    for u in users:
        offsets[u["user_id"]] = position
        position += len(u["memories"])
    bm25 = {u["user_id"]: BM25Okapi([tokens(m["text"]) for m in u["memories"]]) for u in users}
    query_vectors = embedder.embed_all([q["question"] for q in questions])
    for q, qv in zip(questions, query_vectors):
        user = by_user[q["user_id"]]
        keys = [m["key"] for m in user["memories"]]
        start = offsets[q["user_id"]]
        cosines = vectors[start:start + len(keys)] @ qv
        by_cosine = [keys[i] for i in np.argsort(-cosines, kind="stable")]
        scores = bm25[q["user_id"]].get_scores(tokens(q["question"]))
        by_bm25 = [keys[i] for i in np.argsort(-scores, kind="stable") if scores[i] > 0]
        answers = set(q["answers"])
        ranks["bm25"].append(rank_of(by_bm25, answers))
        ranks["rrf"].append(rank_of(rrf(by_bm25, by_cosine), answers))

    report = {"memories": memories, "users": len(users), "questions": len(questions), "k": K}
    by_kind = {}
    print(f"{'':10} {'r@1':>7} {'r@5':>7} {'r@10':>7} {'mrr':>7}   (" + ", ".join(
        f"{kind} {sum(1 for q in questions if selects(q, kind))}" for kind in KINDS) + ")")
    for name in MODES + REFERENCES:
        report[name] = figures(ranks[name])
        f = report[name]
        print(f"{name:10} {f['recall_at_1']:7.4f} {f['recall_at_5']:7.4f} {f['recall_at_10']:7.4f} {f['mrr']:7.4f}")
        for kind in KINDS:
            chosen = [r for r, q in zip(ranks[name], questions) if selects(q, kind)]
            by_kind.setdefault(kind, {})[name] = figures(chosen)
    for kind in KINDS:
        line = "  ".join(f"{name} {by_kind[kind][name]['recall_at_5']:.3f}" for name in MODES + REFERENCES)
        print(f"  recall@5 on {kind:10}: {line}")
    report["by_kind"] = by_kind
    for mode in MODES:
        ordered = sorted(latencies[mode])
        report[f"{mode}_p50_ms"] = round(statistics.median(ordered), 2)
        report[f"{mode}_p99_ms"] = round(ordered[int(0.99 * (len(ordered) - 1))], 2)
    report["ingest_seconds"] = round(ingest_s, 1)
    print(json.dumps(report))


def selects(question, kind):
    return question.get("stale", False) if kind == "stale" else question["kind"] == kind


if __name__ == "__main__":
    main()
