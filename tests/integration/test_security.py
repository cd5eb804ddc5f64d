"""Security: nonces are single-use across worker processes, per-merchant rate
limits answer 429 with Retry-After, a disabled merchant is shut out, merchant
secrets are encrypted at rest, and the code keeps its promises (constant-time
comparisons, SQL only through parameters, no shell-outs, no committed private
keys, pinned dependencies). The leak test — every log line and error body of
the suite grepped for secrets — runs last (see conftest.py)."""
from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import aiohttp
import pytest

from paycore.merchants.auth import signed_headers
from tests.support import leaks
from tests.support.helpers import nfc_token
from tests.support.ops import second_paycore

REPO = Path(__file__).resolve().parent.parent.parent
SOURCE_DIRS = ("paycore", "channels")


def _sources() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]


async def _cli(stack, *args: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), *args, env=stack.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


async def _signed(session, base: str, merchant: str, secret: str, path: str, nonce: str | None = None):
    h = signed_headers(merchant, secret, "GET", path, b"", nonce=nonce)
    async with session.get(base + path, headers=h) as r:
        return r.status, await r.json(), r.headers


# ------------------------------------------------------------------ nonces across processes
async def test_a_nonce_is_refused_by_every_worker_once_used(stack, tmp_path):
    """A second paycore with two workers (SO_REUSEPORT) on another port, the same database: a nonce
    used at the first process is refused by both workers of the second, and vice versa."""
    async with second_paycore(stack, tmp_path) as other:
        path = "/v1/payments?merchant_order_no=no-such-order"
        for first, then in ((stack.base, other), (other, stack.base)):
            nonce = secrets.token_hex(12)
            async with aiohttp.ClientSession() as s:
                st, body, _ = await _signed(s, first, stack.merchant_id, stack.secret, path, nonce)
            assert st == 404, body
            # every replay on a fresh connection, so both workers of the second process get some
            for _ in range(8):
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                    st, body, _ = await _signed(s, then, stack.merchant_id, stack.secret, path, nonce)
                assert st == 401 and body["error"]["code"] == "UNAUTHENTICATED", body
        # and two fresh nonces sent at once to the two-worker process: one answer each, no replays
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            got = await asyncio.gather(*(_signed(s, other, stack.merchant_id, stack.secret, path)
                                         for _ in range(20)))
        assert [g[0] for g in got] == [404] * 20


# ------------------------------------------------------------------ rate limits, disabled merchants
async def test_per_merchant_rate_limit_is_429_with_retry_after(stack):
    mid = "m_rl_" + secrets.token_hex(3)
    out = await _cli(stack, "merchant", "add", mid, "--rate-limit", "5")
    secret = out["secret"]
    leaks.remember(f"merchant secret of {mid}", secret)
    path = "/v1/payments?merchant_order_no=nothing"
    async with aiohttp.ClientSession() as s:
        got = await asyncio.gather(*(_signed(s, stack.base, mid, secret, path) for _ in range(40)))
        limited = [g for g in got if g[0] == 429]
        assert limited and len(limited) < 40
        assert all(g[0] in (404, 429) for g in got)
        for _, body, headers in limited:
            assert body["error"]["code"] == "RATE_LIMITED"
            assert int(headers["Retry-After"]) >= 1
        wait = max(int(h["Retry-After"]) for _, _, h in limited)
        # the default merchant is not slowed by another's limit
        st, _, _ = await _signed(s, stack.base, stack.merchant_id, stack.secret, path)
        assert st == 404
        await asyncio.sleep(wait)
        st, _, _ = await _signed(s, stack.base, mid, secret, path)
        assert st == 404


async def test_a_disabled_merchant_is_401_until_enabled(stack):
    mid = "m_off_" + secrets.token_hex(3)
    secret = (await _cli(stack, "merchant", "add", mid))["secret"]
    leaks.remember(f"merchant secret of {mid}", secret)
    path = "/v1/payments?merchant_order_no=nothing"
    async with aiohttp.ClientSession() as s:
        assert (await _signed(s, stack.base, mid, secret, path))[0] == 404
        await _cli(stack, "merchant", "disable", mid)
        deadline = time.monotonic() + 10   # merchants are cached for a second per worker
        while True:
            st, body, _ = await _signed(s, stack.base, mid, secret, path)
            if st == 401 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert st == 401 and body["error"]["code"] == "UNAUTHENTICATED"
        pay = signed_headers(mid, secret, "POST", "/v1/payments", b'{"merchant_order_no":"x"}')
        async with s.post(stack.base + "/v1/payments", data=b'{"merchant_order_no":"x"}', headers=pay) as r:
            assert r.status == 401
        await _cli(stack, "merchant", "enable", mid)
        await asyncio.sleep(1.2)
        assert (await _signed(s, stack.base, mid, secret, path))[0] == 404
    assert await stack.pool.fetchval("select count(*) from payments where merchant_id = $1", mid) == 0


