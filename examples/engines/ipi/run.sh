#!/usr/bin/env bash
# Run the i-PI examples with a pet_mta model.
#   model.pt: your exported model (or `python ../export_demo_model.py model.pt`)
# 1. socket mode: i-PI server + i-pi-driver-py client over a UNIX socket
# 2. direct mode: the model runs inside i-PI (ffdirect), no socket
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -f model.pt ] || python ../export_demo_model.py model.pt

# i-PI creates the UNIX socket <tmpdir>/ipi_pet-mta; the driver connects to it
i-pi input.xml > ipi.log &
IPI=$!
SOCKET="$(python -c 'import tempfile; print(tempfile.gettempdir())')/ipi_pet-mta"
for _ in $(seq 100); do [ -S "$SOCKET" ] && break; sleep 0.1; done
i-pi-driver-py -u -a pet-mta -m metatomic \
    -o template=init.xyz,model=model.pt,device=cpu
wait $IPI
echo "socket run done: see md.out (conserved quantity, temperature, ...)"

i-pi input-direct.xml > ipi-direct.log
echo "direct run done: see md-direct.out"
