"""/feed, the admin WebSocket feed (docs/feed.md), against real PostgreSQL, remsim-server and
scripted RSPRO agents: a snapshot, then deltas from every change source (RSPRO write-back, REST,
plain SQL), refusals, slow and dead subscribers, heartbeats and shutdown.
"""
import http.client
import json
import re
import time

import pytest
from fixtures_feed import FeedClosed
from rspro_peer import connect_bankd, res

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def rest(srv, method, path, token, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    try:
        h = {"Authorization": "Bearer " + token}
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def change(table, op=None, **match):
    """A predicate for a change message of table (and op) whose row has match's values."""
    def check(m):
        return (m["type"] == "change" and m["table"] == table and (op is None or m["op"] == op)
                and all(m["row"].get(k) == v for k, v in match.items()))
    return check


def test_snapshot_then_deltas_from_every_source(feed_server, feed_token, feed_client, postgres,
                                                rspro_agent):
    srv = feed_server()
    postgres.psql("INSERT INTO banks (bank_id, name) VALUES (7, 'seven');"
                  "INSERT INTO bank_slots (bank_id, slot_nr, atr, card_present) "
                  "VALUES (7, 0, '\\x3b9f95', true);"
                  "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (7, 0, 40, 1);"
                  "INSERT INTO events (kind, message) VALUES ('test.hello', 'hello')")
    token = feed_token()
    c = feed_client(srv.http_port, token)
    assert c.upgraded, c.status_line
    snap = c.recv()
    assert snap["v"] == 1 and snap["type"] == "snapshot" and snap["seq"] == 1
    assert snap["reason"] == "connect" and TS_RE.match(snap["at"])
    assert [b["bank_id"] for b in snap["banks"]] == [7] and snap["banks"][0]["name"] == "seven"
    s = snap["bank_slots"][0]
    assert (s["bank_id"], s["slot_nr"], s["atr"], s["card_present"]) == (7, 0, "3b9f95", True)
    assert TS_RE.match(s["updated_at"])
    m = snap["slotmaps"][0]
    assert (m["bank_id"], m["bank_slot"], m["client_id"], m["client_slot"], m["state"],
            m["slotmap_id"]) == (7, 0, 40, 1, "NEW", 7 * 65536)
    assert snap["events"][-1]["kind"] == "test.hello" and TS_RE.match(snap["events"][-1]["at"])
    assert snap["clients"] == [] and snap["client_slots"] == []

    # RSPRO: the server's write-back of a connecting bankd
    bankd = connect_bankd(rspro_agent, srv)
    row = c.recv_until(change("banks", "upsert", bank_id=1, online=True))["row"]
    assert row["num_slots"] == 4 and row["component"]["software"] == "remsim-bankd"
    c.recv_until(change("bank_slots", "upsert", bank_id=1, slot_nr=3))

    # plain SQL: a mapping, and the control plane's state write-back after the bankd's answer
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 2, 23, 0)")
    c.recv_until(change("slotmaps", "upsert", bank_id=1, bank_slot=2, state="NEW"))
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    c.recv_until(change("slotmaps", "upsert", bank_id=1, bank_slot=2, state="ACTIVE"))

    # SQL moving a mapping's key: delete of the old key, then the new row
    postgres.psql("UPDATE slotmaps SET bank_slot = 3 WHERE bank_id = 7")
    d = c.recv_until(change("slotmaps", bank_id=7))
    assert d["op"] == "delete" and d["row"]["bank_slot"] == 0
    u = c.recv()
    assert u["op"] == "upsert" and u["row"]["bank_slot"] == 3 and u["row"]["state"] == "NEW"

    # REST v2: a mapping with its audit event
    st, body = rest(srv, "POST", "/api/v2/slotmaps", token,
                    {"bank": {"bank_id": 1, "slot": 1}, "client": {"client_id": 24, "slot": 0}})
    assert st == 201, body
    c.recv_until(change("slotmaps", "upsert", bank_id=1, bank_slot=1, client_id=24))
    ev = c.recv_until(lambda m: m["type"] == "event" and m["event"]["kind"] == "slotmap.create")
    assert ev["event"]["actor"].endswith("admin:1") and TS_RE.match(ev["event"]["at"])
    st, _ = rest(srv, "DELETE", "/api/v2/slotmaps/1/1", token)
    assert st == 204
    c.recv_until(change("slotmaps", "delete", bank_id=1, bank_slot=1))

    # sequence numbers: 1, 2, 3, ... without gaps
    assert [m["seq"] for m in c.messages] == list(range(1, len(c.messages) + 1))
    assert all(m["v"] == 1 for m in c.messages)


