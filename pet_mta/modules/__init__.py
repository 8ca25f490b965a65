"""Building blocks of the PET model, one small module each."""
