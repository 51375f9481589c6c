"""Tokens on the RSPRO listener: a remsim agent presents a token in its
connect request and the server checks signature, expiry, role, subject and
revocation; osmo-remsim agents (no token) are refused under the default
policy `required` and admitted, unauthenticated, under `optional`."""
import subprocess
import time

import pytest
from rspro_peer import OSMO_CONNECT_BANK_REQ

IDENTITY = {"type": "remsimBankd", "name": "bank-host", "software": "remsim-bankd",
            "swVersion": "0.1.0"}
CLIENT_IDENTITY = dict(IDENTITY, type="remsimClient", software="remsim-client")


@pytest.fixture
def keys(bin_path, tmp_path):
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", str(tmp_path)], check=True, capture_output=True)

    class Keys:
        secret = tmp_path / "server.key"
        public = tmp_path / "server.pub"

        def token(self, role, subject, *args):
            r = subprocess.run([ctl, "token", "issue", "--key", str(self.secret), "--role", role,
                                "--id", str(subject), *args], capture_output=True, text=True,
                               check=True)
            return r.stdout.strip()

        def token_id(self, token):
            r = subprocess.run([ctl, "token", "verify", "--json", "--key", str(self.public),
                                token], capture_output=True, text=True, check=True)
            import json
            return json.loads(r.stdout)["token_id"]

    return Keys()


@pytest.fixture
def peer(rspro_agent):
    return rspro_agent


def bank_req(token=None, bank=1):
    msg = {"identity": IDENTITY, "bankId": bank, "numberOfSlots": 4}
    if token:
        msg["authToken"] = token
    return {"version": 2, "tag": 0, "msg": {"connectBankReq": msg}}


def client_req(token=None, client=23):
    msg = {"identity": CLIENT_IDENTITY, "clientSlot": {"clientId": client, "slotNr": 0}}
    if token:
        msg["authToken"] = token
    return {"version": 2, "tag": 0, "msg": {"connectClientReq": msg}}


def pubkey_hex(keys):
    # the public key file: header line + base64url of the 32-byte key
    import base64
    b64 = keys.public.read_text().split()[-1]
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()


def test_valid_tokens_are_accepted_with_capabilities(remsim_server, peer, keys):
    srv = remsim_server(None, "--key", keys.secret, auth="required")
    bankd = peer(srv.port)
    bankd.send_json(bank_req(keys.token("bankd", 1)))
    res = bankd.expect("connectBankRes").msg
    assert res["result"] == "ok"
    caps = res["capabilities"]
    assert caps["protocolRevision"] == 1 and caps["authenticated"] is True
    assert caps["serverPublicKey"] == pubkey_hex(keys)
    client = peer(srv.port)
    client.send_json(client_req(keys.token("client", 23)))
    assert client.expect("connectClientRes").msg["result"] == "ok"
    srv.wait_for_log(r"\[client 23:0 @.*\] token [0-9a-f]{32} valid")


@pytest.mark.parametrize("make,reason", [
    (lambda k: None, "no token, and tokens are required"),
    (lambda k: k.token("bankd", 2), "wrong subject"),
    (lambda k: k.token("client", 1), "wrong role"),
    (lambda k: k.token("bankd", 1, "--ttl", "1h", "--now", str(int(time.time()) - 7300)),
     "expired"),
    (lambda k: k.token("bankd", 1)[:-3] + "AAA", "signature"),
    (lambda k: "rst1.garbage", "malformed"),
])
def test_bad_tokens_are_refused(remsim_server, peer, keys, make, reason):
    srv = remsim_server(None, "--key", keys.secret, auth="required")
    bankd = peer(srv.port)
    token = make(keys)
    bankd.send_json(bank_req(token))
    res = bankd.expect("connectBankRes").msg
    assert res["result"] == ("authRequired" if token is None else "authFailed")
    assert bankd.closed_within(3)
    m = srv.wait_for_log(r"authentication failed: (.*)")
    assert reason in m.group(1).lower() or reason in m.group(1)


