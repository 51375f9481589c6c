"""The PostgreSQL schema in sql/ against a real PostgreSQL 15: migrations, constraints,
notification triggers and views, as docs/sql.md describes them.

remsim-server applies the migrations itself; apply_migrations() below takes the same steps
(advisory lock, schema_migrations, one simple query per file, all in one transaction), so
these tests also pin down what the server must do.
"""

import re
import select
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
# pg_advisory_xact_lock key of the migrations: "remsim" as decimal ASCII codes (docs/sql.md).
MIGRATION_LOCK = 114101109115105109
SCHEMA_MIGRATIONS = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
NOTIFY_TIMEOUT = 5.0


def migration_files() -> list[tuple[int, str, str]]:
    """[(version, name, sql)] of sql/NNN_name.sql, in version order."""
    found = []
    for path in SQL_DIR.iterdir():
        m = re.fullmatch(r"(\d{3})_([a-z0-9_]+)\.sql", path.name)
        assert m, f"{path.name}: migration files are named NNN_name.sql"
        found.append((int(m[1]), m[2], path.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    assert versions == list(range(1, len(found) + 1)), f"gaps or duplicates in {versions}"
    return found


def apply_migrations(dsn: str) -> list[int]:
    """Apply the migrations not yet in schema_migrations; return the versions applied here.

    One transaction, everything under the advisory lock: the bootstrap CREATE TABLE IF NOT
    EXISTS too (it is not safe against a concurrent twin), and the applied versions are read
    only once the lock is held, since another server may have applied them meanwhile.
    """
    applied = []
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(SCHEMA_MIGRATIONS)
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            conn.execute(sql)  # no parameters: one simple query, as the server sends it
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (version, name))
            applied.append(version)
    return applied


@pytest.fixture
def db(postgres):
    """The postgres cluster with the schema applied."""
    apply_migrations(postgres.dsn)
    return postgres


@pytest.fixture
def conn(db):
    with psycopg.connect(db.dsn, autocommit=True) as c:
        yield c


class Listener:
    """A connection LISTENing on some channels. collect() returns what arrived, in order."""

    def __init__(self, dsn: str, *channels: str):
        self.conn = psycopg.connect(dsn, autocommit=True)
        for channel in channels:
            self.conn.execute(f"LISTEN {channel}")
        # No more queries on this connection: psycopg would hand notifications that arrive
        # during a query to notify handlers, and we have none.
        self.pgconn = self.conn.pgconn

    def close(self):
        self.conn.close()

    def collect(self, writer, channel: str) -> list[str]:
        """Payloads on `channel` up to a marker that `writer` sends now. Notifications are
        delivered in commit order, so whatever earlier commits sent arrives before it."""
        marker = f"marker-{uuid.uuid4()}"
        writer.execute("SELECT pg_notify(%s, %s)", (channel, marker))
        payloads = []
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while True:
            self.pgconn.consume_input()
            while (n := self.pgconn.notifies()) is not None:
                assert n.relname.decode() == channel, f"unexpected channel {n.relname}"
                payload = n.extra.decode()
                if payload == marker:
                    return payloads
                payloads.append(payload)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no marker on {channel} within {NOTIFY_TIMEOUT} s; "
                                     f"got {payloads}")
            select.select([self.pgconn.socket], [], [], left)


@pytest.fixture
def listen(db):
    """listen(*channels) -> Listener on the schema'd cluster; closed at teardown."""
    listeners = []

    def make(*channels):
        listener = Listener(db.dsn, *channels)
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.close()


class _Rollback(Exception):
    pass


def refusal(conn, sql: str, params=None) -> psycopg.Error | None:
    """Run sql in a transaction that is always rolled back; return the error, if any."""
    try:
        with conn.transaction():
            conn.execute(sql, params)
            raise _Rollback()
    except _Rollback:
        return None
    except psycopg.Error as e:
        return e


