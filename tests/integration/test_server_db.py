"""remsim-server and its PostgreSQL: the schema is created at start-up (once,
even when two servers start together), SQL changes to slotmaps reach the
server as notifications, and a database outage is survived: agents stay
connected and the server reconnects when PostgreSQL is back."""
import time

import pytest
from conftest import REPO_ROOT
from rspro_peer import OSMO_CONNECT_BANK_REQ, OSMO_CONNECT_CLIENT_REQ, PING, RsproPeer


@pytest.fixture
def server(remsim_server):
    def start(pg, *args, name="server"):
        # without waiting for the database: some tests start it down
        return remsim_server(None, "--db", pg.dsn, *args, name=name)

    return start


def test_schema_created_at_start(server, postgres):
    srv = server(postgres)
    srv.wait_for_log(r"database ready")
    assert "applying schema migration 001_initial" in srv.log_text()
    versions = postgres.psql("SELECT version, name FROM schema_migrations ORDER BY version")
    assert versions.splitlines()[0] == "1|initial"
    tables = set(postgres.psql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split())
    assert {"banks", "bank_slots", "clients", "client_slots", "slotmaps", "events"} <= tables


def test_two_servers_starting_together_migrate_once(server, postgres, free_port_factory):
    a = server(postgres, name="server-a")
    b = server(postgres, name="server-b")
    a.wait_for_log("database ready")
    b.wait_for_log("database ready")
    applied = [p for p in (a, b) if "applying schema migration" in p.log_text()]
    assert len(applied) == 1
    migrations = len(list((REPO_ROOT / "sql").glob("[0-9][0-9][0-9]_*.sql")))
    assert postgres.psql("SELECT count(*) FROM schema_migrations") == str(migrations)
    # a restart finds the schema current and applies nothing
    a.terminate()
    c = server(postgres, name="server-c")
    c.wait_for_log("database ready")
    assert "applying schema migration" not in c.log_text()


def test_sql_change_notifies_server(server, postgres):
    srv = server(postgres)
    srv.wait_for_log("database ready")
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 0, 23, 0)")
    srv.wait_for_log(r"notification on remsim_slotmaps: .*\"op\": ?\"INSERT\"")


def test_database_outage_keeps_agents_and_recovers(server, postgres, bin_path):
    srv = server(postgres)
    srv.wait_for_log("slot mappings loaded")
    ctl = str(bin_path("tools/remsimctl"))
    bankd = RsproPeer(ctl, "127.0.0.1", srv.port)
    bankd.send(OSMO_CONNECT_BANK_REQ)
    bankd.expect("connectBankRes")
    postgres.stop()
    srv.wait_for_log(r"database lost .*serving connected agents from memory")
    # for 10 s without a database: the bankd is served, and a client can connect
    client = RsproPeer(ctl, "127.0.0.1", srv.port)
    client.send(OSMO_CONNECT_CLIENT_REQ)
    assert client.expect("connectClientRes").msg["result"] == "ok"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        bankd.send(PING)
        assert bankd.expect("PONG", timeout=2)
        client.send(PING)
        assert client.expect("PONG", timeout=2)
        time.sleep(0.5)
    mark = len(srv.log_text())
    postgres.start()
    srv.wait_for_log("slot mappings loaded", timeout=40, start=mark)
    # what happened meanwhile is written once the database is back
    deadline = time.monotonic() + 5
    while postgres.psql("SELECT online FROM client_slots WHERE client_id = 23") != "t":
        assert time.monotonic() < deadline, "client state not written after the outage"
        time.sleep(0.1)
    assert postgres.psql("SELECT online FROM banks WHERE bank_id = 1") == "t"
    bankd.send(PING)
    assert bankd.expect("PONG")
    assert "connection closed" not in srv.log_text()
    bankd.close()
    client.close()


def test_unreachable_database_is_retried_with_a_clear_log(server, postgres, spawn, bin_path,
                                                        free_port_factory):
    postgres.stop()
    srv = server(postgres)
    m = srv.wait_for_log(r"database connection failed: (.*); retry in (\d+) ms")
    assert "connection" in m.group(1) or "No such file" in m.group(1)
    postgres.start()
    srv.wait_for_log("database ready", timeout=40)
