"""scripts/demo end to end: the whole system on virtual SIMs (PostgreSQL, remsim-server,
two remsim-bankds on a pcscd with remsim-vsim cards, four remsim-clients as the cards of a
second pcscd). The demo's own modem loop must read, through every modem-side reader, the
ICCID and IMSI of exactly the bank card the demo mapped to it; Ctrl-C must stop it all."""
import json
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import REPO_ROOT, free_port, listening_ports  # noqa: F401

LINE = re.compile(r"modem (\d) \(client \d:0 <- bank (\d) slot (\d)\): ICCID (\d+) IMSI (\d+); "
                  r"(\d+) reads ok")


def test_demo_relays_every_modem_to_its_bank_card(build_dir):
    argv = ["/usr/bin/python3", str(REPO_ROOT / "scripts" / "demo.py"), "--build",
            str(build_dir), "--http-port", str(free_port()), "--rspro-port", str(free_port())]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen, out, run = {}, [], None
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            out.append(line)
            if m := re.search(r"logs in (\S+)", line):
                run = Path(m.group(1))
            if m := LINE.search(line):
                seen[int(m.group(1))] = m.groups()
            if len(seen) == 4 and all(int(g[5]) >= 3 for g in seen.values()):
                break
            assert time.monotonic() < deadline, "".join(out)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    out.append(rest)
    text = "".join(out)
    assert proc.returncode == 0, text
    assert "admin token     rst1." in text
    assert len(seen) == 4, text
    cards = json.loads((run / "cards.json").read_text())["cards"]
    for modem, (_, bank, slot, iccid, imsi, reads) in seen.items():
        card = cards[(int(bank) - 1) * 4 + int(slot)]
        assert (iccid, imsi) == (card["iccid"], card["imsi"]), (modem, text)
    assert "demo: stopped" in text
    assert "Traceback" not in text and "Exception ignored" not in text, text
    # the dashboard is served and the demo says so
    assert re.search(r"dashboard       http://127\.0\.0\.1:\d+/   \(log in", text), text
    # a modem counts failures only once it has had its card
    assert all(re.search(rf"modem {m} .*; \d+ reads ok, 0 failed", text) for m in seen), text
    # every process is gone: nothing listens in the demo's process group any more
    assert not listening_ports(proc.pid)