async def test_merchant_secrets_are_encrypted_at_rest(stack):
    rows = await stack.pool.fetch("select id, secret_enc from merchants")
    assert rows
    mine = {k: v for k, v in leaks.SECRETS.items() if k.startswith("merchant secret")}
    for r in rows:
        blob = bytes(r["secret_enc"])
        for value in mine.values():
            for form in (value.encode(), value.encode().hex().encode()):
                assert form not in blob, f"{r['id']}: secret stored in clear"
    assert len({bytes(r["secret_enc"]) for r in rows}) == len(rows)


async def test_nfc_tokens_and_cryptograms_are_masked_in_answers_and_events(stack):
    token, crypt = nfc_token("6250946", 16), \
        "Q" + secrets.token_hex(10) + "=="
    leaks.remember("an NFC token sent in a test", token)
    leaks.remember("an NFC cryptogram sent in a test", crypt)
    r = await stack.pay(amount=1500, method="nfc", nfc={"token": token, "expiry": "2912", "cryptogram": crypt,
                                                        "wallet": "applepay"})
    assert r.status == 201, r.body
    text = json.dumps(r.body)
    assert token not in text and crypt not in text
    assert r.body["nfc"]["token"] == token[:6] + "*" * (len(token) - 10) + token[-4:]
    rows = await stack.pool.fetch("select payload::text as p from events where payment_id = $1", r.body["id"])
    assert rows and all(token not in x["p"] and crypt not in x["p"] for x in rows)
    row = await stack.pool.fetchrow("select row_to_json(p)::text as j from payments p where id = $1", r.body["id"])
    assert token not in row["j"] and crypt not in row["j"]


# ------------------------------------------------------------------ what the code promises
_SECRETISH = re.compile(r"(^|_)(sig|signature|mac|hmac|digest|token|secret|csrf)s?($|_)", re.I)
_NOT_SECRET = re.compile(r"(_type|_method|_len|_name|_key_file|_no)$", re.I)
#: equality on a value that is not secret, with the reason
_EQ_ALLOWED = {("channels/wxv3/transformers.py", "bill_hash_ok"): "hash of a downloaded bill file: public"}


def _names(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
        elif isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute)):
            out.append(n.func.id if isinstance(n.func, ast.Name) else n.func.attr)
    return out


def _functions(tree: ast.AST):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield fn


def test_signatures_and_tokens_are_compared_in_constant_time():
    offenders = []
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text())
        for fn in _functions(tree):
            for node in ast.walk(fn):
                if not isinstance(node, ast.Compare) or not any(isinstance(o, (ast.Eq, ast.NotEq)) for o in node.ops):
                    continue
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Constant) for s in sides):
                    continue   # against a literal: a kind, a status, "" — not a secret
                names = [n for s in sides for n in _names(s)]
                if any(_SECRETISH.search(n) and not _NOT_SECRET.search(n) and not n.isupper() for n in names):
                    if (rel, fn.name) not in _EQ_ALLOWED:
                        offenders.append(f"{rel}:{node.lineno} in {fn.name}: {ast.unparse(node)}")
    assert offenders == [], "use hmac.compare_digest:\n" + "\n".join(offenders)
    uses = sum(p.read_text().count("compare_digest(") for p in _sources())
    assert uses >= 5


_SQL_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare"}
#: SQL built with an f-string whose parts are not module constants, with the reason it is safe
_SQL_ALLOWED = {
    ("paycore/storage/db.py", "ensure_database"): "database name checked against [A-Za-z0-9_]{1,63} first",
    ("paycore/ops/webhooks.py", "listing"): "fixed column names and '$n' placeholders; values go as parameters",
    ("paycore/ops/webhooks.py", "replay"): "one of two fixed conditions; values go as parameters",
    ("paycore/core/afterrecovery.py", "_claim"): "the select and table are the module's constants for splits, "
                                                "returns and payouts; values go as parameters",
    ("paycore/core/payouts.py", "_commit_new"): "column list and $n placeholders from the constant PAYOUT_COLS",
    ("paycore/core/splits.py", "create_receiver"): "column list and $n placeholders from the constant RECEIVER_COLS",
    ("paycore/core/splits.py", "_commit_new_split"): "column list and $n placeholders from the constant SPLIT_COLS",
    ("paycore/core/splits.py", "_return"): "column list and $n placeholders from the constant RETURN_COLS",
    ("paycore/merchants/auditlog.py", "search"): "fixed column names and '$n' placeholders; values go as parameters",
    ("paycore/merchants/users.py", "_update"): "the SET clause comes from this module's callers' literals; "
                                               "values go as parameters",
    ("paycore/merchants/users.py", "login"): "one fixed optional clause; values go as parameters",
    ("paycore/ops/maintain.py", "run"): "an int from the config (lock_timeout_ms)",
    ("paycore/ops/maintain.py", "_finish_detaches"): "table and partition names from the catalog (pg_inherits), "
                                                     "quoted; DDL takes no parameters",
    ("paycore/ops/maintain.py", "_reattach"): "partition names and bounds from the catalog; DDL takes no parameters",
    ("paycore/ops/maintain.py", "_retire"): "table and partition names from the catalog, quoted",
    ("paycore/ops/maintain.py", "why_kept"): "partition names from the catalog, quoted; values go as parameters",
    ("paycore/ops/reconcile.py", "latest_runs"): "the constant DISCREPANCIES column names; values go as parameters",
}


