"""The compose test: docker-compose.yml run for real, on loopback.

Brings the stack up with the host-network override (tests/compose/
host-network.yml), deploys a plugin through the API, submits memory and
custom tasks under a steady load, scales the workers from 2 to 3, kills a
worker container and restarts Redis while the load runs, then checks that
every accepted task reached exactly one final state, successfully, and that
only tasks a killed worker held ran twice. Run by scripts/test-compose (not
by the default suite: it needs a Docker engine). Every loop is bounded in
count and time; everything it starts is removed at the end, volumes included.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
PROJECT = "hippo-compose-test"
API = "http://127.0.0.1:18000"
DASHBOARD = "http://127.0.0.1:15555"
KEY = secrets.token_hex(24)
DASHBOARD_LOGIN = ("admin", secrets.token_hex(12))
# Bounds of the load phase: at most this many submissions, at most this long.
MAX_SUBMISSIONS = 3_000
LOAD_SECONDS = 75
# A worker reserves at most concurrency × (1 + prefetch) tasks (the .env's
# CELERY_WORKER_CONCURRENCY and _PREFETCH_MULTIPLIER): only those may run
# twice when the worker is killed.
KILLED_WORKER_HOLDS = 4 * (1 + 4)


def compose_command() -> list[str]:
    if os.environ.get("HIPPO_COMPOSE"):
        return os.environ["HIPPO_COMPOSE"].split()
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    sys.exit("compose test: neither `docker compose` nor `docker-compose` is installed")


BASE = compose_command() + ["-p", PROJECT]
# The deployment as the test runs it: docker-compose.yml with the host-network
# override, merged by compose itself, less the published ports (Docker
# refuses them beside host networking, and an override can only add to a
# list). Written once .env exists: compose reads it into the merged file.
MERGED = REPO / "tests/compose/.merged.yml"
COMPOSE = BASE + ["-f", str(MERGED)]


def write_merged_file() -> None:
    merged = subprocess.run(
        BASE + ["-f", str(REPO / "docker-compose.yml"),
                "-f", str(REPO / "tests/compose/host-network.yml"), "config"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    config = yaml.safe_load(merged)
    for service in config["services"].values():
        service.pop("ports", None)
    MERGED.write_text(yaml.safe_dump(config, sort_keys=False))


def compose(*args: str, check: bool = True, quiet: bool = False) -> str:
    print("+ compose", " ".join(args), flush=True)
    done = subprocess.run(
        COMPOSE + list(args), cwd=REPO, capture_output=quiet, text=True
    )
    if check and done.returncode != 0:
        if quiet:
            print(done.stdout, done.stderr, file=sys.stderr)
        raise SystemExit(f"compose {' '.join(args)} failed ({done.returncode})")
    return done.stdout if quiet else ""


def containers(service: str) -> list[str]:
    ids = compose("ps", "-q", service, quiet=True).split()
    running = []
    for container in ids:
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", container],
            capture_output=True, text=True,
        ).stdout.strip()
        if state == "true":
            running.append(container)
    return running


def wait_until(what: str, probe, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    compose("logs", "--tail", "40", check=False)
    raise SystemExit(f"compose test: {what} not within {seconds:.0f} s")


class Load:
    """Submits a steady mix of tasks from one thread; keeps what was accepted."""

    def __init__(self, client: httpx.Client):
        self.client = client
        self.accepted: dict[str, str] = {}  # task id -> kind
        self.refused = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def submit(self, n: int) -> None:
        kind = ("crunch", "noop", "create", "recall")[n % 4]
        if kind == "crunch":
            path, body = "/api/v1/tasks/submit", {"task": "bench.crunch", "input": {"rounds": 200}}
        elif kind == "noop":
            path, body = "/api/v1/tasks/submit", {"task": "bench.noop", "input": None}
        elif kind == "create":
            path = "/api/v1/tasks/memory/create"
            body = {"text": f"compose test fact number {n}: the parcel code is P{n:05}",
                    "user_id": f"user-{n % 5}"}
        else:
            path = "/api/v1/tasks/memory/recall"
            body = {"query": f"parcel code P{n - 1:05}", "user_id": f"user-{n % 5}", "k": 3}
        try:
            response = self.client.post(path, json=body, timeout=10)
        except httpx.HTTPError:
            self.refused += 1
            return
        if response.status_code in (200, 202):
            self.accepted[response.json()["task_id"]] = kind
        else:
            self.refused += 1

    def run(self) -> None:
        started = time.monotonic()
        for n in range(MAX_SUBMISSIONS):
            if self.stop.is_set() or time.monotonic() - started > LOAD_SECONDS:
                return
            self.submit(n)
            time.sleep(0.02)


def final_states(client: httpx.Client, ids: list[str], seconds: float) -> dict[str, dict]:
    """Each task's status once final, or its last status at the deadline."""
    final = {"SUCCESS", "FAILURE", "REVOKED"}
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + seconds
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still = []
        for task_id in pending:
            try:
                status = client.get(f"/api/v1/tasks/status/{task_id}", timeout=10).json()
            except (httpx.HTTPError, json.JSONDecodeError):
                still.append(task_id)
                continue
            seen[task_id] = status
            if status.get("status") not in final:
                still.append(task_id)
        pending = still
        if pending:
            time.sleep(2)
    return seen


