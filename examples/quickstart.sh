#!/usr/bin/env bash
# The main job, end to end on the shipped example data (a few minutes on 2 cores):
#   install -> train with `mtt train` -> export -> evaluate on held-out data -> NVE in ASE
# It prints its own progress and results only; everything it writes (the model, the
# logs of pip and metatrain, predictions) goes to examples/quickstart-run/.
# Usage: bash examples/quickstart.sh            (from anywhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
run="$root/examples/quickstart-run"
rm -rf "$run" && mkdir -p "$run"

# run a command with its output in a log file; on failure show the log's end and stop
quietly() {
    local log="$1"
    shift
    if ! "$@" >>"$log" 2>&1; then
        echo "failed: $* -- last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

# 1. install into .venv unless a virtual environment is active (tox writes a *file*
# named .venv pointing at its env: use another folder then). torch first, pinned and
# CPU-only from PyTorch's own index: PyPI's default build pulls several GB of CUDA
# libraries, even on a machine without a GPU. Only torch itself comes from there
# (--no-deps); its dependencies come with pet_mta's, from your usual index.
echo "1/5 installing torch (CPU build), pet_mta and metatrain -- log: $run/install.log"
if [ -z "${VIRTUAL_ENV:-}" ]; then
    venv=.venv
    if [ -e "$venv" ] && [ ! -d "$venv" ]; then venv=.venv-quickstart; fi
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
fi
quietly "$run/install.log" python -m pip install --upgrade pip
quietly "$run/install.log" python -m pip install torch==2.13.0 --no-deps \
    --index-url https://download.pytorch.org/whl/cpu
quietly "$run/install.log" python -m pip install -e ".[train]"

# 2. train and export (everything metatrain writes stays in the run folder)
cd "$run"
echo "2/5 training with mtt train (about 2 minutes) -- log: $run/train.log"
quietly "$run/train.log" mtt train "$root/examples/options.yaml" -o model.pt \
    -r "training_set.systems.read_from=$root/examples/data/emt_alloys.xyz"
[ -f model.pt ] || { echo "training failed: no model.pt, see $run/train.log" >&2; exit 1; }
echo "    exported model: $run/model.pt"

# 3. held-out structures that the model never saw (another random seed)
echo "3/5 generating 20 held-out structures (another random seed)"
quietly "$run/data.log" python "$root/examples/data/make_emt_alloys.py" \
    -n 20 --seed 7 -o test.xyz

# 4. errors on them: metatrain's `mtt eval` (predictions file) and `pet-mta errors`
echo "4/5 errors on the held-out structures -- predictions: $run/test-predictions.xyz"
cat > eval.yaml <<YAML
systems: {read_from: test.xyz, length_unit: angstrom}
targets:
  energy: {key: energy, unit: eV, forces: true, stress: true}
YAML
# mtt eval keeps only the file name of -o: it writes into the current folder
quietly "$run/eval.log" mtt eval model.pt eval.yaml -o test-predictions.xyz
pet-mta errors model.pt test.xyz

# 5. short NVE molecular dynamics in ASE with the exported model
echo "5/5 NVE molecular dynamics in ASE"
pet-mta md model.pt test.xyz --steps 200 --timestep 1.0 --temperature 300
echo "done: model in $run/model.pt"