def _constant_parts(node: ast.JoinedStr, constants: set[str]) -> bool:
    for v in node.values:
        if isinstance(v, ast.FormattedValue):
            names = [n for n in ast.walk(v.value) if isinstance(n, ast.Name)]
            if not names or any(n.id not in constants for n in names):
                return False
    return True


def test_sql_is_built_only_from_constants_and_parameters():
    offenders = []
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text())
        constants = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                     for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                     if isinstance(t, ast.Name) and (t.id.isupper() or t.id.startswith("_"))}
        constants |= {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom)
                      for a in node.names if (a.asname or a.name).isupper()}
        for fn in _functions(tree):
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in _SQL_CALLS and node.args):
                    continue
                q = node.args[0]
                bad = (isinstance(q, ast.JoinedStr) and not _constant_parts(q, constants)) or \
                      (isinstance(q, ast.BinOp) and isinstance(q.op, (ast.Mod, ast.Add))
                       and not all(isinstance(x, ast.Constant) or (isinstance(x, ast.Name) and x.id in constants)
                                   for x in (q.left, q.right))) or \
                      (isinstance(q, ast.Call) and isinstance(q.func, ast.Attribute) and q.func.attr == "format")
                if bad and (rel, fn.name) not in _SQL_ALLOWED:
                    offenders.append(f"{rel}:{node.lineno} in {fn.name}: {ast.unparse(q)[:120]}")
    assert offenders == [], "SQL with interpolated values (use $n parameters):\n" + "\n".join(offenders)


#: modules that may start processes: none in production (the dev stack that starts Postgres and the
#: broker is devstack/, outside the server; `paycore serve --workers N` uses multiprocessing)
_SUBPROCESS_ALLOWED: set[str] = set()


def test_no_shell_outs_on_any_request_path():
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text()
        assert "shell=True" not in text, rel
        assert "os.system(" not in text and "os.popen(" not in text, rel
        if re.search(r"^\s*(import subprocess|from subprocess import|import asyncio\.subprocess)", text, re.M) or \
                "create_subprocess_" in text:
            assert rel in _SUBPROCESS_ALLOWED, f"{rel} starts processes"


def test_no_private_keys_are_committed_outside_test_vectors():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for f in files:
        p = REPO / f
        if not p.is_file() or p.stat().st_size > 2_000_000:
            continue
        try:
            text = p.read_text(errors="ignore")
        except OSError:
            continue
        if re.search(r"-----BEGIN (RSA |EC |ENCRYPTED |OPENSSH )?PRIVATE KEY-----", text):
            found.append(f)
    # published test vectors live in unit tests; simulators and dev stacks generate theirs at start
    assert [f for f in found if not f.startswith("tests/unit/") or f == "tests/unit/test_security.py"] == []
    assert not any(f.endswith((".pem", ".key", ".p12", ".pfx")) for f in files)


def test_dependencies_are_pinned():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = list(meta["dependencies"]) + [d for group in meta.get("optional-dependencies", {}).values() for d in group]
    assert deps
    loose = [d for d in deps if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[0-9][A-Za-z0-9_.\-+]*", d.replace(" ", ""))]
    assert loose == [], f"unpinned: {loose}"


# ------------------------------------------------------------------ nothing leaks (runs last)
def _channel_secrets(root: Path) -> dict[str, str]:
    out = {}
    for f in root.rglob("keys/*/*"):
        if f.name in ("secret", "des_key"):
            out[f"{f.parent.name} {f.name}"] = f.read_text().strip()
        elif f.name.endswith("_private.pem"):
            lines = f.read_text().splitlines()
            out[f"{f.parent.name} {f.name}"] = lines[1] if len(lines) > 2 else ""
    return out


def test_secrets_never_leak_into_logs_or_error_bodies(stack, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    out_dir = Path(os.environ.get("PAYCORE_TEST_OUTPUT", REPO / "test-output"))
    secrets_ = {**leaks.SECRETS, **_channel_secrets(base)}
    assert any(k.startswith("master key") for k in secrets_) and len(secrets_) > 20
    corpus = [p for p in base.rglob("*.log")] + \
             [p for pat in ("*.txt", "*.json", "*.jsonl", "*.ndjson", "*.xml", "*.log") for p in out_dir.rglob(pat)]
    assert any(p.name == "paycore.log" for p in corpus)
    lines = bodies = 0
    found = []
    for p in corpus:
        data = p.read_bytes()
        if p.name == "error-bodies.log":
            bodies += data.count(b"\n")
        else:
            lines += data.count(b"\n")
        text = data.decode("utf-8", "replace")
        for label, value in secrets_.items():
            if value and len(value) >= 8 and value in text:
                found.append(f"{label} in {p}")
        if p.name in ("paycore.log", "error-bodies.log") and ("Traceback (most recent call last)" in text):
            found.append(f"a traceback in {p}")
    print(f"\n[leaks] {len(corpus)} files, {lines} log lines, {bodies} error bodies, {len(secrets_)} secrets")
    assert found == []
