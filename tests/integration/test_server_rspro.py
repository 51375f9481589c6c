"""remsim-server's RSPRO listener as osmo-remsim agents see it: the golden
connect requests of osmo-remsim 1.0 get the answers and keepalive osmo-remsim
gives, over IPv4 and IPv6, and bad peers are dropped without disturbing the
others. (The mapping control plane is tested in test_server_mapping.py.)"""
import re
import signal
import socket

import pytest
from rspro_peer import OSMO_CONNECT_BANK_REQ, OSMO_CONNECT_CLIENT_REQ, PING, PONG


@pytest.fixture
def server(remsim_server):
    return lambda *args: remsim_server(None, *args)


@pytest.fixture
def peer(rspro_agent):
    return rspro_agent


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_bankd_connect_as_osmo_remsim(server, peer, host):
    srv = server()
    bankd = peer(srv.port, host=host)
    # the server PINGs first, right after accept
    assert bankd.recv_frame().raw == PING
    bankd.send(PONG + PING + OSMO_CONNECT_BANK_REQ)
    assert bankd.expect("PONG")
    res = bankd.expect("connectBankRes")
    assert res.msg["result"] == "ok"
    assert res.msg["identity"]["type"] == "remsimServer"
    assert res.msg["identity"]["software"] == "remsim-server"
    assert "capabilities" not in res.msg  # osmo peers see plain osmo bytes
    srv.wait_for_log(r"\[bankd 1 @.*\] NEW -> BANKD \(connectBankReq\)")


def test_client_connect_gets_osmo_tag(server, peer):
    srv = server()
    client = peer(srv.port)
    client.send(OSMO_CONNECT_CLIENT_REQ)
    res = client.expect("connectClientRes")
    assert res.pdu["tag"] == 2342
    assert res.msg["result"] == "ok"
    srv.wait_for_log(r"\[client 23:0 @127\.0\.0\.1:\d+\] NEW -> CLIENT")


def test_connect_without_client_slot_is_refused(server, peer):
    srv = server()
    client = peer(srv.port)
    client.send_json({"version": 2, "tag": 0, "msg": {"connectClientReq": {"identity": {
        "type": "remsimClient", "name": "m", "software": "x", "swVersion": "1"}}}})
    assert client.expect("connectClientRes").msg["result"] == "illegalClientId"
    assert client.closed_within(3)
    srv.wait_for_log("connectClientReq without a client slot")


def test_wrong_identity_type_is_closed(server, peer):
    srv = server()
    p = peer(srv.port)
    # a connectBankReq that claims to be a client
    p.send_json({"version": 2, "tag": 0, "msg": {"connectBankReq": {"identity": {
        "type": "remsimClient", "name": "m", "software": "x", "swVersion": "1"},
        "bankId": 1, "numberOfSlots": 1}}})
    assert p.closed_within(3)
    srv.wait_for_log("connectBankReq from a remsimClient: closing")


@pytest.mark.parametrize("garbage,log", [
    (b"\xff\xff\xee" + b"x" * 20, "IPA length above limit"),
    (b"\x00\x00\xfe", "malformed IPA header"),
    (bytes.fromhex("0005ee07ffffff00"), "bad RSPRO PDU (malformed PDU)"),
    # createMappingReq with bank id 1024
    (bytes.fromhex("001eee07301b800102810100a213a4113006020117020100300702020400020100"),
     "bad RSPRO PDU (value out of range)"),
])
def test_bad_input_closes_only_that_connection(server, peer, garbage, log):
    srv = server()
    good = peer(srv.port)
    good.send(OSMO_CONNECT_BANK_REQ)
    good.expect("connectBankRes")
    bad = peer(srv.port)
    bad.send(garbage)
    assert bad.closed_within(3)
    srv.wait_for_log(re.escape(log))
    # the identified bankd is still served: it gets its PONG
    good.send(PING)
    assert good.expect("PONG")


def test_unknown_message_keeps_the_link(server, peer):
    srv = server()
    p = peer(srv.port)
    p.send(OSMO_CONNECT_BANK_REQ)
    p.expect("connectBankRes")
    p.send(bytes.fromhex("0010ee07300d800102810100a205b9030a0100"))  # choice [25]
    srv.wait_for_log("ignoring unknown RSPRO message type")
    p.send(PING)
    assert p.expect("PONG")


def test_keepalive_drops_silent_peer_keeps_answering_one(server, peer):
    srv = server("--ping-interval", "200", "--pong-timeout", "300")
    silent = peer(srv.port)
    silent.send(OSMO_CONNECT_BANK_REQ)
    live = peer(srv.port)
    live.send(OSMO_CONNECT_CLIENT_REQ)
    live.expect("connectClientRes")
    # the live peer answers every PING for > 3 ping intervals
    for _ in range(3):
        live.expect("PING", timeout=2, answer_pings=False)
        live.send(PONG)
    assert silent.closed_within(0.1) or silent.closed_within(2)
    srv.wait_for_log(r"no PONG within 300 ms: closing")
    live.send(PING)
    assert live.expect("PONG")


def test_sigterm_stops_cleanly(server, peer):
    srv = server()
    p = peer(srv.port)
    p.send(OSMO_CONNECT_BANK_REQ)
    p.expect("connectBankRes")
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    assert p.closed_within(3)
    assert "shutting down" in srv.log_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_bad_command_line(bin_path):
    import subprocess
    exe = str(bin_path("server/remsim-server"))
    r = subprocess.run([exe, "--rspro-port", "70000"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid port" in r.stderr
    r = subprocess.run([exe, "--rspro-auth", "maybe"], capture_output=True, text=True)
    assert r.returncode == 2 and "required, optional, off" in r.stderr
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--rspro-port" in r.stdout


def test_key_is_needed_for_required_auth(bin_path, tmp_path):
    import os
    import subprocess
    exe = str(bin_path("server/remsim-server"))
    r = subprocess.run([exe], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "needs the server key" in r.stderr
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", str(tmp_path)], check=True, capture_output=True)
    os.chmod(tmp_path / "server.key", 0o644)
    r = subprocess.run([exe, "--key", str(tmp_path / "server.key")], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "chmod 600" in r.stderr
