"""The mapping control plane, end to end with real PostgreSQL: a plain SQL
INSERT into slotmaps reaches the bankd (createMappingReq) and, once the bankd
confirms, the client (configClientBankReq); SQL DELETE and UPDATE undo and
move it; mapping states in SQL follow; a restarted server pushes every
mapping again. The agents are scripted RSPRO peers sending osmo-remsim 1.0's
bytes."""
import time

import pytest
from rspro_peer import (OSMO_CONNECT_BANK_REQ, OSMO_CONNECT_CLIENT_REQ, connect_bankd,
                        connect_client, res)

@pytest.fixture
def server(remsim_server, postgres):
    return lambda *args, name="server": remsim_server(postgres, *args, name=name)


@pytest.fixture
def peer(rspro_agent):
    return rspro_agent


def wait_sql(pg, sql, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = pg.psql(sql)
        if got == want or time.monotonic() > deadline:
            assert got == want, sql
            return
        time.sleep(0.05)


def test_sql_insert_and_delete_move_the_sim(server, peer, postgres):
    srv = server()
    bankd = connect_bankd(peer, srv)
    client = connect_client(peer, srv)
    wait_sql(postgres, "SELECT online FROM banks WHERE bank_id = 1", "t")
    wait_sql(postgres, "SELECT online FROM client_slots WHERE client_id = 23", "t")

    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 0, 23, 0)")
    req = bankd.expect("createMappingReq")
    assert req.msg == {"client": {"clientId": 23, "slotNr": 0},
                       "bank": {"bankId": 1, "slotNr": 0}}
    wait_sql(postgres, "SELECT state FROM slotmaps", "UNACKNOWLEDGED")
    bankd.send_json(res("createMappingRes"))
    cfg = client.expect("configClientBankReq")
    assert cfg.msg == {"bankSlot": {"bankId": 1, "slotNr": 0},
                       "bankd": {"ip": {"ipv4": "7f000001"}, "port": 9999}}
    client.send_json(res("configClientBankRes"))
    wait_sql(postgres, "SELECT state FROM slotmaps", "ACTIVE")

    postgres.psql("DELETE FROM slotmaps")
    req = bankd.expect("removeMappingReq")
    assert req.msg["bank"] == {"bankId": 1, "slotNr": 0}
    bankd.send_json(res("removeMappingRes"))
    cfg = client.expect("configClientBankReq")
    assert cfg.msg["bankd"] == {"ip": {"ipv4": "00000000"}, "port": 0}


def test_sql_update_moves_to_another_bank_slot(server, peer, postgres):
    srv = server()
    bankd = connect_bankd(peer, srv)
    client = connect_client(peer, srv)
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 0, 23, 0)")
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    client.expect("configClientBankReq")

    postgres.psql("UPDATE slotmaps SET bank_slot = 3 WHERE client_id = 23")
    assert bankd.expect("removeMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 0}
    assert bankd.expect("createMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 3}
    bankd.send_json(res("removeMappingRes"))
    bankd.send_json(res("createMappingRes"))
    cfg = client.expect("configClientBankReq")
    assert cfg.msg["bankSlot"] == {"bankId": 1, "slotNr": 3}
    wait_sql(postgres, "SELECT bank_slot, state FROM slotmaps", "3|ACTIVE")


def test_bankd_refusal_is_not_reported_active(server, peer, postgres):
    srv = server()
    bankd = connect_bankd(peer, srv)
    client = connect_client(peer, srv)
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 9, 23, 0)")
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes", "illegalSlotId"))
    srv.wait_for_log(r"bankd 1 refused mapping B1:9 <-> C23:0: illegalSlotId")
    wait_sql(postgres, "SELECT state FROM slotmaps", "NEW")
    wait_sql(postgres, "SELECT kind FROM events", "slotmap.refused")
    # the client is not sent to a bankd that refused the mapping
    deadline = time.monotonic() + 0.5
    while (f := client.recv_frame(timeout=max(0.0, deadline - time.monotonic()))):
        assert f.msg_name != "configClientBankReq"


def test_mapping_made_before_agents_connect(server, peer, postgres):
    postgres_insert = ("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                       "VALUES (1, 1, 23, 0)")
    srv = server()
    postgres.psql(postgres_insert)
    srv.wait_for_log(r"B1:1 <-> C23:0\] new mapping")
    client = connect_client(peer, srv)
    bankd = connect_bankd(peer, srv)
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    assert client.expect("configClientBankReq").msg["bankSlot"] == {"bankId": 1, "slotNr": 1}


def test_server_restart_pushes_mappings_again(server, peer, postgres):
    srv = server()
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 2, 23, 0)")
    srv.wait_for_log("new mapping")
    srv.kill9()
    srv2 = server(name="server2")
    bankd = connect_bankd(peer, srv2)
    assert bankd.expect("createMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 2}
    bankd.send_json(res("createMappingRes"))
    client = connect_client(peer, srv2)
    assert client.expect("configClientBankReq").msg["bankSlot"] == {"bankId": 1, "slotNr": 2}
    wait_sql(postgres, "SELECT state FROM slotmaps", "ACTIVE")


def test_duplicate_identity_refused_while_first_is_alive(server, peer, postgres):
    srv = server()
    connect_bankd(peer, srv)
    second = peer(srv.port, OSMO_CONNECT_BANK_REQ)
    assert second.expect("connectBankRes").msg["result"] == "identityInUse"
    assert second.closed_within(3)
    srv.wait_for_log(r"bank 1 already connected from 127\.0\.0\.1:\d+: refused")
    wait_sql(postgres, "SELECT kind FROM events", "identity.in_use")


def test_duplicate_identity_takes_over_a_dead_connection(server, peer, postgres):
    srv = server("--ping-interval", "200", "--pong-timeout", "5000")
    first = peer(srv.port, OSMO_CONNECT_CLIENT_REQ)
    first.expect("connectClientRes")
    # the first client stops answering PINGs; once it is late, a newcomer takes over
    time.sleep(1.5)
    second = peer(srv.port, OSMO_CONNECT_CLIENT_REQ)
    assert second.expect("connectClientRes").msg["result"] == "ok"
    srv.wait_for_log(r"client 23:0 is taken over")
    assert first.closed_within(3)


def test_shutdown_marks_agents_offline(server, peer, postgres):
    srv = server()
    connect_bankd(peer, srv)
    wait_sql(postgres, "SELECT online FROM banks", "t")
    assert srv.terminate() == 0
    assert postgres.psql("SELECT online FROM banks") == "f"


# osmo-remsim's connectBankReq (bank 1, 4 slots) plus remsim's bankdPort [11] = 12345
CONNECT_BANK_REQ_PORT_12345 = bytes.fromhex(
    "003dee07303a800102810100a232a03030240a0102160a6669786d652d6e616d65800c72656d73696d2d"
    "62616e6b648105312e302e300201010201048b023039")


def test_clients_are_sent_to_the_port_the_bankd_announces(server, peer, postgres):
    """Two remsim-bankds on one host listen on different ports; each says which in its
    connect request, and clients are sent there instead of --bankd-port."""
    srv = server()
    bankd = peer(srv.port, CONNECT_BANK_REQ_PORT_12345)
    bankd.expect("connectBankRes")
    bankd.expect("resetStateReq")
    bankd.send_json(res("resetStateRes"))
    client = connect_client(peer, srv)
    wait_sql(postgres, "SELECT online FROM client_slots WHERE client_id = 23", "t")
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 0, 23, 0)")
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    cfg = client.expect("configClientBankReq")
    assert cfg.msg["bankd"] == {"ip": {"ipv4": "7f000001"}, "port": 12345}
