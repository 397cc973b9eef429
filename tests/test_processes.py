"""Two processes under ``accelerate launch`` give the numbers of one process: vn.sweep,
vn.profile.attention_profile, vn.cls_summary and vn.evaluate.deletion_study on a Fashion-MNIST ``datasets.Dataset``
with the zoo's fmnist-vit-p4 (tests/run_processes.py, run once plainly and once launched; both at
the same time, so the test takes about one run's time on two cores).

``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate's multi-CPU launch goes
through mpirun); ``--multi_gpu`` on a machine without a GPU starts two through torchrun, and
vitnotes then joins them over gloo on the CPU (``ACCELERATE_USE_CPU`` makes that explicit)."""

import importlib.util
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("run_processes.py")
N = 24  # images (the script's default)
TIMEOUT = 300  # s; about 40 s on the 2-core CI machine

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None, reason="needs accelerate (pip install accelerate)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str]) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "VITNOTES_QUIET": "1",
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _finish(proc: subprocess.Popen, what: str) -> None:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the processes it started
        out, _ = proc.communicate()
        pytest.fail(f"{what} ran over {TIMEOUT} s; its output ends:\n{out[-3000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode}); its output ends:\n{out[-3000:]}")


def _close(a, b, what: str) -> None:
    assert list(a.columns) == list(b.columns), what
    for c in a.columns:
        if a[c].dtype.kind == "f":
            np.testing.assert_allclose(a[c], b[c], rtol=1e-5, atol=1e-7, err_msg=f"{what}: {c}")
        else:
            assert a[c].tolist() == b[c].tolist(), f"{what}: {c}"


def test_two_processes_give_the_numbers_of_one(tmp_path):
    one = _start([sys.executable, str(SCRIPT), str(tmp_path / "one")])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    two = _start([*launch, "--main_process_port", str(_free_port()), str(SCRIPT), str(tmp_path / "two")])
    _finish(one, "the one-process run")
    _finish(two, "accelerate launch with two processes")
    ref = pickle.loads((tmp_path / "one.0.pkl").read_bytes())
    ranks = [pickle.loads((tmp_path / f"two.{r}.pkl").read_bytes()) for r in (0, 1)]
    assert ref["world"] == 1 and [r["world"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    for got in ranks:  # every process returns the gathered tables
        for name in ("sweep", "profile", "cls"):
            _close(got[name], ref[name], name)
            assert got[name].attrs["processes"] == 2 and ref[name].attrs["processes"] == 1
        for table, want in zip(got["deletion"], ref["deletion"]):
            _close(table, want, "deletion")
            assert table.attrs["images"] == N and table.attrs["processes"] == 2
        assert got["sweep"].attrs["n"] == N and got["profile"].attrs["images"] == N  # each image counted once
    # and the intact loss is the model's cross-entropy on those images, computed here directly
    import vitnotes as vn

    vit = vn.load("fmnist-vit-p4")
    images, labels = vn.data.fashion_mnist_arrays("test")
    logits = vit.predict(vit.preprocess(images[:N])).double()
    ce = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels[:N])).item()
    assert ranks[0]["sweep"].attrs["baseline"] == pytest.approx(ce, rel=1e-5)