def assert_refused(conn, sql: str, constraint: str, error=errors.CheckViolation, params=None):
    e = refusal(conn, sql, params)
    assert e is not None, f"accepted: {sql}"
    assert isinstance(e, error), f"{sql}: {type(e).__name__}: {e}"
    assert e.diag.constraint_name == constraint, f"{sql}: {e}"


def assert_accepted(conn, sql: str, params=None):
    e = refusal(conn, sql, params)
    assert e is None, f"{sql}: {e}"


def map_slot(conn, bank, bank_slot, client, client_slot, **extra):
    cols = ["bank_id", "bank_slot", "client_id", "client_slot", *extra]
    values = [bank, bank_slot, client, client_slot, *extra.values()]
    conn.execute(f"INSERT INTO slotmaps ({', '.join(cols)}) "
                 f"VALUES ({', '.join(['%s'] * len(cols))})", values)


# ---------------------------------------------------------------------------------------------
# Migrations


def test_migrations_apply_once(postgres):
    versions = [v for v, _, _ in migration_files()]
    assert apply_migrations(postgres.dsn) == versions
    assert apply_migrations(postgres.dsn) == []
    rows = postgres.psql("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows.splitlines()[0] == "1|initial"
    tables = postgres.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) "
                           "FROM pg_tables WHERE schemaname = 'public'")
    assert tables == ("bank_slots,banks,client_slots,clients,events,revoked_tokens,"
                      "schema_migrations,slotmaps,tokens")


def test_migration_files_have_no_transaction_control():
    # The server wraps each file in its own transaction with the advisory lock.
    for version, name, sql in migration_files():
        code = re.sub(r"--[^\n]*", "", sql)
        assert not re.search(r"\b(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\s*;", code,
                             re.I), f"{version:03}_{name}.sql controls its own transaction"


def test_concurrent_appliers_apply_once(postgres):
    n = 4
    barrier = threading.Barrier(n)
    results, failures = [], []

    def run():
        try:
            barrier.wait()
            results.append(apply_migrations(postgres.dsn))
        except Exception as e:  # reported below, with the others
            failures.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    assert sorted(v for r in results for v in r) == [v for v, _, _ in migration_files()]
    assert postgres.psql("SELECT count(*) FROM schema_migrations") == str(
        len(migration_files()))


# ---------------------------------------------------------------------------------------------
# Constraints

# (constraint, setup statements, statement with {v}) for every 0..1023 range check.
RANGE_CHECKS = [
    ("banks_bank_id_range", [], "INSERT INTO banks (bank_id) VALUES ({v})"),
    ("banks_num_slots_range", [], "INSERT INTO banks (bank_id, num_slots) VALUES (1, {v})"),
    ("bank_slots_bank_id_range", ["INSERT INTO banks (bank_id) VALUES (0), (1023)"],
     "INSERT INTO bank_slots (bank_id, slot_nr) VALUES ({v}, 0)"),
    ("bank_slots_slot_nr_range", ["INSERT INTO banks (bank_id) VALUES (1)"],
     "INSERT INTO bank_slots (bank_id, slot_nr) VALUES (1, {v})"),
    ("clients_client_id_range", [], "INSERT INTO clients (client_id) VALUES ({v})"),
    ("client_slots_client_id_range", ["INSERT INTO clients (client_id) VALUES (0), (1023)"],
     "INSERT INTO client_slots (client_id, slot_nr) VALUES ({v}, 0)"),
    ("client_slots_slot_nr_range", ["INSERT INTO clients (client_id) VALUES (1)"],
     "INSERT INTO client_slots (client_id, slot_nr) VALUES (1, {v})"),
    ("slotmaps_bank_id_range", [],
     "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES ({v}, 0, 0, 0)"),
    ("slotmaps_bank_slot_range", [],
     "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (0, {v}, 0, 0)"),
    ("slotmaps_client_id_range", [],
     "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (0, 0, {v}, 0)"),
    ("slotmaps_client_slot_range", [],
     "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (0, 0, 0, {v})"),
    ("events_bank_id_range", [], "INSERT INTO events (kind, message, bank_id) VALUES "
     "('t', 'm', {v})"),
    ("events_bank_slot_range", [], "INSERT INTO events (kind, message, bank_slot) VALUES "
     "('t', 'm', {v})"),
    ("events_client_id_range", [], "INSERT INTO events (kind, message, client_id) VALUES "
     "('t', 'm', {v})"),
    ("events_client_slot_range", [], "INSERT INTO events (kind, message, client_slot) VALUES "
     "('t', 'm', {v})"),
]