def test_osmo_peer_needs_optional_policy(remsim_server, peer, keys):
    srv = remsim_server(None, "--key", keys.secret, auth="required")
    p = peer(srv.port)
    p.send(OSMO_CONNECT_BANK_REQ)
    res = p.expect("connectBankRes").msg
    # an osmo-remsim 1.0 bankd just sees "not ok" and retries
    assert res["result"] == "authRequired" and "capabilities" not in res
    srv2 = remsim_server(None, "--key", keys.secret, auth="optional", name="server2")
    p2 = peer(srv2.port)
    p2.send(OSMO_CONNECT_BANK_REQ)
    assert p2.expect("connectBankRes").msg["result"] == "ok"
    srv2.wait_for_log("no token: admitted unauthenticated")
    # optional does not mean a forged token passes
    p3 = peer(srv2.port)
    p3.send_json(bank_req("rst1.forged", bank=2))
    assert p3.expect("connectBankRes").msg["result"] == "authFailed"


def test_policy_off_ignores_tokens(remsim_server, peer, keys):
    srv = remsim_server(None, auth="off")
    p = peer(srv.port)
    p.send_json(bank_req("rst1.whatever"))
    res = p.expect("connectBankRes").msg
    assert res["result"] == "ok" and "capabilities" not in res


def test_revocation_drops_live_connection_and_refuses_reconnect(remsim_server, peer, keys,
                                                                 postgres):
    srv = remsim_server(postgres, "--key", keys.secret, auth="required")
    token = keys.token("bankd", 1)
    bankd = peer(srv.port)
    bankd.send_json(bank_req(token))
    assert bankd.expect("connectBankRes").msg["result"] == "ok"
    postgres.psql("INSERT INTO revoked_tokens (token_id, reason) VALUES ('%s', 'lost laptop')"
                  % keys.token_id(token))
    assert bankd.closed_within(3)
    srv.wait_for_log("its token was revoked: closing")
    again = peer(srv.port)
    again.send_json(bank_req(token))
    assert again.expect("connectBankRes").msg["result"] == "authFailed"
    srv.wait_for_log(r"refused: revoked")
    # a server restarted later still knows the revocation
    srv.terminate()
    srv2 = remsim_server(postgres, "--key", keys.secret, auth="required", name="server2")
    third = peer(srv2.port)
    third.send_json(bank_req(token))
    assert third.expect("connectBankRes").msg["result"] == "authFailed"


def test_authentication_is_written_back_for_sql_and_api(remsim_server, peer, keys, postgres,
                                                         pg_factory):
    """banks.authenticated / client_slots.authenticated: true with a checked token, false for
    a peer admitted without one (policy optional), NULL when the policy is off; an agent
    gone offline keeps how its last session authenticated."""
    srv = remsim_server(postgres, "--key", keys.secret, auth="optional")
    with_token, without = peer(srv.port), peer(srv.port)
    with_token.send_json(bank_req(keys.token("bankd", 1), bank=1))
    without.send_json(bank_req(None, bank=2))
    client = peer(srv.port)
    client.send_json(client_req(keys.token("client", 23)))
    assert with_token.expect("connectBankRes").msg["result"] == "ok"
    assert without.expect("connectBankRes").msg["result"] == "ok"
    assert client.expect("connectClientRes").msg["result"] == "ok"

    def rows():
        return postgres.psql(
            "SELECT string_agg(bank_id || '=' || coalesce(authenticated::text, 'null'), ' ' "
            "ORDER BY bank_id) FROM banks") + " | " + postgres.psql(
            "SELECT coalesce(authenticated::text, 'null') FROM client_slots "
            "WHERE client_id = 23")

    deadline = time.monotonic() + 10
    while rows() != "1=true 2=false | true" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows() == "1=true 2=false | true"
    with_token.close()
    deadline = time.monotonic() + 10
    while postgres.psql("SELECT online FROM banks WHERE bank_id = 1") != "f":
        assert time.monotonic() < deadline, "bank 1 never went offline"
        time.sleep(0.05)
    assert rows() == "1=true 2=false | true"

    off_pg = pg_factory()
    off = remsim_server(off_pg, auth="off", name="server-off")
    p = peer(off.port)
    p.send_json(bank_req(None, bank=3))
    assert p.expect("connectBankRes").msg["result"] == "ok"
    deadline = time.monotonic() + 10
    while off_pg.psql("SELECT coalesce(authenticated::text, 'null') FROM banks "
                      "WHERE bank_id = 3") != "null":
        assert time.monotonic() < deadline, "bank 3 never written"
        time.sleep(0.05)
