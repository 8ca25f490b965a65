#!/usr/bin/env bash
# The main job, end to end on the shipped example data (a few minutes on 2 cores):
#   install -> train with `mtt train` -> export -> evaluate on held-out data -> NVE in ASE
# Usage: bash examples/quickstart.sh            (from anywhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# 1. install (torch first, from the pinned CPU wheel), into .venv unless one is active
# (tox writes a *file* named .venv pointing at its env: use another folder then)
if [ -z "${VIRTUAL_ENV:-}" ]; then
    venv=.venv
    if [ -e "$venv" ] && [ ! -d "$venv" ]; then venv=.venv-quickstart; fi
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
fi
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[train]"

run="$root/examples/quickstart-run"
rm -rf "$run" && mkdir -p "$run"
cd "$root/examples"

# 2. train (writes the exported model and the checkpoint)
mtt train options.yaml -o "$run/model.pt" 2>&1 | grep -v -i "warning" || true
[ -f "$run/model.pt" ] || { echo "training failed: no model.pt" >&2; exit 1; }

# 3. held-out structures that the model never saw (another random seed), and errors
python data/make_emt_alloys.py -n 20 --seed 7 -o "$run/test.xyz"
cat > "$run/eval.yaml" <<YAML
systems: {read_from: $run/test.xyz, length_unit: angstrom}
targets:
  energy: {key: energy, unit: eV, forces: true, stress: true}
YAML
mtt eval "$run/model.pt" "$run/eval.yaml" -o "$run/test-predictions.xyz" 2>&1 \
    | grep -v -i "warning" || true
pet-mta errors "$run/model.pt" "$run/test.xyz"

# 4. short NVE molecular dynamics in ASE with the exported model
pet-mta md "$run/model.pt" "$run/test.xyz" --steps 200 --timestep 1.0 --temperature 300
echo "done: model in $run/model.pt"
