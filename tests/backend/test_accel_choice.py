"""The server says which accelerator QEMU will use and why (issue 9 item 23)."""
from __future__ import annotations

import logging
import os

from backend.qemu import QemuDriver
from backend.qemu_cmdline import explain_accel


def test_each_reason(tmp_path):
    sysmod, dev = tmp_path / "module", tmp_path / "kvm"
    sysmod.mkdir()
    accel, why = explain_accel(str(sysmod), str(dev))
    assert accel == "tcg" and "no hardware KVM module" in why
    dev.write_text("")
    accel, why = explain_accel(str(sysmod), str(dev))
    assert accel == "tcg" and "cannot run stock guests" in why          # kvm_pvm-style hosts
    (sysmod / "kvm_amd").mkdir()
    assert explain_accel(str(sysmod), str(dev)) == ("kvm", f"kvm_amd is loaded and {dev} is usable")
    accel, why = explain_accel(str(sysmod), str(tmp_path / "none"))
    assert accel == "tcg" and "does not exist" in why
    if os.geteuid() != 0:                                                 # root may open anything
        dev.chmod(0)
        accel, why = explain_accel(str(sysmod), str(dev))
        assert accel == "tcg" and "kvm group" in why


def test_the_driver_logs_its_choice(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="backend.qemu")
    driver = QemuDriver(str(tmp_path / "vms"))
    lines = [r.getMessage() for r in caplog.records if r.name == "backend.qemu"]
    assert f"QEMU accelerator: {driver.accel.upper()} (" in lines[0]
    caplog.clear()
    QemuDriver(str(tmp_path / "vms2"), accel="tcg")
    assert [r.getMessage() for r in caplog.records] == ["QEMU accelerator: TCG (as configured)"]
