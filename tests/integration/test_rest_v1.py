"""/api/backend/v1, osmo-remsim 1.0's REST interface, against real PostgreSQL and scripted
agents sending osmo-remsim 1.0's bytes.

test_captured_session replays the 25 exchanges of shared/testdata/osmo-remsim-1.0-rest.md in
order and compares status, Content-Type, Content-Length and body byte for byte; the other
tests cover what the capture does not show: refusals, the access policy, the database being
away. Where remsim answers differently from osmo-remsim on purpose, docs/api.md says why.
"""
import http.client
import json
import socket
import subprocess
import time

import pytest
from rspro_peer import connect_bankd, connect_client, res

V1 = "/api/backend/v1"
OK = {"version": 2, "tag": 0}

BANKS_1 = (b'{"banks":[{"peer":"B1","state":"CONNECTED_BANKD","component_id":{"type_":"remsimBankd",'
           b'"name":"fixme-name","software":"remsim-bankd","swVersion":"1.0.0"},"bankId":1,'
           b'"numberOfSlots":4}]}')
BANK_1 = (b'{"peer":"B1","state":"CONNECTED_BANKD","component_id":{"type_":"remsimBankd",'
          b'"name":"fixme-name","software":"remsim-bankd","swVersion":"1.0.0"},"bankId":1,'
          b'"numberOfSlots":4}')
CLIENTS_23 = (b'{"clients":[{"peer":"C23:0","state":"CONNECTED_CLIENT","component_id":'
              b'{"type_":"remsimClient","name":"remsim-anchor","software":"remsim-client",'
              b'"swVersion":"1.0.0"}}]}')


def slotmaps(*maps):
    """The compact GET /slotmaps body for (bank, slot, client, slot, state) tuples."""
    return json.dumps({"slotmaps": [
        {"bank": {"bankId": b, "slotNr": bs}, "client": {"clientId": c, "slotNr": cs},
         "state": st} for b, bs, c, cs, st in maps]}, separators=(",", ":")).encode()


class Answer:
    def __init__(self, resp, body):
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.body = body

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def request(port, method, path, body=None, headers=None, host="127.0.0.1"):
    """One exchange on a fresh connection, as the capture's client made them."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body,
                     headers={"Accept-Encoding": "identity", **(headers or {})})
        resp = conn.getresponse()
        return Answer(resp, resp.read())
    finally:
        conn.close()


def post_json(port, path, text):
    return request(port, "POST", path, text.encode(), {"Content-Type": "application/json"})


def assert_json(a, status, body):
    assert a.status == status, a
    assert a.headers.get("content-type") == "application/json", a
    assert a.headers.get("content-length") == str(len(body)), a
    assert a.body == body


def assert_empty(a, status):
    """osmo-remsim's empty answers: Content-Length: 0 and no Content-Type."""
    assert a.status == status, a
    assert a.headers.get("content-length") == "0", a
    assert "content-type" not in a.headers, a
    assert a.body == b""


def assert_not_found_text(a):
    assert a.status == 404, a
    assert a.body == b"Resource not found"


@pytest.fixture
def server(remsim_server, postgres):
    return lambda *args, name="server": remsim_server(postgres, *args, name=name)


@pytest.fixture
def peer(rspro_agent):
    return rspro_agent


