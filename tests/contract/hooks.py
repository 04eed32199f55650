"""Schemathesis hooks for Slipway's API-contract test (tests/tests/e2e/contract.rs).

The fuzzer authenticates with an API token of the user the test names. A run may revoke
that token (DELETE /api/v1/tokens/{name} is fuzzed like any other operation), so the
provider below makes a new one whenever the API answers 401 to a request that carried
it, with a session it signs in for once (and again only if that session ends).
"""

import ast
import os
import threading
import time
import uuid

import requests
import schemathesis

# CPython before 3.12 (Debian 12 has 3.11) can fail `ast.parse` when two threads parse
# at once ("AST constructor recursion depth mismatch", python/cpython#106905), and
# Hypothesis parses lambdas' source to describe its strategies, from each of the
# fuzzer's worker threads. One parse at a time avoids it; parsing is not the fuzzer's
# hot path.
_parse = ast.parse
_parse_lock = threading.Lock()


def _serial_parse(*args, **kwargs):
    with _parse_lock:
        return _parse(*args, **kwargs)


ast.parse = _serial_parse

BASE = os.environ["SLIPWAY_URL"]
USER = os.environ["SLIPWAY_USER"]
PASSWORD = os.environ["SLIPWAY_PASSWORD"]


_session = {"token": None}
_session_lock = threading.Lock()


def _post(path, body, token=None):
    """POSTs, waiting out 429s: the fuzzer's own failed logins (every address shares
    127.0.0.1 here) trip the login throttle, which must not stop the run."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(30):
        response = requests.post(f"{BASE}/api/v1{path}", json=body, headers=headers, timeout=30)
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def _login():
    response = _post("/login", {"username": USER, "password": PASSWORD})
    response.raise_for_status()
    return response.json()["token"]


@schemathesis.auth(refresh_interval=24 * 3600, retry_on=[401])
class ApiToken:
    def get(self, case, ctx):
        name = f"fuzz-{uuid.uuid4().hex[:12]}"
        with _session_lock:
            if _session["token"] is None:
                _session["token"] = _login()
            created = _post("/tokens", {"name": name}, _session["token"])
            if created.status_code == 401:
                _session["token"] = _login()
                created = _post("/tokens", {"name": name}, _session["token"])
        created.raise_for_status()
        return created.json()["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
