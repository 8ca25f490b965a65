"""Write the parts of the docs that come from the code or from measured results.

Called by ``conf.py`` at the start of every build, so the hyper-parameter tables and
the benchmarks page can never drift from ``pet_mta.hypers`` or from the result files
that the ``bench/`` scripts write into ``docs/src/bench/``.
"""

import glob
import os
import re
from typing import List, Tuple

# (name, title, script): result files are docs/src/bench/<name>.{md,png,json}
BENCHMARKS: List[Tuple[str, str, str]] = [
    (
        "inference",
        "Inference speed against metatrain's PET",
        "bench/inference.py",
    ),
    ("accuracy", "Training accuracy against metatrain's PET", "bench/accuracy.py"),
    ("ecse", "ECSE: cost and equivariance error", "bench/ecse.py"),
    ("engine_overhead", "Engine overhead (ASE, i-PI)", "bench/engine_overhead.py"),
    ("ensemble", "Ensembles and LLPR uncertainties", "bench/ensemble.py"),
    (
        "ensemble_cost",
        "Ensemble cost: stacked pass vs one member after another",
        "bench/ensemble_cost.py",
    ),
    (
        "ecse_float32",
        "ECSE in float32: pruning and conditioning",
        "bench/ecse_float32.py",
    ),
    (
        "ecse_nve",
        "ECSE in molecular dynamics: energy conservation and pruning",
        "bench/ecse_nve.py",
    ),
    (
        "ecse_nve_inner",
        "ECSE in molecular dynamics: the inner cutoff (alloy, trained model)",
        "bench/ecse_nve.py",
    ),
    (
        "ecse_nve_water",
        "ECSE in molecular dynamics: the inner cutoff (water, trained model)",
        "bench/ecse_nve.py",
    ),
    (
        "ecse_scaling",
        "ECSE with its defaults: cost and memory against system size",
        "bench/ecse_scaling.py",
    ),
    (
        "ecse_grid",
        "ECSE against metatomic's rotation-grid average at matched accuracy",
        "bench/ecse_grid.py",
    ),
    (
        "ecse_cost",
        "ECSE local mode: where the time goes (profile and levers)",
        "bench/ecse.py",
    ),
    (
        "spherical",
        "Spherical targets: a polarizability, plain and symmetrized",
        "bench/spherical.py",
    ),
    (
        "direct_forces",
        "Direct (non-conservative) forces against conservative ones",
        "bench/direct_forces.py",
    ),
]


