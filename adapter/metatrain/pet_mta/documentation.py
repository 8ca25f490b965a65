# metatrain loads this file by its path (``metatrain/pet_mta/documentation.py``)
# to read the hyper-parameters of the architecture: they are those of
# pet_mta.metatrain.documentation, and so is the docstring.
from pet_mta.metatrain.documentation import *  # noqa: F403
from pet_mta.metatrain.documentation import __doc__  # noqa: F401
