"""Time per MD step in ASE and i-PI (direct and socket) against the bare model.

For fcc Cu boxes of ~256 and ~1,000 atoms, measures in one run:

- ``model``: the exported (TorchScript) model's forward + backward (energy and
  forces), neighbour lists computed once beforehand: the cost no engine can avoid;
- ``model+NL``: the same plus building the system and vesin neighbour lists;
- ``ASE``: one velocity-Verlet step with ``metatomic_ase.MetatomicCalculator``;
- ``i-PI direct`` / ``i-PI socket``: one NVE step of i-PI with the metatomic PES in
  process (``ffdirect``) or in ``i-pi-driver-py`` over a UNIX socket. i-PI times
  each step itself (wall-clock; the fastest step after warm-up is kept); its CPU
  time (server + driver) is the difference of two run lengths (noisy when a step
  is cheap compared with the model's warm-up).

Usage: ``OMP_NUM_THREADS=1 python bench/engine_overhead.py [--sizes 256 1000]
[--steps 10] [--model model.pt] [--no-ipi] [--hypers '{"d_pet": 32}']``. Without
``--model`` a PET with the default hyper-parameters (or ``--hypers``; float32,
untrained) is exported to a temporary folder. Times are the fastest of repeated
measurements (robust to other load on the machine).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import ase
import ase.build
import ase.io
import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from metatensor.torch import TensorBlock
from metatomic.torch import (
    ModelEvaluationOptions,
    ModelOutput,
    System,
    load_atomistic_model,
    register_autograd_neighbors,
    systems_to_torch,
)
from metatomic_ase import MetatomicCalculator

from pet_mta.neighbors import add_neighbor_lists, requested_neighbor_lists

BIN = Path(sys.executable).parent
WARMUP = 3


def copper(n_atoms: int) -> ase.Atoms:
    """A rattled fcc Cu box with about ``n_atoms`` atoms (4 per cubic cell)."""
    cells = max(1, round((n_atoms / 4) ** (1 / 3)))
    repeat = [cells, cells, cells]
    while 4 * np.prod(repeat) < n_atoms:  # e.g. 1,000 -> 5 x 5 x 10
        repeat[np.argmin(repeat)] += 1
    k = 0
    while 4 * np.prod(repeat) > n_atoms * 1.05 and k < 3:
        repeat[k] -= 1
        repeat[(k + 1) % 3] += 1
        k += 1
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=0)
    return atoms


Timing = Tuple[float, float]  # (wall-clock, CPU) seconds


def time_calls(function, repeats: int) -> Timing:
    """Fastest wall and CPU time (s) of ``repeats`` calls, after ``WARMUP`` calls.

    The minimum, not the mean: on a shared machine other processes only ever
    make a call slower. CPU time (all threads of this process) is less sensitive
    to other load than wall-clock time.
    """
    for _ in range(WARMUP):
        function()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def children_cpu() -> float:
    """CPU seconds used so far by finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_model(path: str, atoms: ase.Atoms, repeats: int) -> Dict[str, Timing]:
    model = load_atomistic_model(path)
    dtype = getattr(torch, model.capabilities().dtype)
    options = ModelEvaluationOptions(
        length_unit="angstrom", outputs={"energy": ModelOutput(sample_kind="system")}
    )

    def make_system():
        system = systems_to_torch(atoms, dtype=dtype, positions_requires_grad=True)
        return add_neighbor_lists([system], model)[0]

    # neighbour lists computed once, re-attached to fresh positions every call
    reference = add_neighbor_lists([systems_to_torch(atoms, dtype=dtype)], model)[0]
    lists = [
        (request, reference.get_neighbor_list(request))
        for request in requested_neighbor_lists(model)
    ]

    def fixed():
        positions = reference.positions.clone().requires_grad_(True)
        system = System(reference.types, positions, reference.cell, reference.pbc)
        for request, computed in lists:
            neighbors = TensorBlock(
                computed.values.detach(),
                computed.samples,
                computed.components,
                computed.properties,
            )
            register_autograd_neighbors(system, neighbors)
            system.add_neighbor_list(request, neighbors)
        return system

    def forward_backward(system):
        energy = model([system], options, check_consistency=False)["energy"]
        energy = energy.block().values.sum()
        (gradient,) = torch.autograd.grad(energy, system.positions)
        return gradient

    return {
        "model": time_calls(lambda: forward_backward(fixed()), repeats),
        "model+NL": time_calls(lambda: forward_backward(make_system()), repeats),
    }


def ase_step(path: str, atoms: ase.Atoms, repeats: int) -> Timing:
    atoms = atoms.copy()
    atoms.calc = MetatomicCalculator(path, device="cpu")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    return time_calls(lambda: dynamics.run(1), repeats)


FORCEFIELDS = {
    "direct": """<ffdirect name='pet' pbc='false'>
    <pes>metatomic</pes>
    <parameters>{{template: init.xyz, model: {model}, device: cpu}}</parameters>
  </ffdirect>""",
    "socket": """<ffsocket name='pet' mode='unix' pbc='false'>
    <address>{address}</address><latency>1e-4</latency>
  </ffsocket>""",
}