def test_range_checks(conn):
    for constraint, setup, template in RANGE_CHECKS:
        for v in (-1, 1024):
            assert_refused(conn, "; ".join(setup + [template.format(v=v)]), constraint)
        for v in (0, 1023):
            assert_accepted(conn, "; ".join(setup + [template.format(v=v)]))

    token = ("INSERT INTO tokens (token_id, role, subject, key_id, issued_at, expires_at) "
             "VALUES (%s, 'admin', %s, 'b3314dc2c8824cde', now(), now() + '1 day')")
    for v in (-1, 4294967296):
        assert_refused(conn, token, "tokens_subject_range", params=("0" * 32, v))
    for v in (0, 4294967295):
        assert_accepted(conn, token, params=("0" * 32, v))


def test_other_checks(conn):
    conn.execute("INSERT INTO banks (bank_id) VALUES (1)")
    cases = [
        ("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot, state) "
         "VALUES (1, 0, 23, 0, 'CONNECTED')", "slotmaps_state_valid"),
        ("INSERT INTO bank_slots (bank_id, slot_nr, worker_state) VALUES (1, 0, 'BUSY')",
         "bank_slots_worker_state_valid"),
        ("INSERT INTO bank_slots (bank_id, slot_nr, atr) VALUES (1, 0, '')",
         "bank_slots_atr_length"),
        (f"INSERT INTO bank_slots (bank_id, slot_nr, atr) VALUES (1, 0, '\\x{'3b' * 56}')",
         "bank_slots_atr_length"),
        ("INSERT INTO bank_slots (bank_id, slot_nr, apdu_count) VALUES (1, 0, -1)",
         "bank_slots_apdu_count_range"),
        ("INSERT INTO banks (bank_id, component) VALUES (2, '[]')", "banks_component_object"),
        ("INSERT INTO tokens VALUES ('0123456789ABCDEF0123456789ABCDEF', 'client', 23, "
         "'b3314dc2c8824cde', now(), now() + '1 day')", "tokens_token_id_format"),
        ("INSERT INTO tokens VALUES ('0123456789abcdef0123456789abcdef', 'root', 23, "
         "'b3314dc2c8824cde', now(), now() + '1 day')", "tokens_role_valid"),
        ("INSERT INTO tokens VALUES ('0123456789abcdef0123456789abcdef', 'client', 23, "
         "'b3314dc2', now(), now() + '1 day')", "tokens_key_id_format"),
        ("INSERT INTO tokens VALUES ('0123456789abcdef0123456789abcdef', 'client', 23, "
         "'b3314dc2c8824cde', now(), now())", "tokens_expiry_order"),
        ("INSERT INTO revoked_tokens (token_id) VALUES ('not-a-token-id')",
         "revoked_tokens_token_id_format"),
        ("INSERT INTO events (severity, kind, message) VALUES ('fatal', 't', 'm')",
         "events_severity_valid"),
        ("INSERT INTO events (kind, message) VALUES ('Bankd Connect', 'm')",
         "events_kind_format"),
    ]
    for sql, constraint in cases:
        assert_refused(conn, sql, constraint)
    for state in ("NEW", "UNACKNOWLEDGED", "ACTIVE", "DELETE_REQ", "DELETING"):
        assert_accepted(conn, "INSERT INTO slotmaps (bank_id, bank_slot, client_id, "
                        "client_slot, state) VALUES (1, 0, 23, 0, %s)", (state,))
    assert_accepted(conn, f"INSERT INTO bank_slots (bank_id, slot_nr, atr) "
                    f"VALUES (1, 0, '\\x{'3b' * 55}')")


