"""remsimctl keygen / token issue / token verify, run as a user would run them.

Checks the files keygen leaves behind, the issue -> verify round trip, and that every refusal
(wrong role, id or key, expiry, an insecure secret key, garbage) exits 1 with its reason on
stderr, while command line mistakes exit 2.
"""

import base64
import hashlib
import json
import re
import stat
import subprocess
import time

import pytest

TOKEN_RE = re.compile(r"^rst1\.[A-Za-z0-9_-]+$")


@pytest.fixture
def ctl(bin_path):
    exe = bin_path("tools/remsimctl")

    def run(*args, input=None, cwd=None):
        return subprocess.run([str(exe), *map(str, args)], input=input, capture_output=True,
                              text=True, timeout=30, cwd=cwd)

    return run


@pytest.fixture
def keys(ctl, tmp_path):
    """A fresh key pair in tmp_path: (secret path, public path)."""
    res = ctl("keygen", "--dir", tmp_path)
    assert res.returncode == 0, res.stderr
    return tmp_path / "server.key", tmp_path / "server.pub"


def issue(ctl, secret, role="client", id=23, *extra):
    res = ctl("token", "issue", "--key", secret, "--role", role, "--id", id, *extra)
    assert res.returncode == 0, res.stderr
    return res.stdout


def assert_refused(res, *words):
    """Exit 1, the reason on stderr, nothing claimed valid on stdout."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "valid\n" not in res.stdout
    err = res.stderr.lower()
    for word in words:
        assert word.lower() in err, res.stderr


def public_key_bytes(path):
    header, key = path.read_text().split("\n")[:2]
    assert header == "remsim-ed25519-public-key-v1"
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))


@pytest.mark.parametrize("args", [("keygen", "--help"), ("token", "--help"),
                                  ("token", "issue", "--help"), ("token", "verify", "--help")])
def test_help_exits_0(ctl, args):
    res = ctl(*args)
    assert res.returncode == 0
    assert "usage: remsimctl" in res.stdout
    assert "Example" in res.stdout
    assert res.stderr == ""


def test_keygen_creates_secret_0600_and_public(ctl, tmp_path):
    res = ctl("keygen", cwd=tmp_path)  # default: the current directory
    assert res.returncode == 0, res.stderr
    secret, public = tmp_path / "server.key", tmp_path / "server.pub"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert public.is_file()
    assert "server.key" in res.stdout and "server.pub" in res.stdout
    # The printed key id is the documented one: BLAKE2b-256(public key)[:8].
    key_id = re.search(r"key id:\s+([0-9a-f]{16})", res.stdout).group(1)
    pk = public_key_bytes(public)
    assert len(pk) == 32
    assert key_id == hashlib.blake2b(pk, digest_size=32).hexdigest()[:16]


def test_keygen_refuses_overwrite_unless_forced(ctl, keys):
    secret, public = keys
    before = (secret.read_bytes(), public.read_bytes())
    res = ctl("keygen", "--dir", secret.parent)
    assert_refused(res, "exists", "--force")
    assert (secret.read_bytes(), public.read_bytes()) == before

    secret.chmod(0o644)
    res = ctl("keygen", "--dir", secret.parent, "--force")
    assert res.returncode == 0, res.stderr
    assert public.read_bytes() != before[1]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_keygen_named_files(ctl, tmp_path):
    secret, public = tmp_path / "a.key", tmp_path / "a.pub"
    res = ctl("keygen", "--secret", secret, "--public", public)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    token = issue(ctl, secret).strip()
    assert ctl("token", "verify", "--key", public, token).returncode == 0


def test_issue_without_key_asks_the_server(ctl, tmp_path):
    # without --key the server signs the token (REST API): no server, a clear failure
    res = ctl("token", "issue", "--role", "client", "--id", "1", "--server",
              "http://127.0.0.1:1", cwd=tmp_path)
    assert res.returncode == 1
    assert "cannot connect to 127.0.0.1 port 1" in res.stderr


@pytest.mark.parametrize("args", [
    ("keygen", "--secret", "x.key"),
    ("keygen", "--dir", ".", "--secret", "x.key", "--public", "x.pub"),
    ("keygen", "--bogus"),
    ("keygen", "extra"),
    ("token",),
    ("token", "frobnicate"),
    ("token", "issue", "--role", "client"),
    ("token", "issue", "--key", "k", "--role", "root", "--id", "1"),
    ("token", "issue", "--key", "k", "--role", "client", "--id", "-1"),
    ("token", "issue", "--key", "k", "--role", "client", "--id", "1024"),
    ("token", "issue", "--key", "k", "--role", "client", "--id", "1", "--ttl", "5y"),
    ("token", "issue", "--key", "k", "--role", "client", "--id", "1", "--ttl", "0"),
    ("token", "issue", "--key"),
    ("token", "verify", "--key", "k"),
    ("token", "verify", "--key", "k", "a", "b"),
    ("token", "verify", "--key", "k", "--skew", "soon", "t"),
])
def test_usage_errors_exit_2(ctl, tmp_path, args):
    res = ctl(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.startswith("remsimctl ")
    assert res.stdout == ""


def test_issue_verify_round_trip(ctl, keys):
    secret, public = keys
    out = issue(ctl, secret, "client", 23, "--ttl", "90d")
    assert out.endswith("\n") and out.count("\n") == 1  # just the token, one line
    token = out.strip()
    assert TOKEN_RE.match(token) and len(token) <= 512

    res = ctl("token", "verify", "--key", public, "--role", "client", "--id", 23, token)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "valid"
    assert re.search(r"^role:\s+client$", res.stdout, re.M)
    assert re.search(r"^subject:\s+23$", res.stdout, re.M)
    assert re.search(r"^expires:\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", res.stdout, re.M)

    # The secret key file verifies too, and '-' reads the token from stdin.
    res = ctl("token", "verify", "--key", secret, "-", input=out)
    assert res.returncode == 0, res.stderr


def test_json_output(ctl, keys):
    secret, public = keys
    issued = json.loads(issue(ctl, secret, "admin", 4000, "--ttl", "90m", "--json"))
    assert set(issued) == {"token", "token_id", "role", "subject", "issued", "expires",
                           "key_id"}
    assert issued["role"] == "admin" and issued["subject"] == 4000
    assert issued["expires"] - issued["issued"] == 90 * 60
    assert abs(issued["issued"] - time.time()) < 60
    assert re.fullmatch(r"[0-9a-f]{32}", issued["token_id"])

    res = ctl("token", "verify", "--key", public, "--json", issued["token"])
    assert res.returncode == 0, res.stderr
    verified = json.loads(res.stdout)
    assert verified["valid"] is True
    for field in ("token_id", "role", "subject", "issued", "expires", "key_id"):
        assert verified[field] == issued[field]

    res = ctl("token", "verify", "--key", public, "--role", "bankd", "--json", issued["token"])
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"valid": False, "error": res.stderr.split("invalid: ")[1]
                                      .strip()}


@pytest.mark.parametrize("ttl,seconds", [("45", 45), ("45s", 45), ("15m", 900), ("2h", 7200),
                                         ("3d", 259200)])
def test_ttl_suffixes(ctl, keys, ttl, seconds):
    issued = json.loads(issue(ctl, keys[0], "bankd", 1, "--ttl", ttl, "--json"))
    assert issued["expires"] - issued["issued"] == seconds


def test_default_ttl_is_30_days(ctl, keys):
    issued = json.loads(issue(ctl, keys[0], "bankd", 1, "--json"))
    assert issued["expires"] - issued["issued"] == 30 * 86400


def test_verify_wrong_role_id_key(ctl, keys, tmp_path):
    secret, public = keys
    token = issue(ctl, secret, "client", 23).strip()

    assert_refused(ctl("token", "verify", "--key", public, "--role", "bankd", token),
                   "role client", "expected bankd")
    assert_refused(ctl("token", "verify", "--key", public, "--role", "client", "--id", 24, token),
                   "id 23", "expected 24")

    other = tmp_path / "other"
    other.mkdir()
    assert ctl("keygen", "--dir", other).returncode == 0
    assert_refused(ctl("token", "verify", "--key", other / "server.pub", token),
                   "another key")


def test_expired_token(ctl, keys):
    secret, public = keys
    token = issue(ctl, secret, "bankd", 2, "--ttl", "1s").strip()
    time.sleep(2)
    assert_refused(ctl("token", "verify", "--key", public, "--skew", "0", token), "expired")
    # Within the default clock skew it still passes.
    assert ctl("token", "verify", "--key", public, token).returncode == 0


def test_verify_at_other_times(ctl, keys):
    secret, public = keys
    issued = json.loads(issue(ctl, secret, "client", 5, "--ttl", "1h", "--json"))
    token = issued["token"]
    late = issued["expires"] + 61
    assert_refused(ctl("token", "verify", "--key", public, "--now", late, token), "expired")
    early = issued["issued"] - 61
    assert_refused(ctl("token", "verify", "--key", public, "--now", early, token),
                   "not yet valid")
    res = ctl("token", "verify", "--key", public, "--now", issued["expires"] + 60, token)
    assert res.returncode == 0, res.stderr


def test_world_readable_secret_refused(ctl, keys):
    secret, _ = keys
    secret.chmod(0o644)
    res = ctl("token", "issue", "--key", secret, "--role", "client", "--id", 1)
    assert_refused(res, "chmod 600", str(secret))
    assert res.stdout == ""


def test_public_key_cannot_issue(ctl, keys):
    _, public = keys
    res = ctl("token", "issue", "--key", public, "--role", "client", "--id", 1)
    assert_refused(res, "public key file")


def test_missing_key_file(ctl, tmp_path):
    res = ctl("token", "verify", "--key", tmp_path / "nope.pub", "rst1.x")
    assert_refused(res, "nope.pub", "no such file")


@pytest.mark.parametrize("garbage", ["garbage", "rst1.", "rst1.!!!!", "Bearer rst1.abc",
                                     "rst1." + "A" * 147 + "=", "x" * 10000, "\u00e9\u00e8"])
def test_garbage_token_refused(ctl, keys, garbage):
    res = ctl("token", "verify", "--key", keys[1], garbage)
    assert_refused(res, "malformed")


def test_tampered_and_truncated_tokens_refused(ctl, keys):
    secret, public = keys
    token = issue(ctl, secret).strip()
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    assert_refused(ctl("token", "verify", "--key", public, flipped), "invalid")
    assert_refused(ctl("token", "verify", "--key", public, token[:-1]), "malformed")
    assert_refused(ctl("token", "verify", "--key", public, "rst2." + token[5:]), "version")