def test_refusals(feed_server, feed_token, feed_client):
    srv = feed_server()
    # no token and no auth message, a bankd token, an expired one: error, then 4401
    for kw in ({"token": "nonsense"}, {"token": feed_token("bankd", 1)},
               {"token": feed_token("admin", 1, "--now", int(time.time()) - 7200, "--ttl", "1h")}):
        c = feed_client(srv.http_port, **kw)
        assert c.upgraded
        err = c.recv()
        assert err["v"] == 1 and err["type"] == "error" and err["code"] == "unauthorized", err
        assert "seq" not in err
        assert c.close_reason() == (4401, "unauthorized")
    srv.wait_for_log(r"feed refused: token refused")
    srv.wait_for_log(r"feed refused: token \w+ is a bankd token, not admin")
    # the browser way: the token in the first message; a bad first message is 4400
    c = feed_client(srv.http_port)
    c.send_json({"type": "hello"})
    assert c.recv()["code"] == "bad_request"
    assert c.close_reason()[0] == 4400
    c = feed_client(srv.http_port)
    c.send_json({"type": "auth", "token": "x"})
    assert c.recv()["code"] == "unauthorized" and c.close_reason()[0] == 4401
    c = feed_client(srv.http_port)
    c.send_json({"type": "auth", "token": feed_token()})
    assert c.recv()["type"] == "snapshot"
    # nothing but /feed with the subprotocol upgrades
    assert not feed_client(srv.http_port, feed_token(), subprotocol=None).upgraded
    assert not feed_client(srv.http_port, feed_token(), path="/api/v2/feed").upgraded
    # refused subscribers never counted
    assert "remsim_feed_subscribers 1\n" in metrics(srv)


def metrics(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def test_heartbeat_and_dead_subscriber(feed_server, feed_token, feed_client):
    srv = feed_server("--feed-heartbeat", "300")
    live = feed_client(srv.http_port, feed_token())
    dead = feed_client(srv.http_port, feed_token(), auto_pong=False)
    assert live.recv()["type"] == "snapshot" and dead.recv()["type"] == "snapshot"
    hb = live.recv(2)
    assert hb["type"] == "heartbeat" and hb["seq"] == 2 and TS_RE.match(hb["at"])
    assert dead.recv(2)["type"] == "heartbeat"
    # the silent one is dropped after two intervals; the live one, reading, keeps its beats
    deadline = time.monotonic() + 5
    while not re.search(r"silent for \d+ ms \(no pong\): dropping", srv.log_text()):
        assert time.monotonic() < deadline, "the silent subscriber was not dropped"
        assert live.recv(1)["type"] == "heartbeat"
    beats = [live.recv(1) for _ in range(3)]
    assert all(b["type"] == "heartbeat" for b in beats) and live.pings >= 3
    with pytest.raises((FeedClosed, EOFError, ConnectionResetError)):
        while True:
            dead.recv(3)
    assert "remsim_feed_drops_total 1\n" in metrics(srv)


def test_shutdown_closes_subscribers(feed_server, feed_token, feed_client):
    srv = feed_server()
    c = feed_client(srv.http_port, feed_token())
    assert c.recv()["type"] == "snapshot"
    srv.terminate()
    assert c.close_reason() == (1001, "server shutting down")
    assert srv.returncode == 0


def test_slow_subscriber_is_resynced_then_dropped(feed_server, feed_token, feed_client, postgres,
                                                  rspro_agent):
    srv = feed_server("--feed-queue", "2000")
    postgres.psql("INSERT INTO banks (bank_id) SELECT generate_series(100, 114);"
                  "INSERT INTO bank_slots (bank_id, slot_nr) SELECT b, s FROM "
                  "generate_series(100, 114) b, generate_series(0, 99) s")
    fast = feed_client(srv.http_port, feed_token())
    slow = feed_client(srv.http_port, feed_token(), rcvbuf=4096)
    assert fast.recv()["type"] == "snapshot" and slow.recv(10)["type"] == "snapshot"
    bankd = connect_bankd(rspro_agent, srv)
    # bursts of 1,500 row changes (under the queue bound) until the slow one, not reading, is
    # closed; the fast
    # one reads each burst whole, in order
    seen, rounds, t0 = 0, 0, time.monotonic()
    while "feed subscriber too slow" not in srv.log_text():
        assert rounds < 40 and time.monotonic() - t0 < 20, "the slow subscriber was never closed"
        rounds += 1
        postgres.psql(f"UPDATE bank_slots SET apdu_count = {rounds} WHERE bank_id >= 100")
        got = 0
        while got < 1500:
            m = fast.recv()
            if m["type"] == "change" and m["row"].get("bank_id", 0) >= 100:
                assert m["row"]["apdu_count"] == rounds, m
                got += 1
        seen += got
    assert seen == rounds * 1500
    assert re.search(r"\[admin:1@127\.0\.0\.1:\d+\] feed subscriber fell behind .*: resync",
                     srv.log_text())
    # RSPRO is served meanwhile: a mapping still reaches the bankd at once
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 0, 23, 0)")
    bankd.expect("createMappingReq", timeout=2)
    fast.recv_until(change("slotmaps", "upsert", bank_id=1, bank_slot=0))
    # the slow one finds, behind what the kernel buffered, its close
    slow.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 1 << 20)
    code, reason = slow.close_reason(timeout=10)
    assert (code, reason) == (1008, "too slow")
    # (its resync message was still queued when the second overflow dropped it)
    assert all(m["type"] in ("snapshot", "change", "resync") for m in slow.messages)
    seqs = [m["seq"] for m in slow.messages]
    assert seqs == list(range(1, len(seqs) + 1))
    text = metrics(srv)
    assert "remsim_feed_resyncs_total 1\n" in text and "remsim_feed_drops_total 1\n" in text
    assert "remsim_feed_subscribers 1\n" in text