def test_slot_used_by_one_mapping_only(conn):
    map_slot(conn, 1, 0, 23, 0)
    map_slot(conn, 1, 1, 24, 0)
    unique = errors.UniqueViolation
    sql = "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES "
    assert_refused(conn, sql + "(1, 0, 25, 0)", "slotmaps_bank_slot_unique", unique)
    assert_refused(conn, sql + "(2, 0, 23, 0)", "slotmaps_client_slot_unique", unique)
    assert_refused(conn, "UPDATE slotmaps SET bank_slot = 0 WHERE bank_slot = 1",
                   "slotmaps_bank_slot_unique", unique)
    assert_refused(conn, "UPDATE slotmaps SET client_id = 23 WHERE client_id = 24",
                   "slotmaps_client_slot_unique", unique)
    # osmo-remsim's REST id: bank id * 65536 + bank slot.
    ids = conn.execute("SELECT slotmap_id FROM slotmaps ORDER BY 1").fetchall()
    assert ids == [(65536,), (65537,)]


def test_mappings_need_no_bank_or_client_but_slots_need_their_owner(conn):
    map_slot(conn, 7, 3, 99, 1)  # neither has ever connected: fine, as in osmo-remsim
    assert_refused(conn, "INSERT INTO bank_slots (bank_id, slot_nr) VALUES (7, 0)",
                   "bank_slots_bank_fkey", errors.ForeignKeyViolation)
    assert_refused(conn, "INSERT INTO client_slots (client_id, slot_nr) VALUES (99, 0)",
                   "client_slots_client_fkey", errors.ForeignKeyViolation)
    conn.execute("INSERT INTO banks (bank_id) VALUES (7); "
                 "INSERT INTO bank_slots (bank_id, slot_nr) VALUES (7, 3)")
    conn.execute("DELETE FROM banks WHERE bank_id = 7")
    assert conn.execute("SELECT count(*) FROM bank_slots").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM slotmaps").fetchone() == (1,)


# ---------------------------------------------------------------------------------------------
# Triggers


def test_slotmap_changes_notify(conn, listen):
    listener = listen("remsim_slotmaps")
    map_slot(conn, 1, 0, 23, 0)
    assert listener.collect(conn, "remsim_slotmaps") == [
        '{"op":"INSERT","id":65536,"bank":[1,0],"client":[23,0],"seq":1}']

    # Move the SIM: the client now gets bank 2 slot 5.
    conn.execute("UPDATE slotmaps SET bank_id = 2, bank_slot = 5 WHERE client_id = 23")
    # Move the client: the SIM now goes to client 23 slot 1.
    conn.execute("UPDATE slotmaps SET client_slot = 1 WHERE bank_id = 2 AND bank_slot = 5")
    conn.execute("DELETE FROM slotmaps")
    assert listener.collect(conn, "remsim_slotmaps") == [
        '{"op":"UPDATE","id":131077,"bank":[2,5],"client":[23,0],'
        '"old_bank":[1,0],"old_client":[23,0],"seq":2}',
        '{"op":"UPDATE","id":131077,"bank":[2,5],"client":[23,1],'
        '"old_bank":[2,5],"old_client":[23,0],"seq":3}',
        '{"op":"DELETE","id":131077,"bank":[2,5],"client":[23,1],"seq":4}',
    ]

    map_slot(conn, 1, 0, 23, 0)
    conn.execute("TRUNCATE slotmaps")
    assert listener.collect(conn, "remsim_slotmaps") == [
        '{"op":"INSERT","id":65536,"bank":[1,0],"client":[23,0],"seq":5}',
        '{"op":"TRUNCATE","seq":6}',
    ]


