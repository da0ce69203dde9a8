import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_ddp_replicas_hold_identical_weights(fake_dataset, tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
         str(fake_dataset), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a = json.loads((tmp_path / "rank0.json").read_text())
    b = json.loads((tmp_path / "rank1.json").read_text())
    assert a["world"] == b["world"] == 2
    assert a["sha"] == b["sha"]
