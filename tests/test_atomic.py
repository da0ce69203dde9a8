"""tissue_inn.atomic: stale temporaries of killed writers are cleaned, groups of outputs appear all or none,
an input is never an output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tissue_inn import atomic
from tissue_inn.errors import OutputExistsError, TissueInnError


def test_temp_name_carries_host_and_pid(tmp_path):
    with atomic.atomic_path(tmp_path / "maps.h5") as tmp:
        assert tmp.name.startswith(f".maps.h5.{atomic._HOST}-{os.getpid()}.") and tmp.name.endswith(".part")
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["maps.h5"]


def test_kill_9_litter_is_removed_by_the_next_write(tmp_path):
    """A writer killed mid-write leaves its temporary; the next write of the same target removes it."""
    target = tmp_path / "maps.h5"
    code = (
        "import sys, time\nfrom tissue_inn.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half' * 1000)\n    print(tmp, flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    litter = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert os.path.exists(litter) and not target.exists()
    unrelated = tmp_path / ".other.h5.deadbeef-1.abc.part"
    unrelated.write_bytes(b"not ours to judge")
    with atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"full")
    assert not os.path.exists(litter) and target.read_bytes() == b"full"
    assert unrelated.exists()  # another target's temporary is left alone


def test_live_and_young_temporaries_are_kept(tmp_path):
    mine = tmp_path / f".x.h5.{atomic._HOST}-{os.getpid()}.abc.part"
    other_host = tmp_path / ".x.h5.00000000-1.abc.part"
    legacy = tmp_path / ".x.h5.ab12cd34.part"
    for p in (mine, other_host, legacy):
        p.write_bytes(b"x")
    assert atomic.clean_stale_temporaries(tmp_path, "x.h5") == []
    later = time.time() + atomic.STALE_SECONDS + 10
    removed = {p.name for p in atomic.clean_stale_temporaries(tmp_path, "x.h5", now=later)}
    assert removed == {mine.name, other_host.name, legacy.name}


def test_dead_pid_is_stale_at_once(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f".x.h5.{atomic._HOST}-{proc.pid}.abc.part"
    dead.write_bytes(b"x")
    assert atomic.clean_stale_temporaries(tmp_path, "x.h5") == [dead]


def test_group_writes_all_or_nothing(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    a.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_group([a, b], force=True) as (ta, tb):
        ta.write_text("new a")
        raise RuntimeError("writer failed half way")
    assert a.read_text() == "old" and not b.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.txt"]
    with atomic.atomic_group([a, b], force=True) as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert a.read_text() == "new a" and b.read_text() == "new b"
    with pytest.raises(OutputExistsError, match="--force"), atomic.atomic_group([tmp_path / "c", a]):
        pass
    assert not (tmp_path / "c").exists()


def test_group_rename_failure_restores_the_old_files(tmp_path, monkeypatch):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    b.write_text("old b")
    real_replace = os.replace
    failed = []

    def failing(src, dst):
        if str(dst) == str(b) and ".part" in str(src) and not failed:
            failed.append(src)
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(TissueInnError, match="nothing was written"), atomic.atomic_group([a, b], force=True) as ts:
        for t in ts:
            t.write_text("new")
    assert failed and a.read_text() == "old a" and b.read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_unwritable_targets_fail_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TissueInnError, match="not a folder"):
        atomic.check_writable(tmp_path / "afile" / "maps.tif")
    with pytest.raises(TissueInnError, match="is a folder"):
        atomic.check_writable(tmp_path, force=True)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(TissueInnError, match="permission denied"):
                atomic.check_writable(ro / "x.png")
        finally:
            ro.chmod(0o700)


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_an_input_is_never_an_output(tmp_path, spelling):
    cube = tmp_path / "cube.h5"
    cube.write_bytes(b"data")
    (tmp_path / "sub").mkdir()
    out = {
        "same": cube,
        "dotdot": tmp_path / "sub" / ".." / "cube.h5",
        "symlink": tmp_path / "link.h5",
        "hardlink": tmp_path / "hard.h5",
    }[spelling]
    if spelling == "symlink":
        os.symlink(cube, out)
    if spelling == "hardlink":
        os.link(cube, out)
    with pytest.raises(TissueInnError, match="never overwritten"):
        atomic.check_not_inputs({"-o": out}, {"the image": cube})
    atomic.check_not_inputs({"-o": tmp_path / "maps.h5"}, {"the image": cube, "--white": None})


def test_a_replaced_folder_must_not_hold_an_input(tmp_path):
    data = tmp_path / "models" / "x" / "train.h5"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"d")
    with pytest.raises(TissueInnError, match="delete"):
        atomic.check_not_inputs({}, {"--data": data}, replaced_folders=[tmp_path / "models" / "x"])
    atomic.check_not_inputs({}, {"--data": data}, replaced_folders=[tmp_path / "models" / "y"])


def test_scratch_dirs_of_killed_processes_are_removed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f"tissue_inn_maps_{atomic._HOST}-{proc.pid}.abc123"
    dead.mkdir()
    (dead / "maps.h5").write_bytes(b"\0" * 100)
    live = tmp_path / f"tissue_inn_maps_{atomic._HOST}-{os.getppid()}.abc123"
    live.mkdir()
    other = tmp_path / "tissue_inn_maps_unrelated"
    other.mkdir()
    new = atomic.make_scratch_dir("tissue_inn_maps_", tmp_path)
    assert new.is_dir() and new.name.startswith(f"tissue_inn_maps_{atomic._HOST}-{os.getpid()}.")
    assert not dead.exists() and live.exists() and other.exists()
