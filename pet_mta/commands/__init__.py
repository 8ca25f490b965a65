"""Sub-commands of the ``pet-mta`` command line."""