def test_revoked_token_closes_its_subscribers(feed_server, feed_token, feed_client, postgres):
    srv = feed_server()
    t1, t2, t3 = feed_token("admin", 1), feed_token("admin", 2), feed_token("admin", 3)
    id1, id2 = feed_token.ids[t1], feed_token.ids[t2]
    # token 1 twice (header and auth message), tokens 2 and 3 once
    a = feed_client(srv.http_port, t1)
    b = feed_client(srv.http_port)
    b.send_json({"type": "auth", "token": t1})
    c2, c3 = feed_client(srv.http_port, t2), feed_client(srv.http_port, t3)
    assert all(c.recv()["type"] == "snapshot" for c in (a, b, c2, c3))
    # REST: DELETE /api/v2/tokens/{id} closes both subscribers of token 1, and only those
    st, body = rest(srv, "DELETE", f"/api/v2/tokens/{id1}", t2)
    assert st == 204, body
    assert a.close_reason() == (4401, "token revoked")
    assert b.close_reason() == (4401, "token revoked")
    ev = c2.recv_until(lambda m: m["type"] == "event" and m["event"]["kind"] == "token.revoke")
    assert ev["event"]["details"]["token_id"] == id1
    pat = rf"\[admin:1@127\.0\.0\.1:\d+\] feed: its token {id1} was revoked: closing"
    srv.wait_for_log(pat)
    assert len(re.findall(pat, srv.log_text())) == 2
    # plain SQL: an INSERT into revoked_tokens does the same for token 2
    postgres.psql(f"INSERT INTO revoked_tokens (token_id) VALUES ('{id2}')")
    assert c2.close_reason() == (4401, "token revoked")
    srv.wait_for_log(rf"\[admin:2@127\.0\.0\.1:\d+\] feed: its token {id2} was revoked")
    # token 3 is still served, and token 1 is refused from now on
    postgres.psql("INSERT INTO banks (bank_id) VALUES (9)")
    c3.recv_until(change("banks", "upsert", bank_id=9))
    again = feed_client(srv.http_port, t1)
    assert again.recv()["code"] == "unauthorized" and again.close_reason()[0] == 4401
    assert "remsim_feed_subscribers 1\n" in metrics(srv)


