"""/api/v2, remsim's admin API, against real PostgreSQL and scripted agents.

Covers authentication (admin bearer tokens checked against the server key and the revocation
list), every endpoint's happy path, filters and pagination, the JSON errors with their status
codes for bad input, and that writes made through the API reach a bankd and a client exactly
like writes made in psql (the control plane acts on the database's notifications).
"""
import http.client
import json
import re
import socket
import subprocess
import time

import pytest
from rspro_peer import connect_bankd, connect_client, res

V2 = "/api/v2"
OK = {"version": 2, "tag": 0}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Answer:
    def __init__(self, resp, body):
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.body = body

    def json(self):
        assert self.headers.get("content-type") == "application/json", self
        return json.loads(self.body)

    @property
    def error(self):
        """The error code of a JSON error answer."""
        return self.json()["error"]["code"]

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


class Api:
    """HTTP on a fresh connection per request, with an optional bearer token."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token

    def request(self, method, path, body=None, headers=None, token=None, raw=False):
        h = {}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None and not raw:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, V2 + path, body=body, headers=h)
            resp = conn.getresponse()
            return Answer(resp, resp.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def assert_error(a, status, code, text=None):
    assert a.status == status, a
    body = a.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    if text:
        assert text in body["error"]["message"], body


@pytest.fixture
def ctl(bin_path):
    exe = str(bin_path("tools/remsimctl"))

    def run(*args):
        r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    return run


@pytest.fixture
def key(ctl, tmp_path):
    ctl("keygen", "--dir", tmp_path)
    return tmp_path / "server.key"


@pytest.fixture
def issue(ctl, key):
    """issue(role, id, *extra) -> dict of `remsimctl token issue --json`."""
    return lambda role="admin", id=1, *extra: json.loads(
        ctl("token", "issue", "--key", key, "--role", role, "--id", id, "--json", *extra))


@pytest.fixture
def server(remsim_server, postgres, key):
    return lambda *args, name="server": remsim_server(postgres, "--key", key, *args, name=name)


@pytest.fixture
def api(server, issue):
    """A started server and an Api with an admin token (subject 1); api.srv is the server."""
    srv = server()
    a = Api(srv.http_port, issue("admin", 1)["token"])
    a.srv = srv
    return a


@pytest.fixture
def peer(rspro_agent):
    return rspro_agent


def wait_for(fetch, check, timeout=5.0):
    """fetch() until check(result) holds; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if check(got) or time.monotonic() > deadline:
            assert check(got), got
            return got
        time.sleep(0.05)


def mapping(b, bs, c, cs):
    return {"bank": {"bank_id": b, "slot": bs}, "client": {"client_id": c, "slot": cs}}


# ---- authentication ----


def test_auth(api, issue, ctl, tmp_path, postgres):
    a = api.get("/banks", token="")
    assert_error(a, 401, "unauthorized", "no bearer token")
    assert a.headers["www-authenticate"].startswith("Bearer")
    for bad in ("garbage", "rst1.AAAA", "x" * 2000):
        a = api.get("/banks", token=bad)
        assert_error(a, 401, "unauthorized")
        assert 'error="invalid_token"' in a.headers["www-authenticate"]
    assert_error(api.get("/banks", headers={"Authorization": "Basic YTpi"}, token=""), 401,
                 "unauthorized", "not a Bearer token")
    expired = issue("admin", 1, "--now", int(time.time()) - 7200, "--ttl", "1h")["token"]
    assert_error(api.get("/banks", token=expired), 401, "unauthorized", "expired")
    other = tmp_path / "other"
    other.mkdir()
    ctl("keygen", "--dir", other)
    foreign = json.loads(ctl("token", "issue", "--key", other / "server.key", "--role", "admin",
                             "--id", 1, "--json"))["token"]
    assert_error(api.get("/banks", token=foreign), 401, "unauthorized")
    for role, id in (("client", 23), ("bankd", 1)):
        assert_error(api.get("/banks", token=issue(role, id)["token"]), 403, "forbidden",
                     f"a {role} token, not admin")
    assert api.get("/banks").status == 200
    assert api.get("/banks", headers={"Authorization": "bearer  " + api.token}).status == 200
    # a revocation made in SQL takes effect without a restart
    t = issue("admin", 2)
    assert api.get("/banks", token=t["token"]).status == 200
    postgres.psql(f"INSERT INTO revoked_tokens (token_id) VALUES ('{t['token_id']}')")
    a = wait_for(lambda: api.get("/banks", token=t["token"]), lambda a: a.status == 401)
    assert_error(a, 401, "unauthorized", "revoked")
    api.srv.wait_for_log(r"GET /api/v2/banks refused: 401 unauthorized: token [0-9a-f]{32} "
                         r"is revoked")