def wait_get(port, path, want, timeout=5.0):
    """GET path until its body is want (the control plane works asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        a = request(port, "GET", path)
        if a.body == want or time.monotonic() > deadline:
            return a
        time.sleep(0.05)


def wait_until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_captured_session(server, peer, postgres):
    srv = server()
    port = srv.http_port
    # 1-3: nothing connected yet
    assert_json(request(port, "GET", V1 + "/banks"), 200, b'{"banks":[]}')
    assert_json(request(port, "GET", V1 + "/clients"), 200, b'{"clients":[]}')
    assert_json(request(port, "GET", V1 + "/slotmaps"), 200, b'{"slotmaps":[]}')

    bankd = connect_bankd(peer, srv)
    client = connect_client(peer, srv)
    # 4, 5
    assert_json(request(port, "GET", V1 + "/banks"), 200, BANKS_1)
    assert_json(request(port, "GET", V1 + "/clients"), 200, CLIENTS_23)
    # 6: the answer comes first, the RSPRO conversation follows
    a = post_json(port, V1 + "/slotmaps",
                  '{"bank": {"bankId": 1, "slotNr": 0}, "client": {"clientId": 23, "slotNr": 0}}')
    assert_empty(a, 201)
    req = bankd.expect("createMappingReq")
    assert req.msg == {"client": {"clientId": 23, "slotNr": 0}, "bank": {"bankId": 1, "slotNr": 0}}
    bankd.send_json(res("createMappingRes"))
    assert client.expect("configClientBankReq").msg["bankSlot"] == {"bankId": 1, "slotNr": 0}
    # 7
    assert_json(wait_get(port, V1 + "/slotmaps", slotmaps((1, 0, 23, 0, "ACTIVE"))), 200,
                slotmaps((1, 0, 23, 0, "ACTIVE")))
    # 8-14
    assert_json(request(port, "GET", V1 + "/banks"), 200, BANKS_1)
    assert_json(request(port, "GET", V1 + "/banks/1"), 200, BANK_1)
    assert_empty(request(port, "GET", V1 + "/banks/99"), 200)
    assert_json(request(port, "GET", V1 + "/clients"), 200, CLIENTS_23)
    assert_empty(request(port, "GET", V1 + "/clients/23"), 200)
    assert_json(request(port, "GET", V1 + "/slotmaps"), 200, slotmaps((1, 0, 23, 0, "ACTIVE")))
    assert_empty(request(port, "GET", V1 + "/restart-counter"), 200)
    # 15: bank slot in use; 16: truncated JSON; 17: slot number out of range
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank": {"bankId": 1, "slotNr": 0}, '
                           '"client": {"clientId": 23, "slotNr": 0}}'), 400)
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank":'), 400)
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank": {"bankId": 1, "slotNr": 2000}, '
                           '"client": {"clientId": 23, "slotNr": 0}}'), 400)
    # 18, 19: slotmap id = bank * 65536 + slot
    assert_empty(request(port, "DELETE", V1 + "/slotmaps/12345"), 404)
    assert_empty(request(port, "DELETE", V1 + "/slotmaps/65536"), 200)
    assert bankd.expect("removeMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 0}
    bankd.send_json(res("removeMappingRes"))
    cfg = client.expect("configClientBankReq")
    assert cfg.msg["bankd"] == {"ip": {"ipv4": "00000000"}, "port": 0}
    # 20
    assert_json(request(port, "GET", V1 + "/slotmaps"), 200, b'{"slotmaps":[]}')
    # 21, 22: the second names a bank slot the bankd lacks (4 slots: 0..3)
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank": {"bankId": 1, "slotNr": 1}, '
                           '"client": {"clientId": 23, "slotNr": 0}}'), 201)
    assert bankd.expect("createMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 1}
    bankd.send_json(res("createMappingRes"))
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank": {"bankId": 1, "slotNr": 4}, '
                           '"client": {"clientId": 24, "slotNr": 0}}'), 201)
    assert bankd.expect("createMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 4}
    bankd.send_json(res("createMappingRes", "illegalSlotId"))
    # 23: osmo-remsim lists the refused mapping as ACTIVE; remsim keeps it NEW (docs/api.md)
    want = slotmaps((1, 1, 23, 0, "ACTIVE"), (1, 4, 24, 0, "NEW"))
    srv.wait_for_log(r"bankd 1 refused mapping B1:4 <-> C24:0")
    assert_json(wait_get(port, V1 + "/slotmaps", want), 200, want)
    # 24, 25
    assert_empty(request(port, "POST", V1 + "/global-reset"), 200)
    assert bankd.expect("removeMappingReq").msg["bank"] == {"bankId": 1, "slotNr": 1}
    bankd.send_json(res("removeMappingRes"))
    assert_json(request(port, "GET", V1 + "/slotmaps"), 200, b'{"slotmaps":[]}')
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "0"
    # one audit event per write, made by rest-v1
    assert postgres.psql("SELECT string_agg(kind, ',' ORDER BY event_id) FROM events "
                         "WHERE actor LIKE 'rest-v1 127.0.0.1:%'") == \
        "slotmap.create,slotmap.delete,slotmap.create,slotmap.create,slotmap.reset"


def test_writes_are_sql_rows_and_sql_rows_are_listed(server, postgres):
    srv = server()
    port = srv.http_port
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank":{"bankId":2,"slotNr":5},'
                           '"client":{"clientId":7,"slotNr":1},"extra":"ignored"}'), 201)
    assert postgres.psql("SELECT slotmap_id, created_by, state FROM slotmaps") == \
        "131077|rest-v1|NEW"
    # a mapping made in psql is listed like one made through REST
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (3, 0, 8, 0)")
    want = slotmaps((2, 5, 7, 1, "NEW"), (3, 0, 8, 0, "NEW"))
    assert_json(wait_get(port, V1 + "/slotmaps", want), 200, want)
    # the client slot is taken as well: 400 as in osmo-remsim
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank":{"bankId":9,"slotNr":0},'
                           '"client":{"clientId":7,"slotNr":1}}'), 400)
    srv.wait_for_log(r"refused: 400 client_slot_in_use: Key \(client_id, client_slot\)=\(7, 1\) "
                     r"already exists")
    assert_empty(request(port, "DELETE", V1 + "/slotmaps/131077"), 200)
    assert_empty(request(port, "DELETE", V1 + "/slotmaps/131077"), 404)
    assert_empty(request(port, "POST", V1 + "/global-reset", b"ignored",
                         {"Content-Type": "text/plain"}), 200)
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "0"
    assert_json(wait_get(port, V1 + "/slotmaps", b'{"slotmaps":[]}'), 200, b'{"slotmaps":[]}')


POST_REFUSALS = [
    ('{"bank":{"bankId":1,"slotNr":0},"client":{"clientId":23,"slotNr":0}}',
     "application/x-www-form-urlencoded"),
    ('{"bank":{"bankId":1,"slotNr":0},"client":{"clientId":23,"slotNr":0}}', None),
    ('{"bank":{"bankId":1},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    ('{"bank":{"bankId":"1","slotNr":0},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    ('{"bank":{"bankId":1.0,"slotNr":0},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    ('{"bank":{"bankId":true,"slotNr":0},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    ('{"bank":{"bankId":-1,"slotNr":0},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    ('{"bank":{"bankId":1024,"slotNr":0},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    # osmo-remsim truncates to 16 bits and takes this as bank 1
    ('{"bank":{"bankId":65537,"slotNr":0},"client":{"clientId":23,"slotNr":0}}', "application/json"),
    ('{"bank":{"bankId":99999999999999999999999,"slotNr":0},"client":{}}', "application/json"),
    ('[1, 2]', "application/json"),
    ('', "application/json"),
    ('\x00\xff', "application/json"),
]


def test_post_refusals(server, postgres):
    srv = server()
    for body, content_type in POST_REFUSALS:
        headers = {"Content-Type": content_type} if content_type else {}
        start = len(srv.log_text())
        a = request(srv.http_port, "POST", V1 + "/slotmaps", body.encode("latin-1"), headers)
        assert a.status == 400, (body, content_type, a)
        assert_empty(a, 400)
        srv.wait_for_log(r"POST /api/backend/v1/slotmaps refused: 400", start=start)
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "0"


def test_ids_must_be_numbers(server, postgres):
    srv = server()
    port = srv.http_port
    # osmo-remsim reads "abc" as 0: this would delete B0:0
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (0, 0, 1, 0)")
    for path in ("abc", "0x10", "-1", "+1", "%201", "1.5", "4294967296", "99999999999999999999"):
        assert_empty(request(port, "DELETE", f"{V1}/slotmaps/{path}"), 400)
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "1"
    for path in ("banks/abc", "banks/65536", "banks/99999", "clients/x", "clients/70000"):
        assert_empty(request(port, "GET", f"{V1}/{path}"), 400)
    srv.wait_for_log(r"GET /api/backend/v1/clients/70000 refused: 400 bad_request: "
                     r"invalid id '70000'")
    # in range, not connected: osmo-remsim's 200 with an empty body
    for path in ("banks/0", "banks/1023", "banks/65535", "clients/0", "clients/65535"):
        assert_empty(request(port, "GET", f"{V1}/{path}"), 200)
    assert_empty(request(port, "DELETE", f"{V1}/slotmaps/0"), 200)
    assert postgres.psql("SELECT count(*) FROM slotmaps") == "0"


def test_unknown_paths_and_methods(server):
    srv = server()
    port = srv.http_port
    for method, path in (("GET", V1 + "/slotmaps/65536"), ("PUT", V1 + "/slotmaps"),
                         ("PATCH", V1 + "/slotmaps"), ("GET", V1), ("GET", V1 + "/nothing"),
                         ("POST", V1 + "/banks"), ("DELETE", V1 + "/banks/1"),
                         ("GET", V1 + "/banks/1/slots"), ("GET", "/api/backend/v2/banks"),
                         ("GET", "/no-such-file.js"), ("OPTIONS", V1 + "/banks")):
        assert_not_found_text(request(port, method, path))


def test_keep_alive(server):
    srv = server()
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=5)
    for _ in range(50):
        conn.request("GET", V1 + "/slotmaps")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b'{"slotmaps":[]}'
        conn.request("DELETE", V1 + "/slotmaps/1")
        resp = conn.getresponse()
        assert resp.status == 404 and resp.read() == b""
        # HEAD gets headers only, or the next answer would be garbled
        conn.request("HEAD", V1 + "/slotmaps")
        resp = conn.getresponse()
        assert resp.status == 404 and resp.getheader("Content-Length") == "18"
        assert resp.read() == b""
    conn.close()


def test_database_down(server, postgres, peer):
    srv = server()
    port = srv.http_port
    connect_bankd(peer, srv)
    postgres.stop()
    srv.wait_for_log("database connection failed")
    # reads come from memory; writes need the database
    assert_json(request(port, "GET", V1 + "/banks"), 200, BANKS_1)
    assert_json(request(port, "GET", V1 + "/slotmaps"), 200, b'{"slotmaps":[]}')
    assert_empty(post_json(port, V1 + "/slotmaps", '{"bank":{"bankId":1,"slotNr":0},'
                           '"client":{"clientId":23,"slotNr":0}}'), 503)
    assert_empty(request(port, "DELETE", V1 + "/slotmaps/65536"), 503)
    assert_empty(request(port, "POST", V1 + "/global-reset"), 503)
    srv.wait_for_log(r"refused: 503 database_unavailable")


def global_address():
    """A non-loopback IPv4 address of this host, or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=5).stdout
    except OSError:
        return None
    for line in out.splitlines():
        return line.split()[3].split("/")[0]
    return None