def test_state_writes_do_not_notify(conn, listen):
    map_slot(conn, 1, 0, 23, 0)
    listener = listen("remsim_slotmaps")
    conn.execute("UPDATE slotmaps SET state = 'UNACKNOWLEDGED'")
    conn.execute("UPDATE slotmaps SET state = 'ACTIVE', updated_at = now()")
    # Mapping columns named but set to what they were: still nothing to tell the server.
    conn.execute("UPDATE slotmaps SET bank_id = 1, bank_slot = 0, client_id = client_id, "
                 "state = 'ACTIVE'")
    assert listener.collect(conn, "remsim_slotmaps") == []
    assert conn.execute("SELECT state FROM slotmaps").fetchone() == ("ACTIVE",)


def test_moved_mapping_starts_again_as_new(conn):
    map_slot(conn, 1, 0, 23, 0, state="ACTIVE")
    conn.execute("UPDATE slotmaps SET bank_slot = 1")
    assert conn.execute("SELECT state FROM slotmaps").fetchone() == ("NEW",)


def test_every_change_in_one_transaction_notifies(conn, listen):
    # PostgreSQL folds identical payloads within a transaction; "seq" keeps them apart.
    listener = listen("remsim_slotmaps")
    with conn.transaction():
        map_slot(conn, 1, 0, 23, 0)
        conn.execute("DELETE FROM slotmaps")
        map_slot(conn, 1, 0, 23, 0)
    ops = [re.search(r'"op":"(\w+)"', p)[1] for p in listener.collect(conn, "remsim_slotmaps")]
    assert ops == ["INSERT", "DELETE", "INSERT"]