def write(path: str, text: str) -> None:
    """Write ``text`` only if it changed (keeps Sphinx's incremental builds fast)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def model_hypers_table() -> str:
    from pet_mta.hypers import hypers_table

    # "|r|" in a meaning would be read as a reST substitution
    return hypers_table().replace("|", "\\|")


def trainer_hypers_table() -> str:
    """The training hyper-parameters of the metatrain adapter, from its docstrings."""
    try:
        from metatrain.utils.hypers import init_with_defaults
        from sphinx.pycode import ModuleAnalyzer

        from pet_mta.metatrain import documentation
    except ImportError as error:
        return (
            ".. note::\n\n   The training hyper-parameters are listed when metatrain "
            f"is installed (``pip install pet-mta[train]``): {error}\n"
        )
    defaults = init_with_defaults(documentation.TrainerHypers)
    docs = ModuleAnalyzer.for_module(documentation.__name__).find_attr_docs()
    rows = ["   * - name\n     - default\n     - meaning"]
    for name in documentation.TrainerHypers.__annotations__:
        doc = " ".join(docs.get(("TrainerHypers", name), [])).strip()
        doc = re.sub(r"\s+", " ", doc) or "-"
        default = f"``{defaults[name]!r}``" if name in defaults else "(unset)"
        rows.append(f"   * - ``{name}``\n     - {default}\n     - {doc}")
    return (
        ".. list-table::\n   :header-rows: 1\n   :widths: 20 15 65\n\n"
        + "\n".join(rows)
        + "\n"
    )


def benchmark_section(src: str, root: str, name: str, title: str, script: str) -> str:
    """One section of the benchmarks page: measured results, or a clear note."""
    md = os.path.join(src, "bench", name + ".md")
    png = os.path.join(src, "bench", name + ".png")
    lines = [title, "-" * len(title), ""]
    if not os.path.exists(md):
        if os.path.exists(os.path.join(root, script)):
            how = f"the benchmark script is ``{script}``"
        else:
            how = f"the script ``{script}`` does not exist yet"
        lines += [
            ".. admonition:: Not yet measured",
            "   :class: warning",
            "",
            f"   No result file ``docs/src/bench/{name}.md`` in this build: {how}.",
            "   Numbers are only ever shown as measured, never estimated.",
            "",
        ]
        return "\n".join(lines) + "\n"

    with open(md, encoding="utf-8") as f:
        text = f.read()
    # the page gives the title; drop the file's own first-level heading
    text = re.sub(r"\A\s*# [^\n]*\n", "", text)
    write(os.path.join(src, "_generated", "bench", name + ".md"), text)
    lines += [
        f".. include:: bench/{name}.md",
        "   :parser: myst_parser.sphinx_",
        "",
        f"Raw results: :download:`{name}.json </bench/{name}.json>`."
        if os.path.exists(os.path.join(src, "bench", name + ".json"))
        else "",
        "",
    ]
    # the main figure, then any extra ones (``<name>_<what>.png``, e.g. parity plots)
    extras = sorted(glob.glob(os.path.join(src, "bench", name + "_*.png")))
    for path in ([png] if os.path.exists(png) else []) + extras:
        image = os.path.basename(path)
        lines += [f".. image:: /bench/{image}", f"   :alt: {title}", ""]
    return "\n".join(lines) + "\n"


def benchmarks(src: str, root: str) -> str:
    known = {name for name, _, _ in BENCHMARKS}
    extra = sorted(
        f[:-3]
        for f in os.listdir(os.path.join(src, "bench"))
        if f.endswith(".md") and f[:-3] not in known
    )
    entries = BENCHMARKS + [(n, n.replace("_", " ").capitalize(), "") for n in extra]
    return "\n".join(benchmark_section(src, root, *entry) for entry in entries)


# files of other parts of the repository shown in the docs; they may land later
INCLUDED_FILES: List[Tuple[str, str]] = [
    ("examples/options.yaml", "yaml"),
    ("examples/quickstart.sh", "bash"),
    ("examples/engines/ase_md.py", "python"),
    ("examples/engines/export_demo_model.py", "python"),
    ("examples/engines/ipi/input.xml", "xml"),
    ("examples/engines/ipi/input-direct.xml", "xml"),
    ("examples/engines/ipi/run.sh", "bash"),
    ("examples/engines/ipi-mts/input-mts.xml", "xml"),
    ("examples/engines/lammps/in.metatomic", "text"),
    ("examples/engines/lammps/fix_external.py", "python"),
    ("examples/engines/cpp/CMakeLists.txt", "cmake"),
    ("examples/engines/cpp/run_model.cpp", "cpp"),
]


def included_file(root: str, path: str, language: str) -> str:
    """A ``literalinclude`` of ``path`` (from the repository root), or a note."""
    if not os.path.exists(os.path.join(root, path)):
        return f".. note::\n\n   ``{path}`` is not in this version of the repository.\n"
    # literalinclude resolves paths from the including *document*: "/" = docs/src
    return (
        f".. literalinclude:: /../../{path}\n"
        f"   :language: {language}\n"
        f"   :caption: ``{path}``\n"
    )


def ecse_api() -> str:
    """Python usage and reference of the ECSE wrapper, once it exists."""
    try:
        from pet_mta.wrappers.ecse import Symmetrized  # noqa: F401
    except ImportError:
        return (
            ".. note::\n\n   The Python API of the ECSE wrapper "
            "(``pet_mta.wrappers.ecse.Symmetrized``) is not part of this version.\n"
        )
    return """From Python, wrap a model module or a loaded exported model:

.. code-block:: python

    from metatomic.torch import load_atomistic_model
    from pet_mta.wrappers.ecse import Symmetrized

    model = load_atomistic_model("model.pt")
    symmetrized = Symmetrized(model, mode="local").export()
    symmetrized.save("model-ecse.pt")

.. autoclass:: pet_mta.wrappers.ecse.Symmetrized
   :members:

Frame hyper-parameters (keyword arguments of :class:`Symmetrized`, with their
defaults):

.. autoclass:: pet_mta.wrappers.ecse.frames.FrameHypers

.. autoclass:: pet_mta.wrappers.ecse.rotation_average.RotationAverage
"""


def galleries(names: List[str]) -> str:
    if not names:
        return "No example folder found.\n"
    return (
        ".. toctree::\n   :maxdepth: 2\n\n"
        + "\n".join(f"   /{name}/index" for name in names)
        + "\n"
    )


def generate_all(src: str, root: str, gallery_dirs: List[str]) -> None:
    """Write every generated file under ``docs/src/_generated/``."""
    os.makedirs(os.path.join(src, "bench"), exist_ok=True)
    out = os.path.join(src, "_generated")
    write(os.path.join(out, "model_hypers.rst"), model_hypers_table())
    write(os.path.join(out, "trainer_hypers.rst"), trainer_hypers_table())
    write(os.path.join(out, "benchmarks.rst"), benchmarks(src, root))
    write(os.path.join(out, "galleries.rst"), galleries(gallery_dirs))
    write(os.path.join(out, "ecse_api.rst"), ecse_api())
    for path, language in INCLUDED_FILES:
        name = path.replace("/", "_").replace(".", "_") + ".rst"
        write(os.path.join(out, "files", name), included_file(root, path, language))
