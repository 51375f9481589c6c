"""remsim-bankd over time: worker state machines logged and reported to the server for a full
cycle, mapping removal and card resets, a server killed with -9 while a client relays
(APDUs keep flowing, mappings survive), SIGTERM, and bad command lines."""
import re
import signal
import socket
import subprocess

from fixtures_bankd import SELECT_MF, map_slot, relay, wait_for

CYCLE = ["INIT -> ACCEPTING", "ACCEPTING -> CONNECTED_WAIT_ID",
         "CONNECTED_WAIT_ID -> CONNECTED_CLIENT", "CONNECTED_CLIENT -> CONNECTED_CLIENT_MAPPED",
         "CONNECTED_CLIENT_MAPPED -> CONNECTED_CLIENT_MAPPED_CARD",
         "CONNECTED_CLIENT_MAPPED_CARD -> INIT", "INIT -> ACCEPTING"]


def worker_transitions(log: str, worker: int) -> list[str]:
    return re.findall(r"\[worker %d[^\]]*\] (\S+ -> \S+) \(" % worker, log)


def slot0(bed):
    return bed.api.get("/banks/1/slots")["slots"][0]


def test_worker_states_full_cycle_logged_and_reported(bed, bankd_client):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    for _ in range(3):
        assert relay(c, SELECT_MF) == bytes.fromhex("9f17")
    s = wait_for(lambda: slot0(b), lambda s: s["worker_state"] == "CONNECTED_CLIENT_MAPPED_CARD")
    assert s["card_present"] is True and s["atr"] == b.cards[0].atr.hex()

    before = len(b.cards[0].controls)
    status, _ = b.api.request("DELETE", "/slotmaps/1/0")
    assert status == 204
    assert c.closed_within(3)  # mapping removed: the worker drops the client
    m = b.bankd.wait_for_log(r"\[worker (\d) [^\]]*\] CONNECTED_CLIENT_MAPPED_CARD -> INIT "
                             r"\(mapping removed\)")
    b.bankd.wait_for_log(r"\[worker %s\] INIT -> ACCEPTING" % m.group(1), start=m.end())
    assert worker_transitions(b.bankd.log_text(), int(m.group(1))) == CYCLE
    # the card was powered off when the worker let go of it (vpcd POWER OFF)
    wait_for(lambda: b.cards[0].controls[before:], lambda x: 0 in x)
    s = wait_for(lambda: slot0(b), lambda s: s["worker_state"] == "ACCEPTING")
    assert s["apdu_count"] == 3


def test_client_status_resets_the_card(bed, bankd_client):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    card = b.cards[0]

    def status(rst, vcc):
        c.send_json({"version": 2, "tag": 0, "msg": {"clientSlotStatusInd": {
            "fromClientSlot": {"clientId": 23, "slotNr": 0},
            "toBankSlot": {"bankId": 1, "slotNr": 0},
            "slotPhysStatus": {"resetActive": rst, "vccPresent": vcc, "clkActive": True}}}})

    before = len(card.controls)
    status(True, True)  # modem pulls RST: warm reset
    b.bankd.wait_for_log(r"warm reset of the card \(modem RST active\), ATR 3b9f")
    assert 2 in card.controls[before:]  # vpcd RESET
    status(True, True)  # no edge, no reset
    status(False, True)
    before = len(card.controls)
    status(False, False)  # VCC off: cold reset (power cycle)
    b.bankd.wait_for_log(r"cold reset of the card \(modem VCC off\)")
    assert 0 in card.controls[before:]  # vpcd POWER OFF, then on again
    assert len(re.findall(r"reset of the card", b.bankd.log_text())) == 2
    assert relay(c, SELECT_MF) == bytes.fromhex("9f17")


def test_server_killed_while_a_client_relays(bed, bankd_client):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    assert relay(c, SELECT_MF) == bytes.fromhex("9f17")
    b.server.kill9()
    b.bankd.wait_for_log(r"link lost .*; clients keep working")
    # each answer must come within expect()'s 5 s: a worker waiting for the link would not
    for _ in range(20):
        assert relay(c, SELECT_MF) == bytes.fromhex("9f17")
    assert len(b.cards[0].apdus) == 21
    # the mapping survives: the client reconnects and gets its card again
    c.close()
    b.bankd.wait_for_log(r"CONNECTED_CLIENT_MAPPED_CARD -> INIT")
    again = bankd_client(b.bankd)
    assert again.expect("connectClientRes").msg["result"] == "ok"
    assert relay(again, SELECT_MF) == bytes.fromhex("9f17")
    assert b.bankd.returncode is None


def test_client_without_mapping_gets_card_not_present(bed, bankd_client):
    b = bed("--map-wait", "300")
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "cardNotPresent"
    assert c.closed_within(3)
    b.bankd.wait_for_log(r"refused \(cardNotPresent\): no mapping for client 23:0")


def test_mapping_arriving_while_the_client_waits(bed, bankd_client):
    b = bed()
    c = bankd_client(b.bankd)
    b.bankd.wait_for_log(r"-> CONNECTED_CLIENT \(")
    map_slot(b)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    c.expect("setAtrReq")


def test_sigterm_stops_cleanly(bed, bankd_client):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    before = len(b.cards[0].controls)
    b.bankd.send_signal(signal.SIGTERM)
    assert b.bankd.wait(10) == 0
    assert c.closed_within(3)
    log = b.bankd.log_text()
    assert "-> INIT (bankd stopping)" in log and log.rstrip().endswith("stopped")
    wait_for(lambda: b.cards[0].controls[before:], lambda x: 0 in x)  # powered off


def test_sigint_without_server_exits_0(remsim_bankd):
    bankd = remsim_bankd()
    bankd.wait_for_log(r"server .* (connecting|wait)")
    bankd.send_signal(signal.SIGINT)
    assert bankd.wait(10) == 0


def test_bad_command_lines(bin_path):
    exe = str(bin_path("agent-bankd/remsim-bankd"))
    for args, text in [(["-b", "1024"], "invalid bank id '1024'"),
                       (["-n", "0"], "invalid number of slots '0'"),
                       (["-P", "70000"], "invalid port '70000'"),
                       (["--client-auth", "maybe"], "invalid client auth policy 'maybe'"),
                       (["--log-level", "loud"], "invalid log level 'loud'"),
                       (["extra"], "unexpected argument 'extra'")]:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--reader-map" in r.stdout and "--client-auth" in r.stdout


def test_bad_files_stop_start_up(remsim_bankd, tmp_path):
    cases = [(["--token", tmp_path / "missing.token"], r"token file .*missing.token: No such"),
             (["--server-pubkey", tmp_path / "missing.pub"], r"server public key: .*missing"),
             (["-M", tmp_path / "missing.csv"], r"reader map: .*missing.csv: No such")]
    for i, (args, text) in enumerate(cases):
        p = remsim_bankd(None, *args, name="bankd%d" % i, ready=None)
        assert p.wait(10) == 1
        assert re.search(text, p.log_text()), p.log_text()


def test_client_port_in_use(remsim_bankd):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    p = remsim_bankd(None, "-P", s.getsockname()[1], ready=None)
    assert p.wait(10) == 1
    assert "cannot listen on 127.0.0.1" in p.log_text()
    s.close()