def main() -> int:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        sys.exit("compose test: no Docker engine answers (start dockerd first)")
    env_file = REPO / ".env"
    if env_file.exists():
        sys.exit("compose test: .env exists; it is yours, so the test does not touch it (move it aside)")
    subprocess.run([str(REPO / "tests/compose/stand-in-images")], check=True)
    bench_guest = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/hippo/target")) \
        / "wasm32-wasip2/release/hippo_bench_guest.wasm"
    if not bench_guest.exists():
        sys.exit(f"compose test: {bench_guest} is missing (run scripts/build-guests)")

    # The deployment's settings: the example, with the secrets it leaves empty.
    env = (REPO / ".env.example").read_text()
    env = env.replace("HIPPO_API_KEY=\n", f"HIPPO_API_KEY={KEY}\n")
    env = env.replace("FLOWER_BASIC_AUTH=\n", f"FLOWER_BASIC_AUTH={DASHBOARD_LOGIN[0]}:{DASHBOARD_LOGIN[1]}\n")
    env_file.write_text(env)
    try:
        write_merged_file()
        return exercise(bench_guest)
    finally:
        if MERGED.exists():
            compose("logs", "--tail", "20", "api", "worker", check=False)
            compose("down", "-v", "--remove-orphans", check=False)
            MERGED.unlink()
        env_file.unlink()


def exercise(bench_guest: Path) -> int:
    started = time.monotonic()
    compose("build")
    built = time.monotonic()
    compose("up", "-d", "--scale", "worker=2")
    client = httpx.Client(base_url=API, headers={"Authorization": f"Bearer {KEY}"})
    wait_until("the API ready", lambda: httpx.get(f"{API}/readyz", timeout=5).status_code == 200, 240)
    wait_until("the dashboard up", lambda: httpx.get(f"{DASHBOARD}/healthcheck", timeout=5).status_code == 200, 120)
    flower = httpx.get(f"{DASHBOARD}/api/workers", auth=DASHBOARD_LOGIN, timeout=10)
    assert flower.status_code == 200, f"the dashboard's Flower API: {flower.status_code}"
    up = time.monotonic()

    # A plugin deployed through the API reaches every worker (shared volume).
    deployed = client.put("/api/v1/plugins/bench", content=bench_guest.read_bytes(),
                          headers={"Content-Type": "application/wasm"}, timeout=60)
    assert deployed.status_code in (200, 201), f"deploy: {deployed.status_code} {deployed.text}"
    probe = client.post("/api/v1/tasks/submit", json={"task": "bench.noop", "input": None}).json()["task_id"]
    assert final_states(client, [probe], 60)[probe]["status"] == "SUCCESS", "bench.noop after deploy"

    load = Load(client)
    load.thread.start()
    time.sleep(10)
    compose("up", "-d", "--no-recreate", "--scale", "worker=3")
    wait_until("three workers running", lambda: len(containers("worker")) == 3, 60)
    time.sleep(10)
    victim = containers("worker")[0]
    print(f"+ docker kill {victim[:12]} (a worker)", flush=True)
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    killed_at = time.monotonic()
    time.sleep(10)
    compose("restart", "redis")
    time.sleep(10)
    load.thread.join(LOAD_SECONDS + 30)
    load.stop.set()

    ids = list(load.accepted)
    states = final_states(client, ids, 300)
    finished = time.monotonic()
    by_status: dict[str, int] = {}
    for task_id in ids:
        status = states.get(task_id, {}).get("status", "UNKNOWN")
        by_status[status] = by_status.get(status, 0) + 1
    twice = [t for t in ids if states.get(t, {}).get("runs", 0) > 1]
    lost = sum(n for s, n in by_status.items() if s not in ("SUCCESS", "FAILURE", "REVOKED"))
    failed = [t for t in ids if states.get(t, {}).get("status") in ("FAILURE", "REVOKED")]
    kinds: dict[str, int] = {}
    for kind in load.accepted.values():
        kinds[kind] = kinds.get(kind, 0) + 1

    print()
    print("| compose test | count |")
    print("|---|---|")
    print(f"| submissions accepted | {len(ids)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}) |")
    print(f"| submissions refused (Redis restarting) | {load.refused} |")
    for status, n in sorted(by_status.items()):
        print(f"| final state {status} | {n} |")
    print(f"| ran twice (held by the killed worker) | {len(twice)} |")
    print(f"| lost | {lost} |")
    print(f"| image build s | {built - started:.0f} |")
    print(f"| stack up s | {up - built:.0f} |")
    print(f"| drained s after the kill | {finished - killed_at:.0f} |")
    for task_id in failed[:5]:
        print(f"failed: {task_id} {json.dumps(states[task_id].get('error'))}", file=sys.stderr)

    ok = True
    if len(ids) < 100:
        print(f"FAIL: only {len(ids)} submissions accepted", file=sys.stderr)
        ok = False
    if lost or failed:
        print(f"FAIL: {lost} lost, {len(failed)} failed", file=sys.stderr)
        ok = False
    if len(twice) > KILLED_WORKER_HOLDS:
        print(f"FAIL: {len(twice)} ran twice, more than the killed worker held", file=sys.stderr)
        ok = False
    print("compose test:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