def test_rolled_back_changes_do_not_notify(conn, listen):
    listener = listen("remsim_slotmaps")
    assert_accepted(conn, "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                    "VALUES (1, 0, 23, 0)")
    assert listener.collect(conn, "remsim_slotmaps") == []


def test_updated_at_moves(conn):
    conn.execute("""
        INSERT INTO banks (bank_id) VALUES (1);
        INSERT INTO bank_slots (bank_id, slot_nr) VALUES (1, 0);
        INSERT INTO clients (client_id) VALUES (23);
        INSERT INTO client_slots (client_id, slot_nr) VALUES (23, 0);
        INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (1, 0, 23, 0)
    """)
    updates = {
        "banks": "UPDATE banks SET online = true, updated_at = '2000-01-01'",
        "bank_slots": "UPDATE bank_slots SET card_present = true",
        "clients": "UPDATE clients SET name = 'modem rack 1'",
        "client_slots": "UPDATE client_slots SET online = true",
        "slotmaps": "UPDATE slotmaps SET state = 'ACTIVE'",
    }
    for table, update in updates.items():
        before = conn.execute(f"SELECT updated_at FROM {table}").fetchone()[0]
        conn.execute(update)  # a transaction of its own: now() has moved on
        after, created = conn.execute(f"SELECT updated_at, created_at FROM {table}").fetchone()
        assert after > before, table
        assert created == before, table


def test_token_revocation_notifies(conn, listen):
    registered, unknown = "0123456789abcdef0123456789abcdef", "f" * 32
    conn.execute("INSERT INTO tokens (token_id, role, subject, key_id, issued_at, expires_at) "
                 "VALUES (%s, 'client', 23, 'b3314dc2c8824cde', now(), now() + '30 days')",
                 (registered,))
    listener = listen("remsim_tokens")
    revoke = ("INSERT INTO revoked_tokens (token_id, reason) VALUES (%s, 'modem stolen') "
              "ON CONFLICT (token_id) DO NOTHING")
    conn.execute(revoke, (registered,))
    conn.execute(revoke, (unknown,))  # never registered: revoked all the same
    conn.execute(revoke, (registered,))  # already revoked: no second notification
    assert listener.collect(conn, "remsim_tokens") == [registered, unknown]
    assert_refused(conn, "INSERT INTO revoked_tokens (token_id) VALUES (%s)",
                   "revoked_tokens_pkey", errors.UniqueViolation, params=(registered,))


def test_events_notify_their_id(conn, listen):
    listener = listen("remsim_events")
    ids = [conn.execute("INSERT INTO events (severity, kind, bank_id, actor, message, details) "
                        "VALUES ('notice', 'bankd.connect', 1, 'bankd 1', %s, '{}') "
                        "RETURNING event_id", (f"bank {i} connected",)).fetchone()[0]
           for i in range(3)]
    assert listener.collect(conn, "remsim_events") == [str(i) for i in ids]
    assert ids == sorted(ids)


# ---------------------------------------------------------------------------------------------
# Views


def test_free_slot_views(conn):
    conn.execute("""
        INSERT INTO banks (bank_id, online, num_slots) VALUES (1, true, 4), (2, false, 1);
        INSERT INTO bank_slots (bank_id, slot_nr, card_present)
            SELECT 1, n, n <> 3 FROM generate_series(0, 3) n;
        INSERT INTO bank_slots (bank_id, slot_nr) VALUES (2, 0);
        INSERT INTO clients (client_id) VALUES (23);
        INSERT INTO client_slots (client_id, slot_nr, online) VALUES (23, 0, true), (23, 1, false);
        INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (1, 1, 23, 0);
        INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (9, 9, 42, 0)
    """)
    assert conn.execute("SELECT * FROM free_bank_slots").fetchall() == [
        (1, 0, None, True, True), (1, 2, None, True, True), (1, 3, None, True, False),
        (2, 0, None, False, None)]
    assert conn.execute("SELECT bank_id, slot_nr FROM free_bank_slots "
                        "WHERE bank_online AND card_present").fetchall() == [(1, 0), (1, 2)]
    assert conn.execute("SELECT client_id, slot_nr, online FROM free_client_slots"
                        ).fetchall() == [(23, 1, False)]
    assert conn.execute("SELECT slotmap_id, bank_id, bank_slot, client_id, client_slot, state, "
                        "bank_online, card_present, client_online FROM slotmap_view"
                        ).fetchall() == [
        (65537, 1, 1, 23, 0, "NEW", True, True, True),
        (9 * 65536 + 9, 9, 9, 42, 0, "NEW", False, None, False)]


# ---------------------------------------------------------------------------------------------
# docs/sql.md

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"


def test_doc_recipes_run_in_order(db):
    # The state the recipes in docs/sql.md start from.
    db.psql("""
        INSERT INTO banks (bank_id, online, num_slots) VALUES (1, true, 4), (2, true, 8);
        INSERT INTO bank_slots (bank_id, slot_nr, card_present)
            SELECT 1, n, true FROM generate_series(0, 3) n
            UNION ALL SELECT 2, n, true FROM generate_series(0, 7) n;
        INSERT INTO clients (client_id) VALUES (23), (24);
        INSERT INTO client_slots (client_id, slot_nr, online)
            VALUES (23, 0, true), (23, 1, true), (24, 0, true);
        INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES (1, 1, 24, 0)
    """)
    blocks = re.findall(r"^```sql\n(.*?)^```", DOC.read_text(), re.M | re.S)
    assert len(blocks) > 10
    # One psql session running them as a user would, statement by statement.
    res = subprocess.run(["/usr/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.dsn],
                         input="\n".join(blocks), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    # Mapped, moved, moved again, swapped and unmapped: one mapping is left.
    assert db.psql("SELECT slotmap_id, bank_id, bank_slot, client_id, client_slot, state, "
                   "bank_online, client_online FROM slotmap_view") == "131077|2|5|25|0|NEW|t|f"
    assert db.psql("SELECT count(*) FROM revoked_tokens") == "1"
