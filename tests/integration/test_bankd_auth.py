"""Client tokens at remsim-bankd: checked offline with the server's public key (sent by the
server in connectBankRes, or given with --server-pubkey); a client may only use the client
id its token names. Policies required (default), optional and off."""
import time

import pytest
from fixtures_bankd import SELECT_MF, client_hello, map_slot, relay
from rspro_peer import OSMO_CONNECT_CLIENT_REQ


@pytest.fixture
def required(bed):
    """bankd with --client-auth required that learnt the key from the server."""
    b = bed(client_auth="required", bankd_token=True, server_auth="required")
    b.bankd.wait_for_log(r"client tokens are now checked with the server's public key")
    map_slot(b)
    return b


@pytest.mark.parametrize("make,result,reason", [
    (lambda k: None, "authRequired", r"no token, and tokens are required"),
    (lambda k: k.token("client", 24), "authFailed", r"token is for client 24, not 23"),
    (lambda k: k.token("bankd", 23), "authFailed", r"token refused: .*role"),
    (lambda k: k.token("client", 23, "--ttl", "1h", "--now", int(time.time()) - 7300),
     "authFailed", r"token refused: .*expired"),
    (lambda k: k.token("client", 23)[:-4] + "AAAA", "authFailed", r"token refused: .*"),
    (lambda k: "rst1.garbage", "authFailed", r"token refused: .*malformed"),
])
def test_clients_without_a_valid_token_are_refused(required, bankd_client, make, result,
                                                   reason):
    b = required
    token = make(b.keys)
    hello = client_hello(token=token) if token else OSMO_CONNECT_CLIENT_REQ
    c = bankd_client(b.bankd, hello)
    res = c.expect("connectClientRes").msg
    assert res["result"] == result
    assert c.closed_within(3)
    b.bankd.wait_for_log(r"connectClientReq refused \(%s\): %s" % (result, reason))
    assert b.cards[0].apdus == []


def test_valid_token_is_accepted(required, bankd_client):
    b = required
    c = bankd_client(b.bankd, client_hello(token=b.keys.token("client", 23)))
    res = c.expect("connectClientRes").msg
    assert res["result"] == "ok"
    assert res["capabilities"]["authenticated"] is True
    c.expect("setAtrReq")
    assert relay(c, SELECT_MF) == bytes.fromhex("9f17")
    b.bankd.wait_for_log(r"CONNECTED_CLIENT \(connectClientReq, token [0-9a-f]{32} valid\)")


def test_key_from_a_file_and_optional_policy(bed, bankd_client):
    # no bankd token: the server sends no key, the file is the only one
    b = bed(client_auth="optional", pubkey=True)
    b.bankd.wait_for_log(r"client auth optional")
    map_slot(b)
    # an osmo-remsim client (no token) is admitted unauthenticated
    osmo = bankd_client(b.bankd)
    res = osmo.expect("connectClientRes").msg
    assert res["result"] == "ok" and "capabilities" not in res
    b.bankd.wait_for_log(r"no token: admitted unauthenticated")
    osmo.close()
    b.bankd.wait_for_log(r"CONNECTED_CLIENT_MAPPED_CARD -> INIT \(client")
    # optional does not let a forged token through
    forged = bankd_client(b.bankd, client_hello(token=b.keys.token("client", 23)[:-4] + "AAAA"))
    assert forged.expect("connectClientRes").msg["result"] == "authFailed"
    good = bankd_client(b.bankd, client_hello(token=b.keys.token("client", 23)))
    res = good.expect("connectClientRes").msg
    assert res["result"] == "ok" and res["capabilities"]["authenticated"] is True


def test_policy_off_ignores_tokens(bed, bankd_client):
    b = bed(client_auth="off")
    map_slot(b)
    c = bankd_client(b.bankd, client_hello(token="rst1.whatever"))
    assert c.expect("connectClientRes").msg["result"] == "ok"
