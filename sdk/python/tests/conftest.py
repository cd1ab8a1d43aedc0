"""A real `hippo serve` for the client's tests: the embedded broker, the
deploy folder's plugins (memory, maintenance, examples) and the hostile
test plugin (`test.sleep`, `test.fail`), on a free loopback port."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

import hippo_client.client

KEY = "python-client-test-key"
# A key of half a request a second (a burst of one): for the 429 retries.
SLOW_KEY = "python-client-slow-key"
REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/hippo/target"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The base URL of a running `hippo serve`, stopped at the end."""
    binary = Path(os.environ.get("HIPPO_BIN", TARGET / "release/hippo"))
    assert binary.exists(), f"{binary}: run scripts/test, which builds it"
    plugins = tmp_path_factory.mktemp("plugins")
    for file in list((REPO / "plugins").glob("*.wasm")) + list((REPO / "plugins").glob("*.toml")):
        shutil.copy(file, plugins)
    shutil.copy(TARGET / "wasm32-wasip2/release/hostile_guest.wasm", plugins / "hostile.wasm")
    data = tmp_path_factory.mktemp("data")
    keys = data / "keys.toml"
    keys.write_text(
        '[[keys]]\nname = "slow"\nsha256 = "%s"\nscopes = ["read"]\nrate_per_s = 0.5\n'
        % hashlib.sha256(SLOW_KEY.encode()).hexdigest())
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HIPPO_API_KEYS_FILE", "HIPPO_BROKER_URL", "HIPPO_QDRANT_URL")}
    env.update(HIPPO_API_KEY=KEY, HIPPO_API_KEYS_FILE=str(keys), HIPPO_LOG="warn")
    process = subprocess.Popen(
        [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--no-dashboard",
         "--plugins", str(plugins), "--data-dir", str(data)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, "hippo serve exited early"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "hippo serve never became ready"
        time.sleep(0.2)
    yield url
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(autouse=True)
def environment(server, monkeypatch):
    """What a user's program would have: the API's URL and key in the
    environment, and no client made before them."""
    monkeypatch.setenv("HIPPO_API_URL", server)
    monkeypatch.setenv("HIPPO_API_KEY", KEY)
    monkeypatch.setattr(hippo_client.client, "_default", None)
