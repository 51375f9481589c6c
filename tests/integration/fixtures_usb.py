"""Fixtures for the simtrace2 front end: remsim-client run inside tests/usb/fake_cardem, a
simulated SIMtrace2 in card-emulation mode (umockdev) that plays firmware and modem. The fake
takes one command per stdin line and reports one event per stdout line (docs/client.md,
"Testing the simtrace2 front end"); the client's log and the fake's own go to one file.

usb_bed is the full system: PostgreSQL, remsim-server (tokens required), a private pcscd with
two remsim-vsim cards whose ATRs differ, remsim-bankd with two slots."""
import json
import os
import subprocess
import time

import pytest
from conftest import _attach_log, _unique_log_name, stop_checking_sanitizers
from fixtures_client import ClientProc

# the second card gets its own ATR so that a moved mapping shows on the modem side
SECOND_ATR = "3b9f96801fc78031a073be21136743200718000001a6"


class FakeCardem(ClientProc):
    """fake_cardem [fake_args] -- remsim-client args. Lines from the fake: ready, out CLASS
    TYPE PAYLOAD, atr HEX ..., rsp DATA RAW, error ..., unplugged, plugged, stats, exit N."""

    def __init__(self, name, argv, log_path, env=None):
        super().__init__(name, argv, log_path, env=env)
        self.seen = []
        first = self.next()
        assert first.startswith("ready pid "), first
        self.client_pid = int(first.split()[2])

    def next(self, timeout=10.0) -> str:
        line = self.read_line(timeout)
        assert line is not None, f"{self.name}: fake_cardem ended; log:\n" + \
            self.log_text()[-3000:]
        self.seen.append(line)
        return line

    def cmd(self, line: str):
        self.send_line(line)

    def expect(self, prefix: str, timeout=10.0) -> str:
        """The next line starting with prefix; lines before it are kept in self.seen."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no '{prefix}' within {timeout} s; saw "
                                     f"{self.seen[-20:]}")
            line = self.next(left)
            if line.startswith(prefix):
                return line

    def outs(self, start=0):
        """(class, type, payload hex) of every host message seen since index start."""
        got = []
        for line in self.seen[start:]:
            if line.startswith("out "):
                _, c, t, *p = line.split(" ")
                got.append((int(c), int(t), p[0] if p else ""))
        return got

    def errors(self):
        return [line for line in self.seen if line.startswith("error")]

    def apdu(self, tpdu_hex: str, timeout=10.0) -> str:
        """The modem sends one TPDU; returns what it got back without the ACK byte."""
        self.cmd("apdu " + tpdu_hex)
        return self.expect("rsp ", timeout).split(" ")[1]

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.client_pid}/fd"))

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.client_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def usb_client(request, tmp_path, bin_path):
    """usb_client(*client_args, fake_args=(), name="usb", env=None, frontend=True, wrap=())
    -> FakeCardem running [wrap...] remsim-client -f simtrace2 inside the simulated device. Fails when fake_cardem was not
    built (umockdev-1.0 missing: run scripts/install-deps)."""
    fake = bin_path("tests/usb/fake_cardem")
    if not os.path.exists(fake):
        pytest.fail(f"{fake} missing: umockdev-1.0 was not found at build time "
                    "(scripts/install-deps installs it)")
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    procs = []

    def start(*args, fake_args=(), name="usb", env=None, frontend=True, wrap=()):
        name = _unique_log_name(request.node, name)
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        argv = [fake, *fake_args, "--", *wrap, bin_path("agent-client/remsim-client"),
                *(["-f", "simtrace2"] if frontend else []), *map(str, args)]
        if "-l" not in args and "--log-level" not in args and frontend:
            argv += ["--log-level", "info"]
        p = FakeCardem(name, argv, log_dir / f"{name}.log", env=full_env)
        procs.append(p)
        _attach_log(request.node, name, p.log_path)
        return p

    yield start
    stop_checking_sanitizers(procs)


@pytest.fixture
def usb_bed(postgres, remsim_server, remsim_bankd, pcscd_factory, vsim_factory, bin_path,
            tmp_path):
    """Server (tokens required), pcscd with 2 remsim-vsim cards (the second with
    SECOND_ATR), bankd 1 with 2 slots. No mapping and no client yet."""
    from test_relay import Bed, wait_for
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", str(tmp_path)], check=True, capture_output=True,
                   timeout=30)
    key = tmp_path / "server.key"
    server = remsim_server(postgres, "--key", key, auth="required")
    pcscd = pcscd_factory(2)
    gen = subprocess.run([str(bin_path("tools/remsim-vsim")), "--gen-profiles", "2"],
                         capture_output=True, text=True, timeout=30, check=True)
    profiles = json.loads(gen.stdout)
    profiles["cards"][1]["atr"] = SECOND_ATR
    path = tmp_path / "usb-profiles.json"
    path.write_text(json.dumps(profiles))
    vsim = vsim_factory(pcscd, profiles=path)
    bed = Bed(ctl, key, server, None, vsim, None, None)
    bed.bankd = remsim_bankd(server, "-t", bed.token_file(tmp_path, "bankd", 1), pcscd=pcscd,
                             slots=2, client_auth="required", name="bankd")
    wait_for(lambda: bed.bank_slot(1), lambda s: s is not None)
    return bed
