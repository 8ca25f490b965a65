#!/usr/bin/env bash
# Run the i-PI examples with a pet_mta model.
#
#   ./run.sh [model.pt]
#
# model.pt: your exported model (default: a demo model written by
# ../export_demo_model.py). The ECSE-symmetrized variant works the same way:
#   pet-mta symmetrize model.pt -o model-ecse.pt --mode local && ./run.sh model-ecse.pt
# (much slower per step than the plain model: one backbone call per frame).
#
# 1. socket mode: i-PI server + i-pi-driver-py client over a UNIX socket
# 2. direct mode: the model runs inside i-PI (ffdirect), no socket
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MODEL=${1:-model.pt}
[ -f "$MODEL" ] || python ../export_demo_model.py "$MODEL"

# i-PI creates the UNIX socket /tmp/ipi_pet-mta; the driver connects to it
i-pi input.xml > ipi.log &
IPI=$!
SOCKET=/tmp/ipi_pet-mta
for _ in $(seq 300); do [ -S "$SOCKET" ] && break; sleep 0.1; done
i-pi-driver-py -u -a pet-mta -m metatomic \
    -o "template=init.xyz,model=$MODEL,device=cpu"
wait $IPI
echo "socket run done: see md.out (conserved quantity, temperature, ...)"

sed "s|model: model.pt|model: $MODEL|" input-direct.xml > input-direct-run.xml
i-pi input-direct-run.xml > ipi-direct.log
echo "direct run done: see md-direct.out"
