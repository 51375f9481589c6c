"""remsim-bankd's reader map: osmo-remsim's bankd_pcsc_slots.csv with reader name regexes
(from -M or the working directory), the automatic name order, and CSV errors."""
import re

from fixtures_bankd import READ_ICCID, SELECT_ICCID, map_slot, relay


def read_iccid(peer, **slots):
    relay(peer, SELECT_ICCID, **slots)
    return relay(peer, READ_ICCID, **slots)[:-2].hex()


def test_csv_regex_picks_the_reader(bed, bankd_client, tmp_path):
    csv = tmp_path / "bankd_pcsc_slots.csv"
    # slot 0 is the second reader, slot 1 the first; a row for another bank is unused
    csv.write_text('# bank, slot, reader name regex\n'
                   '"1","0","^remsim-vpcd0 00 01$"\n'
                   '1, 1, "vpcd[0-9] 00 0[0]"\n'
                   '"2","0","anything"\n')
    b = bed("-M", csv, cards=(0, 1))
    b.bankd.wait_for_log(r"reader map .*bankd_pcsc_slots.csv: 3 rows")
    map_slot(b, 0, 23, 0)
    map_slot(b, 1, 24, 0)
    c23 = bankd_client(b.bankd)
    assert c23.expect("connectClientRes").msg["result"] == "ok"
    assert read_iccid(c23) == "98940000000000000001"
    b.bankd.wait_for_log(r'CONNECTED_CLIENT_MAPPED_CARD \(reader "remsim-vpcd0 00 01"')
    c24 = bankd_client(b.bankd, bytes.fromhex(
        "003fee07303c800102810100a234a23230280a0100160d72656d73696d2d616e63686f72800d72656d73"
        "696d2d636c69656e748105312e302e303006020118020100"))  # the same, client 24:0
    assert c24.expect("connectClientRes").msg["result"] == "ok"
    assert read_iccid(c24, client=(24, 0), bank=(1, 1)) == "98940000000000000000"


def test_default_csv_from_working_directory_names_no_reader(bed, bankd_client, tmp_path):
    # osmo-remsim-bankd reads ./bankd_pcsc_slots.csv; so do we when -M is not given
    (tmp_path / "bankd_pcsc_slots.csv").write_text('"1","0","^no such reader$"\n')
    b = bed(cwd=tmp_path)
    b.bankd.wait_for_log(r"reader map bankd_pcsc_slots.csv: 1 row")
    map_slot(b)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "cardNotPresent"
    assert c.closed_within(3)
    b.bankd.wait_for_log(r"refused \(cardNotPresent\): no reader for bank 1 slot 0 \(regex "
                         r"/\^no such reader\$/ \(line 1\), 2 readers\)")


def test_auto_mode_uses_name_order(bed, bankd_client):
    b = bed("-M", "auto", cards=(0, 1))
    b.bankd.wait_for_log(r"reader map: automatic")
    map_slot(b, 1, 23, 0)
    c = bankd_client(b.bankd)
    assert c.expect("connectClientRes").msg["result"] == "ok"
    assert read_iccid(c, bank=(1, 1)) == "98940000000000000001"  # slot 1 = "remsim-vpcd0 00 01"


def test_bad_csv_is_rejected_with_its_line(remsim_bankd, tmp_path):
    cases = [('"1","0","ok"\n"1","1","bad [regex"\n', r"bad.csv:2: bad regex \"bad \[regex\""),
             ('"1","0"\n', r"bad.csv:1: fewer than 3 fields"),
             ('"1","x","r"\n', r"bad.csv:1: bank id and slot must be numbers 0..1023"),
             ('"1","0","a"\n"1","0","b"\n', r"bad.csv:2: bank 1 slot 0 is already mapped on "
                                            r"line 1"),
             ('"1","0","unterminated\n', r"bad.csv:1: unterminated quote"),
             ('\n# nothing\n', r"bad.csv: no rows")]
    for i, (text, want) in enumerate(cases):
        path = tmp_path / "bad.csv"
        path.write_text(text)
        p = remsim_bankd(None, "-M", path, name="bankd%d" % i, ready=None)
        assert p.wait(10) == 1
        assert re.search(want, p.log_text()), (text, p.log_text())