def test_health_is_public(api, peer):
    a = api.get("/health", token="")
    assert a.status == 200
    h = a.json()
    assert h["status"] == "ok" and h["database"] == "up" and h["auth"] == "enabled"
    assert re.match(r"^\d+\.\d+\.\d+", h["version"])
    assert h["banks_online"] == 0 and h["slotmaps"]["total"] == 0
    connect_bankd(peer, api.srv)
    connect_client(peer, api.srv)
    h = api.get("/health", token="").json()
    assert h["banks_online"] == 1 and h["clients_online"] == 1


def test_without_a_key_only_health_answers(remsim_server, postgres):
    srv = remsim_server(postgres)
    api = Api(srv.http_port, "whatever")
    assert api.get("/health").json()["auth"] == "no key"
    for path in ("/banks", "/slotmaps", "/tokens"):
        assert_error(api.get(path), 503, "auth_unavailable")


# ---- inventory and live state ----


def test_banks_clients_and_their_slots(api, peer, postgres):
    srv = api.srv
    bankd = connect_bankd(peer, srv)
    connect_client(peer, srv)
    banks = wait_for(lambda: api.get("/banks").json()["banks"], lambda b: len(b) == 1)
    b = banks[0]
    assert b["bank_id"] == 1 and b["online"] is True and b["num_slots"] == 4
    assert b["component"] == {"type": "remsimBankd", "name": "fixme-name",
                              "software": "remsim-bankd", "swVersion": "1.0.0"}
    assert re.match(r"^127\.0\.0\.1:\d+$", b["peer"]) and TS_RE.match(b["connected_at"])
    assert b["slotmaps"] == 0 and b["name"] is None
    assert api.get("/banks/1").json() == b
    assert_error(api.get("/banks/2"), 404, "not_found")
    assert_error(api.get("/banks/abc"), 400, "invalid_parameter")
    assert_error(api.get("/banks/1024"), 400, "invalid_parameter")
    assert_error(api.get("/banks?online=1"), 400, "invalid_parameter", "online")

    slots = wait_for(lambda: api.get("/banks/1/slots").json()["slots"], lambda s: len(s) == 4)
    assert [s["slot"] for s in slots] == [0, 1, 2, 3]
    assert all(s["in_inventory"] and s["mapping"] is None for s in slots)
    assert_error(api.get("/banks/2/slots"), 404, "not_found")

    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 2, 23, 0), (1, 9, 40, 1)")
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    slots = wait_for(lambda: api.get("/banks/1/slots").json()["slots"],
                     lambda s: len(s) == 5 and s[2]["mapping"]["state"] == "ACTIVE")
    assert slots[2]["mapping"] == {"client_id": 23, "client_slot": 0, "state": "ACTIVE"}
    # a mapped slot the bankd never reported is listed too
    assert slots[4]["slot"] == 9 and slots[4]["in_inventory"] is False

    clients = api.get("/clients").json()["clients"]
    assert [c["client_id"] for c in clients] == [23]
    c = clients[0]
    assert c["name"] is None and len(c["slots"]) == 1
    s = c["slots"][0]
    assert s["slot"] == 0 and s["online"] is True
    assert s["component"]["name"] == "remsim-anchor"
    assert s["mapping"] == {"bank_id": 1, "bank_slot": 2, "state": "ACTIVE"}
    assert api.get("/clients/23").json() == c
    assert api.get("/clients/23/slots").json() == {"client_id": 23, "slots": c["slots"]}
    assert_error(api.get("/clients/24"), 404, "not_found")
    assert_error(api.get("/clients/24/slots"), 404, "not_found")
    assert_error(api.get("/clients/-1"), 400, "invalid_parameter")

    bankd.close()
    wait_for(lambda: api.get("/banks/1").json(), lambda b: b["online"] is False)


# ---- slot mappings ----


