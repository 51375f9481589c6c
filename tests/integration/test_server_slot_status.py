"""Slot status indications end to end: what a bankd reports about its slots
(card, contacts and remsim-bankd's worker state, ATR and TPDU count) and what
a client reports about its modem side shows up in SQL and in /api/v2; reports
about somebody else's slot are refused; a bankd going offline clears its
slots' runtime state."""
import pytest
from rspro_peer import connect_bankd, connect_client
from test_rest_v2 import Api, api, ctl, issue, key, peer, server, wait_for  # noqa: F401


def bank_status(bank, slot, card=True, worker=None, atr=None, tpdus=None, client=(0, 0)):
    ind = {"fromBankSlot": {"bankId": bank, "slotNr": slot},
           "toClientSlot": {"clientId": client[0], "slotNr": client[1]},
           "slotPhysStatus": {"resetActive": False, "cardPresent": card}}
    if worker:
        ind["workerState"] = worker
    if atr:
        ind["atr"] = atr
    if tpdus is not None:
        ind["tpduCount"] = tpdus
    return {"version": 2, "tag": 7, "msg": {"bankSlotStatusInd": ind}}


def slot_of(api, bank, slot):
    r = api.get(f"/banks/{bank}/slots")
    assert r.status == 200, r
    return next((s for s in r.json()["slots"] if s["slot"] == slot), None)


def test_bank_slot_report_reaches_sql_and_api(api, peer, postgres):
    bankd = connect_bankd(peer, api.srv)
    wait_for(lambda: slot_of(api, 1, 2), lambda s: s is not None)

    bankd.send_json(bank_status(1, 2, worker="connectedClientMappedCard",
                                atr="3b9f96801fc78031a073be21136743200718000001a5",
                                tpdus=42, client=(23, 0)))
    s = wait_for(lambda: slot_of(api, 1, 2), lambda s: s["worker_state"] is not None)
    assert s["worker_state"] == "CONNECTED_CLIENT_MAPPED_CARD"
    assert s["card_present"] is True
    assert s["atr"] == "3b9f96801fc78031a073be21136743200718000001a5"
    assert s["apdu_count"] == 42
    assert s["reset_active"] is False
    assert postgres.psql("SELECT worker_state, card_present, encode(atr, 'hex'), apdu_count "
                         "FROM bank_slots WHERE bank_id = 1 AND slot_nr = 2") == \
        "CONNECTED_CLIENT_MAPPED_CARD|t|3b9f96801fc78031a073be21136743200718000001a5|42"

    # the card is pulled: no ATR any more, the count stays
    bankd.send_json(bank_status(1, 2, card=False, worker="connectedClientMapped"))
    s = wait_for(lambda: slot_of(api, 1, 2), lambda s: s["card_present"] is False)
    assert s["atr"] is None and s["apdu_count"] == 42
    assert s["worker_state"] == "CONNECTED_CLIENT_MAPPED"

    # a slot beyond the announced inventory (4 slots) is still recorded
    bankd.send_json(bank_status(1, 9, worker="accepting"))
    s = wait_for(lambda: slot_of(api, 1, 9), lambda s: s is not None and s["worker_state"])
    assert s["worker_state"] == "ACCEPTING"

    # offline: the runtime state is unknown again
    bankd.close()
    s = wait_for(lambda: slot_of(api, 1, 2), lambda s: s["worker_state"] is None)
    assert s["card_present"] is None and s["atr"] is None and s["apdu_count"] == 42


def test_osmo_style_report_without_extensions(api, peer):
    bankd = connect_bankd(peer, api.srv)
    bankd.send_json(bank_status(1, 0, card=True))
    s = wait_for(lambda: slot_of(api, 1, 0), lambda s: s and s["card_present"] is True)
    assert s["worker_state"] is None and s["atr"] is None and s["apdu_count"] == 0


def test_report_for_another_bank_is_refused(api, peer, postgres):
    bankd = connect_bankd(peer, api.srv)
    bankd.send_json(bank_status(2, 0, worker="accepting"))
    api.srv.wait_for_log(r"bankSlotStatusInd for bank 2 ignored: this is bank 1")
    # the same connection keeps working
    bankd.send_json(bank_status(1, 1, worker="init"))
    wait_for(lambda: slot_of(api, 1, 1), lambda s: s and s["worker_state"] == "INIT")
    assert postgres.psql("SELECT count(*) FROM bank_slots WHERE bank_id = 2") == "0"


def client_status(client, slot, reset=True, card=True):
    return {"version": 2, "tag": 9, "msg": {"clientSlotStatusInd": {
        "fromClientSlot": {"clientId": client, "slotNr": slot},
        "toBankSlot": {"bankId": 1, "slotNr": 0},
        "slotPhysStatus": {"resetActive": reset, "vccPresent": True, "clkActive": True,
                           "cardPresent": card}}}}


def test_client_slot_report(api, peer, postgres):
    client = connect_client(peer, api.srv)
    modem = lambda: api.get("/clients/23").json()["slots"][0]["modem"]  # noqa: E731
    wait_for(lambda: api.get("/clients/23").status, lambda s: s == 200)
    assert modem() == {"reset_active": None, "vcc_present": None, "clk_active": None,
                       "card_present": None}
    client.send_json(client_status(23, 0, reset=True))
    got = wait_for(modem, lambda m: m["reset_active"] is True)
    assert got == {"reset_active": True, "vcc_present": True, "clk_active": True,
                   "card_present": True}
    client.send_json(client_status(23, 0, reset=False, card=False))
    wait_for(modem, lambda m: m["reset_active"] is False and m["card_present"] is False)
    assert postgres.psql("SELECT reset_active, card_present FROM client_slots "
                         "WHERE client_id = 23") == "f|f"

    client.send_json(client_status(24, 0))
    api.srv.wait_for_log(r"clientSlotStatusInd for client 24:0 ignored: this is client 23:0")