def test_auth_timeout(feed_server, feed_token, feed_client):
    # 5 s, or two heartbeat intervals if less: here 600 ms
    srv = feed_server("--feed-heartbeat", "300")
    t0 = time.monotonic()
    silent = feed_client(srv.http_port)
    late = feed_client(srv.http_port)
    assert silent.upgraded and late.upgraded
    time.sleep(0.2)
    late.send_json({"type": "auth", "token": feed_token()})
    assert late.recv()["type"] == "snapshot"
    err = silent.recv(3)
    took = time.monotonic() - t0
    assert err == {"v": 1, "type": "error", "code": "unauthorized",
                   "message": "no auth message within 600 ms"}
    assert silent.close_reason() == (4401, "unauthorized")
    assert 0.5 <= took < 2.5, took
    srv.wait_for_log(r"\[127\.0\.0\.1:\d+\] feed refused: no auth message within 600 ms")
    # the one that authenticated in time is not timed out: its heartbeats go on
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        assert late.recv(1)["type"] == "heartbeat"
    assert "remsim_feed_subscribers 1\n" in metrics(srv)


def test_database_restart_resyncs_every_subscriber(feed_server, feed_token, feed_client,
                                                   postgres):
    srv = feed_server()
    subs = [feed_client(srv.http_port, feed_token()) for _ in range(3)]
    assert all(c.recv()["type"] == "snapshot" for c in subs)
    mark = len(srv.log_text())
    postgres.stop()
    srv.wait_for_log(r"database lost", start=mark)
    postgres.start()
    # committed while the server is (most likely) not yet listening again
    postgres.psql("INSERT INTO banks (bank_id, name) VALUES (42, 'meanwhile')")
    srv.wait_for_log(r"database ready", timeout=10, start=mark)
    for c in subs:
        r = c.recv(5)
        assert r["type"] == "resync" and r["reason"] == "database reconnected", r
        snap = c.recv()
        assert snap["type"] == "snapshot" and snap["reason"] == "resync"
        # what was committed meanwhile is in the snapshot or follows it
        if 42 not in [b["bank_id"] for b in snap["banks"]]:
            c.recv_until(change("banks", "upsert", bank_id=42))
    # and the feed is live again: LISTEN was renewed on the new connection
    postgres.psql("INSERT INTO banks (bank_id, name) VALUES (43, 'after')")
    for c in subs:
        c.recv_until(change("banks", "upsert", bank_id=43, name="after"))
        assert [m["seq"] for m in c.messages] == list(range(1, len(c.messages) + 1))
    assert "remsim_feed_resyncs_total 3\n" in metrics(srv)


def test_rows_too_large_for_a_notification(feed_server, feed_token, feed_client, postgres):
    srv = feed_server()
    c = feed_client(srv.http_port, feed_token())
    assert c.recv()["type"] == "snapshot"
    big = {"software": "remsim-bankd", "blob": "x" * 9000}
    text = "".join(f"{i:05d} " for i in range(2000))  # 12,000 bytes
    postgres.psql(
        "INSERT INTO banks (bank_id, name) VALUES (1, 'before');"
        f"INSERT INTO banks (bank_id, name, component) VALUES (2, 'big', '{json.dumps(big)}');"
        f"INSERT INTO events (kind, message) VALUES ('test.big', '{text}');"
        "INSERT INTO banks (bank_id, name) VALUES (3, 'after');"
        f"INSERT INTO banks (bank_id, component) VALUES (4, '{json.dumps(big)}'), (5, NULL);"
        "UPDATE banks SET name = 'big again' WHERE bank_id = 2;"
        "INSERT INTO banks (bank_id, name) VALUES (6, 'last')")
    # both too large for a NOTIFY payload (7,900 bytes): sent by key, read by the server
    assert int(postgres.psql("SELECT min(octet_length(remsim_feed_bank(b)::text)) FROM banks b "
                             "WHERE bank_id IN (2, 4)")) > 7900
    got = []
    while not got or got[-1][0] != 6:
        m = c.recv()
        if m["type"] == "event" and m["event"]["kind"] == "test.big":
            assert m["event"]["message"] == text
            got.append(("event",))
        elif m["type"] == "change" and m["table"] == "banks":
            assert m["op"] == "upsert"
            if m["row"]["bank_id"] in (2, 4):
                assert m["row"]["component"] == big
            got.append((m["row"]["bank_id"],))
    # in statement order; the rows of one statement in either order
    assert got[:4] == [(1,), (2,), ("event",), (3,)]
    assert sorted(got[4:6]) == [(4,), (5,)] and got[6:] == [(2,), (6,)]
    assert [m["seq"] for m in c.messages] == list(range(1, len(c.messages) + 1))
