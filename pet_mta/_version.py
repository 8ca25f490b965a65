"""The version of pet_mta (one place: packaging reads it, ``pet_mta.__version__``
re-exports it)."""

__version__ = "0.1.0"
