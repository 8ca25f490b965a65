#!/usr/bin/env bash
# Multiple time stepping with direct forces in i-PI.
#
#   ./run.sh [model.pt]
#
# model.pt: an exported pet_mta model with an energy and a direct-force output
# (`non_conservative_forces`, e.g. trained with `mtt train` listing it as a target).
# Default: a toy Cu model trained here on EMT data (train_mts_model.py, about a minute).
#
# Runs input-mts.xml: 4 fs outer steps (conservative correction), 4 inner steps of
# 1 fs with the direct forces. See mts.out for the conserved quantity.
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MODEL=${1:-model.pt}
[ -f "$MODEL" ] || python train_mts_model.py "$MODEL" 300

sed "s|model: model.pt|model: $MODEL|g" input-mts.xml > input-mts-run.xml
i-pi input-mts-run.xml > ipi-mts.log
echo "MTS run done: see mts.out (conserved quantity, temperature, ...)"