@pytest.mark.parametrize("policy", [None, "loopback", "any", "off"])
def test_access_policy(server, policy):
    srv = server(*(["--v1-access", policy] if policy else []))
    port = srv.http_port
    a = request(port, "GET", V1 + "/slotmaps")
    b = post_json(port, V1 + "/slotmaps", "{}")
    if policy == "off":
        assert_empty(a, 403)
        assert_empty(b, 403)
        srv.wait_for_log(r"refused: 403 forbidden: the v1 API is switched off")
        return
    assert_json(a, 200, b'{"slotmaps":[]}')
    assert_empty(b, 400)
    if socket.has_ipv6:
        assert_json(request(port, "GET", V1 + "/slotmaps", host="::1"), 200, b'{"slotmaps":[]}')
    addr = global_address()
    if addr is None:
        return
    a = request(port, "GET", V1 + "/slotmaps", host=addr)
    if policy == "any":
        assert_json(a, 200, b'{"slotmaps":[]}')
    else:
        assert_empty(a, 403)
        srv.wait_for_log(r"v1 API from a non-loopback address without an admin token")


def test_admin_token_admits_remote_callers(server, bin_path, tmp_path):
    addr = global_address()
    if addr is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", tmp_path], check=True, capture_output=True)
    key = tmp_path / "server.key"

    def token(role, id):
        return subprocess.run([ctl, "token", "issue", "--key", key, "--role", role, "--id", id],
                              check=True, capture_output=True, text=True).stdout.strip()

    srv = server("--key", key)
    port = srv.http_port
    ok = request(port, "GET", V1 + "/slotmaps", host=addr,
                 headers={"Authorization": "Bearer " + token("admin", "1")})
    assert_json(ok, 200, b'{"slotmaps":[]}')
    for bad in ("Bearer " + token("client", "23"), "Bearer garbage", "Basic YTpi"):
        assert_empty(request(port, "GET", V1 + "/slotmaps", host=addr,
                             headers={"Authorization": bad}), 403)


