"""Data-parallel training (torch DDP, gloo, two CPU processes) gives the model that
one process gives on the same data.

Two processes with 4 structures per step each are one process with 8 per step:
metatrain's loss is a mean over structures (and force components), and DDP
averages the two half-batch gradients, which is the mean over the whole batch when
both halves have the same number of structures and atoms (here 4 structures of 8
atoms each). With the whole training set in one step per epoch, the order in which
the samplers shuffle does not matter. The random rotations are turned off: each
process draws its own.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from optional_imports import require

require("metatrain.utils.architectures", "train")

from metatrain_helpers import emt_frames, write_frames  # noqa: E402

TESTS = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(data, output, batch_size, port, rank=None):
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
        "from metatrain_helpers import train_in_process; "
        f"train_in_process({data!r}, {output!r}, {batch_size}, {port})"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in [n for n in env if n.startswith("SLURM_")]:
        del env[name]
    if rank is not None:
        env.update(
            SLURM_JOB_ID="1",
            SLURM_PROCID=str(rank),
            SLURM_LOCALID=str(rank),
            SLURM_NTASKS="2",
            SLURM_JOB_NODELIST="localhost",
        )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_train_the_model_of_one(tmp_path):
    data = write_frames(tmp_path / "data.xyz", emt_frames(8, seed=11))
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    port = _free_port()
    processes = [
        _start(data, one, 8, port + 1),
        _start(data, two, 4, port, rank=0),
        _start(data, two, 4, port, rank=1),
    ]
    logs = [p.communicate(timeout=600)[0] for p in processes]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    assert "training on 2 processes" in logs[1]
    assert "training on 2 processes" not in logs[0]

    single = torch.load(one, weights_only=False)
    distributed = torch.load(two, weights_only=False)
    for name, value in single["initial"].items():
        torch.testing.assert_close(distributed["initial"][name], value, msg=name)
    # every weight moved by much more than the tolerance below
    for name, value in single["trained"].items():
        if value.numel() > 0 and name.split(".")[-1] not in ("baseline", "scale"):
            if value.is_floating_point():
                assert (value - single["initial"][name]).abs().max() > 1e-3, name

    # float64: the two runs differ only in the order of sums (DDP adds the
    # gradients of two half batches); measured: 3e-13 at most (an attention bias
    # with a nearly zero gradient, whose round-off Adam's normalisation magnifies)
    trained = distributed["trained"]
    assert trained.keys() == single["trained"].keys()
    for name, value in single["trained"].items():
        torch.testing.assert_close(trained[name], value, rtol=0, atol=1e-9, msg=name)
