"""Summary and plot of a short NVE run, shared by the MD examples of this folder."""

import matplotlib.pyplot as plt
import numpy as np


def show_nve(
    time: np.ndarray,
    conserved: np.ndarray,
    potential: np.ndarray,
    temperature: np.ndarray,
    n_atoms: int,
    name: str,
) -> None:
    """Print the energy drift and plot energies and temperature against time.

    :param time: ``[steps]`` in fs
    :param conserved: ``[steps]`` total (or conserved) energy, eV
    :param potential: ``[steps]`` potential energy, eV
    :param temperature: ``[steps]`` in K
    :param name: what ``conserved`` is called ("total energy", ...)
    """
    drift = (conserved[-1] - conserved[0]) / abs(conserved[0])
    print(f"{len(time) - 1} steps of {time[1] - time[0]:.1f} fs")
    print(f"potential energy changed by {np.ptp(potential) / n_atoms:.2e} eV/atom")
    print(f"{name}: spread {np.ptp(conserved) / n_atoms:.2e} eV/atom")
    print(f"relative drift of the {name} (end - start) / |start|: {drift:.1e}")

    label = name.split()[0]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(6, 7))
    top.plot(time, (conserved - conserved[0]) / n_atoms * 1000, label=label)
    top.plot(time, (potential - potential[0]) / n_atoms * 1000, label="potential")
    top.set_ylabel("energy change\n(meV/atom)")
    top.legend()
    middle.plot(time, (conserved - conserved[0]) / n_atoms * 1e6, color="C0")
    middle.set_ylabel(f"{label} energy\nchange (µeV/atom)")
    bottom.plot(time, temperature)
    bottom.set_xlabel("time (fs)")
    bottom.set_ylabel("temperature (K)")
    fig.tight_layout()
    plt.show()