IPI_INPUT = """<simulation verbosity='high' safe_stride='100000'>
  <output prefix='bench'>
    <properties stride='100000' filename='out'> [ step, conserved ] </properties>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>1</seed></prng>
  {forcefield}
  <system>
    <initialize nbeads='1'>
      <file mode='ase'>init.xyz</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces><force forcefield='pet'/></forces>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nve'><timestep units='femtosecond'>1.0</timestep></dynamics>
    </motion>
  </system>
</simulation>
"""


def ipi_run(
    mode: str, path: str, atoms: ase.Atoms, steps: int, workdir: Path
) -> Tuple[float, List[float]]:
    """CPU seconds (i-PI + driver) of a whole run of ``steps`` steps, and the
    wall-clock seconds of every step as i-PI reports them (verbosity high)."""
    address = f"bench-{uuid.uuid4().hex[:8]}"
    run_dir = workdir / f"{mode}-{steps}-{address}"
    run_dir.mkdir()
    ase.io.write(run_dir / "init.xyz", atoms, format="extxyz")
    forcefield = FORCEFIELDS[mode].format(model=path, address=address)
    xml = IPI_INPUT.format(steps=steps, forcefield=forcefield)
    (run_dir / "input.xml").write_text(xml)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    start_cpu = children_cpu()
    log = open(run_dir / "log", "w")
    server = subprocess.Popen(
        [str(BIN / "i-pi"), "input.xml"],
        cwd=run_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    if mode == "socket":
        socket = Path(f"/tmp/ipi_{address}")  # i-PI's default sockets_prefix
        while not socket.exists():
            if server.poll() is not None:
                raise RuntimeError("i-PI stopped before opening its socket")
            time.sleep(0.05)
        driver = [str(BIN / "i-pi-driver-py"), "-u", "-a", address, "-m", "metatomic"]
        driver += ["-o", f"template=init.xyz,model={path},device=cpu"]
        subprocess.run(driver, cwd=run_dir, check=True, capture_output=True, env=env)
    if server.wait() != 0:
        raise RuntimeError(f"i-PI failed in {run_dir}")
    log.close()
    step_times = [
        float(line.split("t/step:")[1])
        for line in (run_dir / "log").read_text().splitlines()
        if "Average timings at MD step" in line
    ]
    return children_cpu() - start_cpu, step_times


def ipi_step(mode, path, atoms, steps, workdir) -> Timing:
    """Seconds per step: fastest step after ``WARMUP`` (wall), and the CPU time
    difference of two run lengths (which removes start-up and warm-up)."""
    short_cpu, _ = ipi_run(mode, path, atoms, WARMUP, workdir)
    long_cpu, step_times = ipi_run(mode, path, atoms, WARMUP + steps, workdir)
    if len(step_times) < WARMUP + steps:
        raise RuntimeError("could not read i-PI's step timings")
    return min(step_times[WARMUP:]), (long_cpu - short_cpu) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1000])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", default=None, help="exported model (.pt)")
    parser.add_argument("--no-ipi", action="store_true", help="skip the i-PI runs")
    parser.add_argument(
        "--hypers",
        default="{}",
        help="PET hyper-parameters of the generated model, as JSON: '{\"d_pet\": 32}'",
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = args.model
        if path is None:
            from pet_mta import PET

            torch.manual_seed(0)
            path = str(workdir / "model.pt")
            hypers = dict({"cutoff": 4.5}, **json.loads(args.hypers))
            PET(atomic_types=[29], **hypers).export().save(path)
            print(f"untrained PET, hypers {hypers}")
        path = str(Path(path).resolve())

        rows: List[Dict[str, Any]] = []
        for size in args.sizes:
            atoms = copper(size)
            row = {"atoms": len(atoms)}
            row.update(bare_model(path, atoms, args.steps))
            row["ASE"] = ase_step(path, atoms, args.steps)
            if not args.no_ipi:
                for mode in ("direct", "socket"):
                    row[f"i-PI {mode}"] = ipi_step(
                        mode, path, atoms, args.steps, workdir
                    )
            rows.append(row)
            print_table(rows[-1:], header=len(rows) == 1)


def print_table(rows: List[Dict[str, Any]], header: bool) -> None:
    """Milliseconds per step and the ratio to the bare model, wall and CPU time."""
    names = [name for name in rows[0] if name != "atoms"]
    if header:
        print(f"{'atoms':>6} {'time':>5} " + " ".join(f"{n:>20}" for n in names))
    for row in rows:
        for k, kind in enumerate(("wall", "CPU")):
            cells = [
                f"{1000 * row[n][k]:9.1f} ms ({row[n][k] / row['model'][k]:4.2f}x)"
                for n in names
            ]
            print(f"{row['atoms']:>6} {kind:>5} " + " ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
