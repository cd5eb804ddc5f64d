"""The bench's kernel writeback setting (loadtest/stack.py KernelWriteback): set for the run where
it may be, what was there before put back after, and said in the header either way. A directory
stands in for /proc/sys/vm, which keeps one of the two settings as the kernel does."""
from __future__ import annotations

from pathlib import Path

from loadtest.stack import KernelWriteback

MB = 2 ** 20


class FakeVm(KernelWriteback):
    """As the kernel: writing one of bytes/ratio clears the other."""

    def _write(self, name: str, value: int) -> None:
        other = "dirty_background_ratio" if name == "dirty_background_bytes" else "dirty_background_bytes"
        super()._write(name, value)
        super()._write(other, 0)


def _vm(tmp_path: Path, nbytes: int, ratio: int) -> Path:
    (tmp_path / "dirty_background_bytes").write_text(f"{nbytes}\n")
    (tmp_path / "dirty_background_ratio").write_text(f"{ratio}\n")
    return tmp_path


def _read(vm: Path) -> tuple[int, int]:
    return (int((vm / "dirty_background_bytes").read_text()), int((vm / "dirty_background_ratio").read_text()))


def test_the_threshold_is_set_for_the_run_and_the_ratio_put_back_after(tmp_path):
    vm = _vm(tmp_path, 0, 10)
    w = FakeVm(32 * MB, vm).apply()
    assert _read(vm) == (32 * MB, 0)
    assert w.describe() == "32 MB (set for the run)"
    w.restore()
    assert _read(vm) == (0, 10)
    w.restore()   # twice is harmless
    assert _read(vm) == (0, 10)


def test_a_machine_set_in_bytes_gets_its_bytes_back(tmp_path):
    vm = _vm(tmp_path, 256 * MB, 0)
    w = FakeVm(32 * MB, vm).apply()
    assert _read(vm) == (32 * MB, 0)
    w.restore()
    assert _read(vm) == (256 * MB, 0)


def test_a_change_made_by_someone_else_meanwhile_stands(tmp_path):
    vm = _vm(tmp_path, 0, 10)
    w = FakeVm(32 * MB, vm).apply()
    (vm / "dirty_background_bytes").write_text(f"{64 * MB}\n")
    w.restore()
    assert _read(vm) == (64 * MB, 0)


def test_asked_to_leave_it_or_not_allowed_to_set_it_the_machine_s_is_said(tmp_path):
    vm = _vm(tmp_path, 0, 10)
    w = FakeVm(0, vm).apply()
    assert _read(vm) == (0, 10) and not w.applied
    assert w.describe() == "10 % of memory (the machine's; left as it is (asked))"

    class ReadOnly(KernelWriteback):
        def _write(self, name: str, value: int) -> None:
            raise PermissionError(name)

    r = ReadOnly(32 * MB, vm).apply()
    assert _read(vm) == (0, 10) and not r.applied
    assert r.describe() == "10 % of memory (the machine's; not ours to set (PermissionError))"
    r.restore()
    assert _read(vm) == (0, 10)
    assert KernelWriteback(32 * MB, tmp_path / "absent").apply().describe().startswith("unknown: unreadable")
