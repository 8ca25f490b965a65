"""What a PET model predicts: energy, direct forces and stress, and any extra scalar,
Cartesian-vector or spherical-tensor target."""

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from metatomic.torch import ModelCapabilities, ModelOutput

KINDS = ("scalar", "cartesian", "stress", "spherical", "atomic_basis")

#: metatomic standard outputs predicted directly, and the kind they need
DIRECT_OUTPUTS = {
    "non_conservative_forces": "cartesian",
    "non_conservative_force": "cartesian",
    "non_conservative_stress": "stress",
}

#: name of the properties dimension metatomic expects for standard outputs
STANDARD_PROPERTIES = {
    "energy": "energy",
    "non_conservative_forces": "non_conservative_force",
    "non_conservative_force": "non_conservative_force",
    "non_conservative_stress": "non_conservative_stress",
}


@dataclass(frozen=True)
class Target:
    """One output of the model.

    Every target is predicted as a sum of per-atom contributions; the per-system
    value is the sum over atoms.

    :param name: output name: a metatomic standard output (``"energy"``, ...) or a
        namespaced one (``"mtt::dipole"``, ...)
    :param kind: ``"scalar"`` (``n_properties`` numbers), ``"cartesian"`` (a 3-vector
        per property, component ``xyz``) or ``"stress"`` (a symmetric 3x3 matrix per
        property, components ``xyz_1, xyz_2``: atomic virials ``w_i`` in energy units,
        reported as ``w_i / V`` with ``V`` the cell volume, so the per-system value is
        the stress ``sum_i w_i / V``; NaN for systems without a 3D cell) or
        ``"spherical"`` (one block per irrep, ``2 * o3_lambda + 1`` components
        ``o3_mu = -o3_lambda .. o3_lambda`` per property; predicted without
        constraint, see :doc:`targets`) or ``"atomic_basis"`` (a spherical target in
        an atomic basis: one block per ``(o3_lambda, o3_sigma, atom_type)``, each
        atom type with its own irreps and numbers of properties, see ``basis``)
    :param unit: unit of the values (e.g. ``"eV"``, ``"e*angstrom"``), ``""`` for none
    :param quantity: physical quantity for unit conversion (``"energy"``, ...)
    :param n_properties: number of properties
    :param description: one line shown in the exported model's capabilities
    :param irreps: spherical targets only: the ``(o3_lambda, o3_sigma)`` of every
        block, in order (``o3_sigma = 1`` proper, ``-1`` pseudo-tensor); for
        products of two irreps (metatrain's ``product: cartesian``), ``(o3_lambda_1,
        o3_lambda_2, o3_sigma_1, o3_sigma_2)`` (see :func:`check_irreps`)
    :param basis: ``"atomic_basis"`` targets only: the ``(atom_type, o3_lambda,
        o3_sigma, n_properties)`` of every block, in order, or for products of two
        irreps ``(atom_type, o3_lambda_1, o3_lambda_2, o3_sigma_1, o3_sigma_2, n_1,
        n_2)`` (``n_properties`` must then stay 1; see :func:`check_basis`)
    """

    name: str
    kind: str = "scalar"
    unit: str = ""
    quantity: str = ""
    n_properties: int = 1
    description: str = ""
    irreps: Tuple[Tuple[int, ...], ...] = ()
    basis: Tuple[Tuple[int, ...], ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(
                f"target '{self.name}': kind must be one of {KINDS}, got '{self.kind}'"
            )
        object.__setattr__(self, "irreps", check_irreps(self.name, self.irreps))
        if (self.kind == "spherical") != (len(self.irreps) > 0):
            raise ValueError(
                f"target '{self.name}': irreps must be given for spherical targets "
                f"and only for them (kind '{self.kind}', irreps {list(self.irreps)})"
            )
        object.__setattr__(self, "basis", check_basis(self.name, self.basis))
        if (self.kind == "atomic_basis") != (len(self.basis) > 0):
            raise ValueError(
                f"target '{self.name}': basis must be given for atomic_basis targets "
                f"and only for them (kind '{self.kind}', basis {list(self.basis)})"
            )
        if self.n_properties < 1:
            raise ValueError(f"target '{self.name}': n_properties must be >= 1")
        if self.kind == "atomic_basis" and self.n_properties != 1:
            raise ValueError(
                f"target '{self.name}': atomic_basis targets give the properties of "
                f"every block in basis; n_properties must be 1, got {self.n_properties}"
            )
        if self.key_names[-1] == "o3_sigma_2" and (
            round(self.n_properties**0.5) ** 2 != self.n_properties
        ):
            raise ValueError(
                f"target '{self.name}': products of irreps have n_1 x n_2 properties "
                f"(a square number), got n_properties={self.n_properties}"
            )
        if self.name == "energy" and (self.kind != "scalar" or self.n_properties != 1):
            raise ValueError("the 'energy' target must be a single scalar")
        expected = DIRECT_OUTPUTS.get(self.name)
        if expected is not None and (self.kind != expected or self.n_properties != 1):
            raise ValueError(
                f"the '{self.name}' target must be of kind '{expected}' with a "
                "single property"
            )
        if self.name in ("feature", "features") or self.name.startswith("mtt::aux::"):
            raise ValueError(f"'{self.name}' is reserved for the model's own outputs")
        try:
            ModelCapabilities(outputs={self.name: ModelOutput(unit=self.unit)})
        except Exception as error:
            raise ValueError(
                f"target '{self.name}' (unit '{self.unit}') is not accepted by "
                f"metatomic: standard names are e.g. 'energy' or 'charges', custom "
                f"ones are namespaced, e.g. 'mtt::{self.name}' ({error})"
            ) from None

    @property
    def n_components(self) -> int:
        """Values per property and atom (all blocks of a spherical target; for an
        atomic-basis target, the values of the atom type with the most of them)."""
        if self.kind == "spherical":
            return sum(_block_size(key) for key in self.irreps)
        if self.kind == "atomic_basis":
            return max(
                row[-1] + _basis_block_size(row[:-1]) for row in self.basis_columns
            )
        return {"scalar": 1, "cartesian": 3, "stress": 9}[self.kind]

    @property
    def key_names(self) -> List[str]:
        """Key names of a spherical target's ``TensorMap``."""
        product = ["o3_lambda_1", "o3_lambda_2", "o3_sigma_1", "o3_sigma_2"]
        if len(self.irreps) > 0 and len(self.irreps[0]) == 4:
            return product
        if self.kind == "atomic_basis":
            rank_1 = len(self.basis[0]) == 4
            return (["o3_lambda", "o3_sigma"] if rank_1 else product) + ["atom_type"]
        return ["o3_lambda", "o3_sigma"]

    @property
    def basis_columns(self) -> List[List[int]]:
        """Where the blocks of an atomic-basis target are in the atomic values: one
        ``[*key, atom_type, *n, first column]`` row per block, ``key`` the block's
        ``(o3_lambda, o3_sigma)`` or ``(o3_lambda_1, o3_lambda_2, o3_sigma_1,
        o3_sigma_2)`` and ``n`` its properties per axis (``n`` or ``n_1, n_2``). The
        atoms of one type hold their blocks one after the other from column 0
        (components first, row-major, properties last); the columns past them are
        unused."""
        rows: List[List[int]] = []
        used: Dict[int, int] = {}
        for atom_type, *rest in self.basis:
            rank = len(rest) // 3
            key, counts = rest[: 2 * rank], rest[2 * rank :]
            row = [*key, atom_type, *counts]
            offset = used.get(atom_type, 0)
            rows.append(row + [offset])
            used[atom_type] = offset + _basis_block_size(row)
        return rows

    @property
    def property_name(self) -> str:
        """Name of the properties dimension of the output's ``TensorMap``
        (metatrain's: ``n`` for spherical targets; products of irreps have two,
        ``n_1, n_2``, see :func:`pet_mta.modules.spherical.spherical_properties`)."""
        if self.kind in ("spherical", "atomic_basis"):
            return "n"
        return STANDARD_PROPERTIES.get(self.name, "properties")

    @property
    def invariant_columns(self) -> List[int]:
        """Columns of the atomic values ``[n_properties * n_components]`` that are
        rotation invariants: all of a scalar, the ``(0, 1)`` block of a spherical
        target, none otherwise (only these get a per-species baseline; products of
        irreps get none)."""
        if self.kind == "scalar":
            return list(range(self.n_properties))
        columns: List[int] = []
        offset = 0
        for key in self.irreps:
            size = _block_size(key) * self.n_properties
            if key == (0, 1):
                columns.extend(range(offset, offset + size))
            offset += size
        return columns


def _block_size(key: Tuple[int, ...]) -> int:
    """Components of the block with ``key``: ``(lambda, sigma)`` or ``(lambda_1,
    lambda_2, sigma_1, sigma_2)``."""
    size = 1
    for o3_lambda in key[: len(key) // 2]:
        size *= 2 * o3_lambda + 1
    return size


def _basis_block_size(row: Sequence[int]) -> int:
    """Values of an atomic-basis block from its ``[*key, atom_type, *n]`` row
    (see :attr:`Target.basis_columns`)."""
    rank = (len(row) - 1) // 3
    size = _block_size(tuple(row[: 2 * rank]))
    for count in row[2 * rank + 1 :]:
        size *= count
    return size


def check_irreps(
    name: str, irreps: Sequence[Union[Sequence[int], Mapping[str, int]]]
) -> Tuple[Tuple[int, ...], ...]:
    """``irreps`` as a tuple of block keys: ``(o3_lambda, o3_sigma)`` pairs, given
    as pairs or as dicts ``{"o3_lambda": ..., "o3_sigma": ...}`` (metatrain's
    spelling), or, for products of two irreps (metatrain's ``product: cartesian``),
    ``(o3_lambda_1, o3_lambda_2, o3_sigma_1, o3_sigma_2)``.

    :raises ValueError: for a negative ``o3_lambda``, an ``o3_sigma`` other than
        +-1, keys of mixed lengths or a repeated key
    """
    result = tuple(
        tuple(
            int(v) for v in (_from_dict(irrep) if isinstance(irrep, Mapping) else irrep)
        )
        for irrep in irreps
    )
    if len({len(key) for key in result}) > 1 or any(
        len(key) not in (2, 4) for key in result
    ):
        raise ValueError(
            f"target '{name}': irreps must all be (o3_lambda, o3_sigma) or all "
            f"(o3_lambda_1, o3_lambda_2, o3_sigma_1, o3_sigma_2), got {list(result)}"
        )
    for key in result:
        lambdas, sigmas = key[: len(key) // 2], key[len(key) // 2 :]
        if min(lambdas) < 0 or any(s not in (-1, 1) for s in sigmas):
            raise ValueError(
                f"target '{name}': irreps need o3_lambda >= 0 and o3_sigma = +-1, "
                f"got {key}"
            )
    if len(set(result)) != len(result):
        raise ValueError(f"target '{name}': repeated irreps in {list(result)}")
    return result


def check_basis(
    name: str, basis: Sequence[Sequence[int]]
) -> Tuple[Tuple[int, ...], ...]:
    """``basis`` as a tuple of ``(atom_type, o3_lambda, o3_sigma, n_properties)``,
    or for products of two irreps ``(atom_type, o3_lambda_1, o3_lambda_2,
    o3_sigma_1, o3_sigma_2, n_1, n_2)``.

    :raises ValueError: for rows of mixed or other lengths, a negative atom type or
        ``o3_lambda``, an ``o3_sigma`` other than +-1, no properties or a repeated
        ``(atom_type, key)``
    """
    result = tuple(tuple(int(v) for v in row) for row in basis)
    if len({len(row) for row in result}) > 1 or any(
        len(row) not in (4, 7) for row in result
    ):
        raise ValueError(
            f"target '{name}': basis rows are all (atom_type, o3_lambda, o3_sigma, "
            "n_properties) or all (atom_type, o3_lambda_1, o3_lambda_2, o3_sigma_1, "
            f"o3_sigma_2, n_1, n_2), got {list(result)}"
        )
    for row in result:
        rank = len(row) // 3
        lambdas, sigmas = row[1 : 1 + rank], row[1 + rank : 1 + 2 * rank]
        if row[0] < 0 or min(lambdas) < 0 or any(s not in (-1, 1) for s in sigmas):
            raise ValueError(
                f"target '{name}': basis rows need atom_type >= 0, o3_lambda >= 0 "
                f"and o3_sigma = +-1, got {row}"
            )
        if min(row[1 + 2 * rank :]) < 1:
            raise ValueError(f"target '{name}': basis row {row} has no properties")
    keys = [row[: 1 + 2 * (len(row) // 3)] for row in result]
    if len(set(keys)) != len(keys):
        raise ValueError(f"target '{name}': repeated blocks in basis {list(result)}")
    return result


def _from_dict(irrep: Mapping[str, int]) -> Tuple[int, ...]:
    if "o3_lambda" in irrep:
        return (irrep["o3_lambda"], irrep["o3_sigma"])
    names = ("o3_lambda_1", "o3_lambda_2", "o3_sigma_1", "o3_sigma_2")
    return tuple(irrep[n] for n in names)


ENERGY = Target(
    name="energy", kind="scalar", unit="eV", quantity="energy", description="energy"
)

TargetSpec = Union[Target, Mapping[str, Any]]


def make_targets(
    targets: Union[None, List[TargetSpec], Dict[str, Any]],
) -> List[Target]:
    """Normalise the ``targets`` argument of :class:`pet_mta.PET`.

    Accepts ``None`` (energy only), a list of :class:`Target` or dicts, or a dict
    ``{name: {kind, unit, ...}}``.
    """
    if targets is None:
        return [ENERGY]
    if isinstance(targets, Mapping):
        targets = [
            spec if isinstance(spec, Target) else Target(name=name, **dict(spec))
            for name, spec in targets.items()
        ]
    result = [t if isinstance(t, Target) else Target(**dict(t)) for t in targets]
    names = [t.name for t in result]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicated target names in {names}")
    if len(result) == 0:
        raise ValueError("a PET model needs at least one target")
    return result