def test_slotmaps_listing_follows_every_change(server, peer, postgres):
    """The rendered list is cached; every state change must show at once."""
    srv = server()
    port = srv.http_port
    bankd = connect_bankd(peer, srv)
    assert_json(request(port, "GET", V1 + "/slotmaps"), 200, b'{"slotmaps":[]}')
    postgres.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                  "VALUES (1, 3, 5, 0)")
    bankd.expect("createMappingReq")
    want = slotmaps((1, 3, 5, 0, "UNACKNOWLEDGED"))
    assert_json(wait_get(port, V1 + "/slotmaps", want), 200, want)
    bankd.send_json(res("createMappingRes"))
    want = slotmaps((1, 3, 5, 0, "ACTIVE"))
    assert_json(wait_get(port, V1 + "/slotmaps", want), 200, want)
    postgres.psql("UPDATE slotmaps SET bank_slot = 2")
    bankd.expect("removeMappingReq")
    bankd.expect("createMappingReq")
    want = slotmaps((1, 2, 5, 0, "UNACKNOWLEDGED"))
    assert_json(wait_get(port, V1 + "/slotmaps", want), 200, want)
    bankd.close()
    want = slotmaps((1, 2, 5, 0, "NEW"))
    assert_json(wait_get(port, V1 + "/slotmaps", want), 200, want)
