"""remsim-bankd against a real remsim-server (PostgreSQL behind it), a private pcscd with vpcd
readers and virtual SIMs; clients are scripted RSPRO peers sending osmo-remsim 1.0's bytes
on the bankd's port, as osmo-remsim-client would."""
import pytest
from fixtures_bankd import READ_ICCID, SELECT_ICCID, SELECT_MF, map_slot, relay, tpdu, wait_for



def test_bankd_registers_with_the_server(bed):
    b = bed()
    banks = wait_for(lambda: b.api.get("/banks")["banks"], lambda x: len(x) == 1)
    assert banks[0]["bank_id"] == 1 and banks[0]["online"] is True
    assert banks[0]["num_slots"] == 2
    assert banks[0]["component"]["type"] == "remsimBankd"
    assert banks[0]["component"]["software"] == "remsim-bankd"


def test_mapping_from_rest_reaches_the_bankd(bed):
    b = bed()
    map_slot(b, 1, 42, 3)
    b.bankd.wait_for_log(r"mapping bank 1 slot 1 <-> client 42:3 created")
    # and a removal, too
    status, _ = b.api.request("DELETE", "/slotmaps/1/1")
    assert status == 204
    b.bankd.wait_for_log(r"mapping bank 1 slot 1 <-> client 42:3 removed")


def test_client_gets_atr_and_relays_tpdus(bed, bankd_client):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    res = c.expect("connectClientRes")
    assert res.msg["result"] == "ok" and res.pdu["tag"] == 2342
    assert res.msg["identity"]["type"] == "remsimBankd"
    atr = c.expect("setAtrReq").msg
    assert atr == {"slot": {"clientId": 23, "slotNr": 0}, "atr": b.cards[0].atr.hex()}
    c.send_json({"version": 2, "tag": 0, "msg": {"setAtrRes": {"result": "ok"}}})

    assert relay(c, SELECT_MF) == bytes.fromhex("9f17")
    assert relay(c, SELECT_ICCID) == bytes.fromhex("9f17")
    assert relay(c, READ_ICCID) == bytes.fromhex("98940000000000000000") + b"\x90\x00"
    assert b.cards[0].apdus == [SELECT_MF, SELECT_ICCID, READ_ICCID]
    # the answer comes from the bank slot the request named, to the client that asked
    c.send_json(tpdu(SELECT_MF))
    f = c.expect("tpduCardToModem").msg
    assert f["fromBankSlot"] == {"bankId": 1, "slotNr": 0}
    assert f["toClientSlot"] == {"clientId": 23, "slotNr": 0}


def test_second_connection_for_a_client_slot_is_refused(bed, bankd_client):
    b = bed()
    map_slot(b)
    first = bankd_client(b.bankd)
    assert first.expect("connectClientRes").msg["result"] == "ok"
    second = bankd_client(b.bankd)
    assert second.expect("connectClientRes").msg["result"] == "identityInUse"
    assert second.closed_within(3)
    b.bankd.wait_for_log(r"connectClientReq refused \(identityInUse\): client 23:0 is "
                         r"already connected on worker \d")
    # the first one is probed, answers, and keeps its slot
    first.expect("PING")
    first.send(bytes.fromhex("0001fe01"))
    b.bankd.wait_for_log(r"answered the probe: keeps its client slot")
    assert relay(first, SELECT_MF) == bytes.fromhex("9f17")

    # a first connection that is dead (no PONG) loses the slot to the next attempt
    third = bankd_client(b.bankd)
    assert third.expect("connectClientRes").msg["result"] == "identityInUse"
    b.bankd.wait_for_log(r"no PONG to the probe", timeout=6)
    assert first.closed_within(3)
    fourth = bankd_client(b.bankd)
    assert fourth.expect("connectClientRes").msg["result"] == "ok"
    assert relay(fourth, SELECT_MF) == bytes.fromhex("9f17")


@pytest.mark.parametrize("length", [4, 261])
def test_tpdu_of_bad_length_is_refused_with_an_error(bed, bankd_client, length):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    data = (SELECT_MF + bytes(300))[:length]
    c.send_json(tpdu(data))
    err = c.expect("errorInd").msg
    assert err["sender"] == "remsimBankd"
    assert "%d bytes" % length in err["errorString"]
    b.bankd.wait_for_log(r"TPDU refused: %d bytes \(a T=0 TPDU has 5\.\.260\)" % length)
    assert b.cards[0].apdus == []  # never reached the card
    # the link stays usable
    assert relay(c, SELECT_MF) == bytes.fromhex("9f17")


def test_tpdu_for_another_slot_is_refused(bed, bankd_client):
    b = bed()
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    c.send_json(tpdu(SELECT_MF, bank=(1, 1)))
    assert "bank 1 slot 1" in c.expect("errorInd").msg["errorString"]
    assert relay(c, SELECT_MF) == bytes.fromhex("9f17")


def swap_nibbles(hexstr: str) -> str:
    return "".join(hexstr[i + 1] + hexstr[i] for i in range(0, len(hexstr), 2))


def test_relay_to_a_remsim_vsim_card(postgres, remsim_server, remsim_bankd, pcscd_factory,
                                     vsim_factory, server_keys, bankd_client):
    """The same path with the project's own virtual SIM (tools/remsim-vsim) in the reader."""
    from fixtures_bankd import Api
    server = remsim_server(postgres, "--key", server_keys.secret)
    pcscd = pcscd_factory(2)
    vsim = vsim_factory(pcscd, cards=1)
    bankd = remsim_bankd(server, pcscd=pcscd)
    bankd.wait_for_log(r"registered as bank 1")

    class B:
        api = Api(server.http_port, server_keys.token("admin", 1))
    map_slot(B)
    c = bankd_client(bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    atr = c.expect("setAtrReq").msg["atr"]
    assert atr.startswith("3b")
    assert relay(c, SELECT_MF)[0] in (0x9F, 0x61, 0x90)
    assert relay(c, SELECT_ICCID)[0] in (0x9F, 0x61, 0x90)
    iccid = relay(c, READ_ICCID)
    assert iccid[-2:] == b"\x90\x00"
    assert swap_nibbles(iccid[:-2].hex()).rstrip("f") == vsim.profiles[0]["iccid"]