def test_mapping_created_through_v2_reaches_bankd_and_client(api, peer, postgres):
    srv = api.srv
    bankd = connect_bankd(peer, srv)
    client = connect_client(peer, srv)
    a = api.post("/slotmaps", mapping(1, 0, 23, 0))
    assert a.status == 201, a
    assert a.headers["location"] == "/api/v2/slotmaps/1/0"
    m = a.json()
    assert m["id"] == 65536 and m["bank"] == {"bank_id": 1, "slot": 0}
    assert m["client"] == {"client_id": 23, "slot": 0}
    assert m["created_by"] == "rest-v2 admin:1" and TS_RE.match(m["created_at"])
    assert m["bank_online"] is True and m["client_online"] is True
    req = bankd.expect("createMappingReq")
    assert req.msg == {"client": {"clientId": 23, "slotNr": 0}, "bank": {"bankId": 1, "slotNr": 0}}
    bankd.send_json(res("createMappingRes"))
    cfg = client.expect("configClientBankReq")
    assert cfg.msg["bankSlot"] == {"bankId": 1, "slotNr": 0}
    m = wait_for(lambda: api.get("/slotmaps/1/0").json(), lambda m: m["state"] == "ACTIVE")
    assert postgres.psql("SELECT state, created_by FROM slotmaps") == "ACTIVE|rest-v2 admin:1"

    assert api.delete("/slotmaps/1/0").status == 204
    assert bankd.expect("removeMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 0}
    bankd.send_json(res("removeMappingRes"))
    assert client.expect("configClientBankReq").msg["bankd"]["port"] == 0
    assert_error(api.get("/slotmaps/1/0"), 404, "not_found")
    assert_error(api.delete("/slotmaps/1/0"), 404, "not_found")
    events = api.get("/events?kind=slotmap").json()["events"]
    assert [(e["kind"], e["actor"], e["bank_id"], e["client_id"]) for e in events] == [
        ("slotmap.create", "rest-v2 admin:1", 1, 23),
        ("slotmap.delete", "rest-v2 admin:1", 1, 23)]
    assert events[0]["message"] == "slot mapping B1:0 <-> C23:0 created"


def test_move_end_to_end(api, peer, postgres):
    srv = api.srv
    bankd = connect_bankd(peer, srv)
    client = connect_client(peer, srv)
    assert api.post("/slotmaps", mapping(1, 0, 23, 0)).status == 201
    bankd.expect("createMappingReq")
    bankd.send_json(res("createMappingRes"))
    client.expect("configClientBankReq")

    a = api.post("/slotmaps/move", {"client": {"client_id": 23, "slot": 0},
                                    "bank": {"bank_id": 1, "slot": 2}})
    assert a.status == 200, a
    m = a.json()
    assert m["bank"] == {"bank_id": 1, "slot": 2} and m["moved_from"] == {"bank_id": 1, "slot": 0}
    assert m["id"] == 65538
    assert bankd.expect("removeMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 0}
    assert bankd.expect("createMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 2}
    bankd.send_json(res("removeMappingRes"))
    bankd.send_json(res("createMappingRes"))
    assert client.expect("configClientBankReq").msg["bankSlot"] == {"bankId": 1, "slotNr": 2}
    wait_for(lambda: api.get("/slotmaps/1/2").json(), lambda m: m["state"] == "ACTIVE")
    assert postgres.psql("SELECT bank_id, bank_slot, client_id, state FROM slotmaps") == \
        "1|2|23|ACTIVE"

    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 3, 24, 0)")
    assert_error(api.post("/slotmaps/move", {"client": {"client_id": 23, "slot": 0},
                                             "bank": {"bank_id": 1, "slot": 3}}),
                 409, "bank_slot_in_use")
    assert_error(api.post("/slotmaps/move", {"client": {"client_id": 25, "slot": 0},
                                             "bank": {"bank_id": 1, "slot": 1}}),
                 404, "not_found", "C25:0")
    assert_error(api.post("/slotmaps/move", {"client": {"client_id": 23, "slot": 0}}),
                 400, "invalid_body", "bank must be an object")
    e = api.get("/events?kind=slotmap.move").json()["events"]
    assert [x["message"] for x in e] == ["client 23:0 moved from B1:0 to B1:2"]


def test_slotmap_refusals(api, postgres):
    assert api.post("/slotmaps", mapping(1, 0, 23, 0)).status == 201
    assert_error(api.post("/slotmaps", mapping(1, 0, 24, 0)), 409, "bank_slot_in_use",
                 "(bank_id, bank_slot)=(1, 0)")
    assert_error(api.post("/slotmaps", mapping(1, 1, 23, 0)), 409, "client_slot_in_use")
    api.srv.wait_for_log(r"POST /api/v2/slotmaps refused: 409 client_slot_in_use")

    def post_raw(body, ctype="application/json"):
        return api.post("/slotmaps", body.encode() if isinstance(body, str) else body, raw=True,
                        headers={"Content-Type": ctype} if ctype else {})

    good = json.dumps(mapping(2, 0, 30, 0))
    assert_error(post_raw('{"bank":'), 400, "invalid_json")
    assert_error(post_raw(""), 400, "invalid_json", "empty body")
    assert_error(post_raw(b"\xff\xfe"), 400, "invalid_json")
    assert_error(post_raw('{"bank":{"bank_id":1,"bank_id":2,"slot":0},"client":{}}'), 400,
                 "invalid_json", "duplicate")
    assert_error(post_raw("[1]"), 400, "invalid_body", "object")
    assert_error(post_raw(good, "text/plain"), 415, "unsupported_media_type")
    for body, code, text in (
            ({"bank": {"bank_id": "2", "slot": 0}, "client": {"client_id": 30, "slot": 0}},
             "invalid_body", "bank.bank_id must be an integer"),
            ({"bank": {"bank_id": 2, "slot": 1.0}, "client": {"client_id": 30, "slot": 0}},
             "invalid_body", "bank.slot must be an integer"),
            ({"bank": {"bank_id": 2, "slot": None}, "client": {"client_id": 30, "slot": 0}},
             "invalid_body", "bank.slot must be an integer"),
            ({"bank": {"bank_id": 2}, "client": {"client_id": 30, "slot": 0}},
             "invalid_body", "bank.slot is missing"),
            ({"bank": [2, 0], "client": {"client_id": 30, "slot": 0}},
             "invalid_body", "bank must be an object"),
            ({"bank": {"bank_id": 2, "slot": 0}}, "invalid_body", "client must be an object"),
            ({"bank": {"bank_id": 2, "slot": 1024}, "client": {"client_id": 30, "slot": 0}},
             "out_of_range", "bank.slot = 1024 is not in 0..1023"),
            ({"bank": {"bank_id": -1, "slot": 0}, "client": {"client_id": 30, "slot": 0}},
             "out_of_range", "bank.bank_id = -1"),
            ({"bank": {"bank_id": 2, "slot": 0}, "client": {"client_id": 2**40, "slot": 0}},
             "out_of_range", "client.client_id")):
        assert_error(api.post("/slotmaps", body), 400, code, text)
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "1"

    for path in ("/slotmaps/1", "/slotmaps/1/0/x", "/nothing", "", "/banks/1/slots/0"):
        assert_error(api.get(path), 404, "not_found")
    a = api.request("PUT", "/slotmaps/1/0", mapping(1, 0, 23, 0))
    assert_error(a, 405, "method_not_allowed")
    assert a.headers["allow"] == "GET, DELETE"
    assert_error(api.get("/slotmaps/x/0"), 400, "invalid_parameter", "bank id 'x'")
    assert_error(api.delete("/slotmaps/1/2000"), 400, "invalid_parameter", "bank slot '2000'")
    assert_error(api.delete("/slotmaps/1/9"), 404, "not_found", "B1:9")


def test_bodies_too_large_or_without_length(api, postgres):
    big = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    a = api.post("/slotmaps", big, raw=True, headers={"Content-Type": "application/json"})
    assert_error(a, 413, "payload_too_large")
    # the connection stays usable after a refused body
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request("POST", V2 + "/slotmaps", body=b"x" * 70000,
                 headers={"Authorization": "Bearer " + api.token})
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == "payload_too_large"
    conn.request("GET", V2 + "/health")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    conn.close()

    # a chunked body: refused after the headers, the connection closed (lws cannot read
    # chunked bodies), so the request goes out in one piece, as a small client sends it
    body = json.dumps(mapping(1, 0, 2, 0)).encode()
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    sock.sendall(b"POST " + V2.encode() + b"/slotmaps HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + api.token.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    answer = b""
    while (chunk := sock.recv(65536)):
        answer += chunk
    sock.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411 Length Required\r\n"), answer
    assert b"\r\nConnection: close" in head
    assert json.loads(payload)["error"]["code"] == "length_required"
    api.srv.wait_for_log(r"refused: 411 length_required")
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "0"
    # and the server is fine
    assert api.get("/slotmaps").status == 200


def test_slotmap_filters_and_pagination(api, postgres):
    # 25 mappings: banks 1..5, slots 0..4, clients 100..124
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "SELECT b, s, 100 + (b - 1) * 5 + s, 0 FROM generate_series(1, 5) b, "
                  "generate_series(0, 4) s")
    page = api.get("/slotmaps?limit=10").json()
    assert (page["total"], page["limit"], page["offset"], page["next_offset"]) == (25, 10, 0, 10)
    ids = [(m["bank"]["bank_id"], m["bank"]["slot"]) for m in page["slotmaps"]]
    assert ids == [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
    page = api.get("/slotmaps?limit=10&offset=20").json()
    assert len(page["slotmaps"]) == 5 and page["next_offset"] is None
    assert page["slotmaps"][0]["id"] == 5 * 65536
    page = api.get("/slotmaps?offset=30").json()
    assert page["slotmaps"] == [] and page["total"] == 25
    page = api.get("/slotmaps").json()
    assert len(page["slotmaps"]) == 25 and page["limit"] == 100
    page = api.get("/slotmaps?bank_id=2").json()
    assert page["total"] == 5 and {m["bank"]["bank_id"] for m in page["slotmaps"]} == {2}
    page = api.get("/slotmaps?client_id=103&bank_id=1").json()
    assert [m["client"]["client_id"] for m in page["slotmaps"]] == [103]
    assert api.get("/slotmaps?bank_id=2&client_id=103").json()["total"] == 0
    assert api.get("/slotmaps?state=NEW").json()["total"] == 25
    assert api.get("/slotmaps?state=ACTIVE").json()["total"] == 0
    for q, text in (("state=active", "state='active'"), ("limit=0", "limit=0"),
                    ("limit=1001", "limit='1001'"), ("limit=ten", "limit"),
                    ("offset=-1", "offset"), ("bank_id=1024", "bank_id"),
                    ("client=1", "unknown query argument 'client'")):
        assert_error(api.get("/slotmaps?" + q), 400, "invalid_parameter", text)


def test_large_answers_over_keep_alive(api, postgres):
    """Answers larger than one write (128 KiB) arrive whole, and the next one after them."""
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "SELECT b, s, b, s FROM generate_series(0, 9) b, generate_series(0, 99) s")
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    auth = {"Authorization": "Bearer " + api.token}
    for _ in range(3):
        conn.request("GET", V2 + "/slotmaps?limit=1000", headers=auth)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and len(body) > 200 * 1024
        page = json.loads(body)
        assert page["total"] == 1000 and len(page["slotmaps"]) == 1000
        conn.request("GET", "/api/backend/v1/slotmaps")
        r = conn.getresponse()
        assert len(json.loads(r.read())["slotmaps"]) == 1000
    conn.close()


# ---- events ----


def test_events(api, postgres):
    for b in range(3):
        assert api.post("/slotmaps", mapping(b, 0, 10 + b, 0)).status == 201
    assert api.delete("/slotmaps/1/0").status == 204
    postgres.psql("INSERT INTO events (kind, message) VALUES ('other.thing', 'hello')")
    all_ = api.get("/events").json()
    ids = [e["event_id"] for e in all_["events"]]
    assert ids == sorted(ids) and all_["last_event_id"] == ids[-1]
    assert [e["kind"] for e in all_["events"]][-5:] == [
        "slotmap.create", "slotmap.create", "slotmap.create", "slotmap.delete", "other.thing"]
    ev = api.get("/events?kind=slotmap").json()["events"]
    assert len(ev) == 4 and all(e["actor"] == "rest-v2 admin:1" for e in ev)
    assert all(TS_RE.match(e["at"]) and e["severity"] == "info" for e in ev)
    assert len(api.get("/events?kind=slotmap.create").json()["events"]) == 3
    assert api.get("/events?kind=slot").json()["events"] == []
    assert [e["kind"] for e in api.get("/events?bank_id=1").json()["events"]] == [
        "slotmap.create", "slotmap.delete"]
    assert len(api.get("/events?client_id=12").json()["events"]) == 1
    first = ev[0]["event_id"]
    later = api.get(f"/events?since={first}&kind=slotmap").json()["events"]
    assert [e["event_id"] for e in later] == [e["event_id"] for e in ev[1:]]
    # without since: the latest ones, oldest first
    last2 = api.get("/events?limit=2").json()["events"]
    assert [e["event_id"] for e in last2] == ids[-2:]
    since_ts = api.get(f"/events?since={ev[1]['at']}&kind=slotmap").json()["events"]
    assert since_ts[0]["event_id"] == ev[1]["event_id"]
    assert_error(api.get("/events?since=yesterday-ish"), 400, "invalid_parameter")
    assert_error(api.get("/events?limit=0"), 400, "invalid_parameter")
    assert_error(api.get("/events?offset=2"), 400, "invalid_parameter", "offset")


# ---- tokens ----


def test_tokens_issue_list_revoke(api, issue, ctl, key, postgres):
    a = api.post("/tokens", {"role": "admin", "subject": 7, "ttl": 3600, "comment": "ci runner"})
    assert a.status == 201, a
    t = a.json()
    assert re.match(r"^rst1\.[A-Za-z0-9_-]+$", t["token"])
    assert re.match(r"^[0-9a-f]{32}$", t["token_id"]) and re.match(r"^[0-9a-f]{16}$", t["key_id"])
    assert (t["role"], t["subject"], t["comment"]) == ("admin", 7, "ci runner")
    assert TS_RE.match(t["issued_at"]) and TS_RE.match(t["expires_at"])
    # the token verifies offline and works as a bearer
    out = ctl("token", "verify", "--key", key.with_suffix(".pub"), "--role", "admin", t["token"])
    assert t["token_id"] in out
    assert api.get("/banks", token=t["token"]).status == 200
    assert api.post("/slotmaps", mapping(1, 1, 1, 1), token=t["token"]).json()["created_by"] == \
        "rest-v2 admin:7"

    listed = api.get("/tokens").json()
    assert listed["total"] == 1
    entry = listed["tokens"][0]
    assert "token" not in entry and entry["token_id"] == t["token_id"]
    assert entry["revoked"] is False and entry["comment"] == "ci runner"

    assert api.delete(f"/tokens/{t['token_id']}?reason=rotated").status == 204
    # effective for the very next request
    assert_error(api.get("/banks", token=t["token"]), 401, "unauthorized", "revoked")
    assert api.delete(f"/tokens/{t['token_id'].upper()}").status == 204
    entry = api.get("/tokens").json()["tokens"][0]
    assert entry["revoked"] is True and entry["revoked_by"] == "rest-v2 admin:1"
    assert entry["revoke_reason"] == "rotated" and TS_RE.match(entry["revoked_at"])

    # a token made offline by remsimctl is not registered, but can be revoked
    offline = issue("client", 23)
    assert api.delete(f"/tokens/{offline['token_id']}").status == 204
    listed = api.get("/tokens").json()
    assert listed["total"] == 2
    assert [x["role"] for x in listed["tokens"] if x["token_id"] == offline["token_id"]] == [None]
    assert postgres.psql("SELECT string_agg(kind, ',' ORDER BY event_id) FROM events "
                         "WHERE kind LIKE 'token.%'") == "token.issue,token.revoke,token.revoke"

    # a client token issued here is one, and is no key to the admin API
    c = api.post("/tokens", {"role": "client", "subject": 23}).json()
    assert c["role"] == "client" and c["comment"] is None
    assert_error(api.get("/banks", token=c["token"]), 403, "forbidden")

    for body, code in (({"role": "root", "subject": 1}, "invalid_body"),
                       ({"subject": 1}, "invalid_body"),
                       ({"role": "client"}, "invalid_body"),
                       ({"role": "client", "subject": 1024}, "out_of_range"),
                       ({"role": "admin", "subject": 2**32}, "out_of_range"),
                       ({"role": "admin", "subject": 1, "ttl": 0}, "out_of_range"),
                       ({"role": "admin", "subject": 1, "ttl": "1d"}, "invalid_body"),
                       ({"role": "admin", "subject": 1, "comment": 5}, "invalid_body"),
                       ({"role": "admin", "subject": 1, "comment": "x" * 300}, "invalid_body")):
        assert_error(api.post("/tokens", body), 400, code)
    assert_error(api.delete("/tokens/xyz"), 400, "invalid_parameter")
    assert_error(api.delete("/tokens/" + "g" * 32), 400, "invalid_parameter")


def test_metrics_count_http_answers(api):
    assert api.get("/banks").status == 200
    assert api.get("/banks", token="").status == 401

    def fetch(method):
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        try:
            conn.request(method, "/metrics")
            resp = conn.getresponse()
            return Answer(resp, resp.read())
        finally:
            conn.close()

    a = fetch("GET")
    assert a.status == 200 and a.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = a.body.decode()
    assert 'remsim_http_requests_total{code="200"}' in text
    assert 'remsim_http_requests_total{code="401"} 1' in text
    assert_error(fetch("POST"), 405, "method_not_allowed")


def test_garbage_does_not_hurt(api):
    """Malformed HTTP of every kind: answered or closed, never a crash."""
    many_args = "&".join(f"a{i}=1" for i in range(100))
    junk = [
        b"GARBAGE\r\n\r\n",
        bytes(range(256)) * 16,
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"POST /api/v2/slotmaps HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v2/slotmaps HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST /api/v2/slotmaps HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n{",
        b"POST /api/v2/slotmaps HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"bank\"",
        f"GET /api/v2/slotmaps?{many_args} HTTP/1.1\r\n\r\n".encode(),
        b"GET /api/v2/%zz%00/banks HTTP/1.1\r\n\r\n",
        b"GET /api/backend/v1/banks/%00 HTTP/1.1\r\n\r\n",
        b"GET /api/v2/banks HTTP/1.1\r\nAuthorization: Bearer " + b"A" * 3000 + b"\r\n\r\n",
        b"GET /api/v2/banks HTTP/1.0\r\n\r\n",
        b"DELETE /api/v2/tokens/../../etc HTTP/1.1\r\n\r\n",
        b"GET /api/v2/health HTTP/1.1\r\n\r\nGET /api/v2/health HTTP/1.1\r\n\r\n",
        # decoded newlines must not forge log lines
        b"GET /api/v2/a%0d%0aFORGED%0a HTTP/1.1\r\n\r\n",
        b"GET /api/v2/slotmaps?state=x%0aFORGED HTTP/1.1\r\n\r\n",
    ]
    for data in junk:
        sock = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # refused by closing: fine
        finally:
            sock.close()
    assert api.srv.returncode is None
    assert api.get("/health", token="").json()["status"] == "ok"
    assert "\nFORGED" not in api.srv.log_text()
    # lws drops requests with very many arguments itself; a few more than we keep:
    assert_error(api.get("/slotmaps?" + "&".join(f"a{i}=1" for i in range(20))), 400,
                 "invalid_parameter", "too many query arguments")


# ---- the database away ----


def test_database_down(api, postgres):
    assert api.get("/banks").status == 200
    postgres.stop()
    api.srv.wait_for_log("database connection failed")
    for a in (api.get("/banks"), api.get("/slotmaps"), api.post("/slotmaps", mapping(1, 0, 1, 0)),
              api.get("/events"), api.post("/tokens", {"role": "admin", "subject": 1})):
        assert_error(a, 503, "database_unavailable")
    h = api.get("/health", token="")
    assert h.status == 503 and h.json()["status"] == "degraded" and h.json()["database"] == "down"
    # bad input is still refused as such
    assert_error(api.post("/slotmaps", {"bank": 1}), 400, "invalid_body")
    postgres.start()
    wait_for(lambda: api.get("/banks"), lambda a: a.status == 200, timeout=15)
    assert api.get("/health", token="").json()["status"] == "ok"


def test_client_gone_while_waiting_for_the_database(api, postgres):
    """An answer whose connection closed meanwhile is dropped, nothing else happens."""
    locker = subprocess.Popen(["/usr/bin/psql", "-X", "-d", postgres.dsn, "-c",
                               "BEGIN; LOCK TABLE slotmaps; SELECT pg_sleep(1.5); COMMIT;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
            conn.request("GET", V2 + "/slotmaps", headers={"Authorization": "Bearer " + api.token})
            conn.close()
        api.srv.wait_for_log(r"GET /api/v2/slotmaps: answer dropped, connection gone")
    finally:
        locker.wait(10)
    assert api.get("/slotmaps").status == 200


def test_shutdown_with_a_query_out(api, postgres):
    locker = subprocess.Popen(["/usr/bin/psql", "-X", "-d", postgres.dsn, "-c",
                               "BEGIN; LOCK TABLE slotmaps; SELECT pg_sleep(3); COMMIT;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        conn.request("GET", V2 + "/slotmaps", headers={"Authorization": "Bearer " + api.token})
        time.sleep(0.2)
        assert api.srv.terminate() == 0
        conn.close()
    finally:
        locker.kill()
        locker.wait(10)
