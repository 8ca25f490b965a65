"""Export a small, untrained pet_mta PET for copper, to try the engine examples.

Replace ``model.pt`` by your own trained export (``pet-mta export`` or
``model.export().save(...)``): every example only needs the file.

Usage: ``python export_demo_model.py [model.pt] [--float32]``
"""

import argparse

import torch

from pet_mta import PET


def demo_model(dtype: torch.dtype = torch.float64, seed: int = 0) -> PET:
    """A tiny PET for Cu (cutoff 4 Å, two message-passing layers), untrained."""
    torch.manual_seed(seed)
    model = PET(
        atomic_types=[29],
        cutoff=4.0,
        d_pet=16,
        d_head=16,
        d_node=16,
        d_feedforward=32,
        num_heads=2,
        num_gnn_layers=2,
    )
    return model.to(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="model.pt")
    parser.add_argument("--float32", action="store_true", help="export in float32")
    args = parser.parse_args()
    dtype = torch.float32 if args.float32 else torch.float64
    demo_model(dtype).export().save(args.path)
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
