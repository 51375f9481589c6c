"""remsimctl's server commands as an admin uses them against a running
remsim-server (real PostgreSQL, scripted osmo-remsim agents): status,
banks, clients, map, slotmaps, move, unmap, events, and tokens issued,
listed and revoked through the API. Tables for people, --json for scripts."""
import json
import subprocess
import time

import pytest
from rspro_peer import OSMO_CONNECT_BANK_REQ, OSMO_CONNECT_CLIENT_REQ, RsproPeer, res


@pytest.fixture
def setup(remsim_server, postgres, bin_path, tmp_path):
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", str(tmp_path)], check=True, capture_output=True)
    admin = subprocess.run([ctl, "token", "issue", "--key", str(tmp_path / "server.key"),
                            "--role", "admin", "--id", "1"], check=True, capture_output=True,
                           text=True).stdout.strip()
    srv = remsim_server(postgres, "--key", tmp_path / "server.key")
    url = "http://127.0.0.1:%d" % srv.http_port

    def run(*args, token=admin, env=None):
        full = {"REMSIM_SERVER": url}
        if token:
            full["REMSIM_TOKEN"] = token
        import os
        e = {k: v for k, v in os.environ.items() if not k.startswith("REMSIM_")}
        e.update(full)
        e.update(env or {})
        return subprocess.run([ctl, *args], capture_output=True, text=True, timeout=20, env=e)

    peers = []

    def agent(hello):
        p = RsproPeer(ctl, "127.0.0.1", srv.port)
        p.send(hello)
        peers.append(p)
        return p

    class S:
        pass

    s = S()
    s.run, s.agent, s.srv, s.url, s.admin = run, agent, srv, url, admin
    yield s
    for p in peers:
        p.close()


def test_map_list_move_unmap(setup):
    bankd = setup.agent(OSMO_CONNECT_BANK_REQ)
    bankd.expect("connectBankRes")
    bankd.expect("resetStateReq")
    client = setup.agent(OSMO_CONNECT_CLIENT_REQ)
    client.expect("connectClientRes")

    r = setup.run("map", "1:0", "23:0")
    assert r.returncode == 0, r.stderr
    assert "mapped bank slot 1:0 to client 23:0" in r.stdout
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    client.expect("configClientBankReq")

    deadline = time.monotonic() + 5
    while True:
        r = setup.run("slotmaps", "--json")
        maps = json.loads(r.stdout)["slotmaps"]
        if maps and maps[0]["state"] == "ACTIVE":
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = setup.run("slotmaps")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "BANK"]
    assert lines[1].split()[:4] == ["65536", "1:0", "23:0", "ACTIVE"]

    r = setup.run("banks")
    assert r.returncode == 0 and "remsim-bankd 1.0.0" in r.stdout
    r = setup.run("clients")
    assert "23:0" in r.stdout and "1:0" in r.stdout
    r = setup.run("status")
    assert "banks online:   1" in r.stdout and "clients online: 1" in r.stdout

    r = setup.run("move", "23:0", "1:2")
    assert r.returncode == 0, r.stderr
    assert bankd.expect("removeMappingReq").msg["bank"]["slotNr"] == 0
    assert bankd.expect("createMappingReq").msg["bank"]["slotNr"] == 2

    r = setup.run("unmap", "1:2")
    assert r.returncode == 0, r.stderr
    r = setup.run("events", "--kind", "slotmap")
    assert "slotmap.create" in r.stdout and "slotmap.move" in r.stdout


def test_errors_are_clear(setup):
    r = setup.run("map", "1:0", "23:0")
    assert r.returncode == 0
    r = setup.run("map", "1:0", "24:0")
    assert r.returncode == 1 and "bank_slot_in_use (HTTP 409)" in r.stderr
    r = setup.run("map", "1:x", "24:0")
    assert r.returncode == 2 and "bad bank slot" in r.stderr
    r = setup.run("unmap", "7:7")
    assert r.returncode == 1 and "HTTP 404" in r.stderr
    r = setup.run("banks", token=None)
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "--token" in r.stderr
    r = setup.run("status", env={"REMSIM_SERVER": "http://127.0.0.1:1"})
    assert r.returncode == 1 and "cannot connect" in r.stderr


def test_tokens_through_the_api(setup):
    r = setup.run("token", "issue", "--role", "client", "--id", "23", "--ttl", "1d",
                  "--comment", "modem 23")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("rst1.")
    r = setup.run("token", "list")
    assert "client" in r.stdout and "modem 23" in r.stdout
    tid = [l.split()[0] for l in r.stdout.splitlines()[1:] if "modem 23" in l][0]
    r = setup.run("token", "issue", "--role", "admin", "--id", "2")
    admin2 = r.stdout.strip()
    assert setup.run("status", token=admin2).returncode == 0
    assert setup.run("banks", token=admin2).returncode == 0
    r = setup.run("token", "revoke", tid, "--reason", "modem replaced")
    assert r.returncode == 0 and "revoked" in r.stdout
    r = setup.run("token", "list", "--json")
    revoked = [t for t in json.loads(r.stdout)["tokens"] if t["token_id"] == tid]
    assert revoked and revoked[0]["revoked"] is True


def test_help(setup):
    r = setup.run("status", "--help")
    assert r.returncode == 0 and "--server URL" in r.stdout
    r = setup.run("--help")
    assert all(c in r.stdout for c in ("map", "unmap", "move", "events", "slotmaps"))
