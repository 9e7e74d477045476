#!/usr/bin/env bash
# Every GPU measurement the project still lacks, in one call of at most ~9 minutes on one
# H100/H200 (the device tool's per-command limit is 10): run it once, from the repository
# root, on a machine whose python3 has torch with CUDA, numpy, scipy, scikit-learn, pandas,
# h5py, pillow and matplotlib (the lent H200 image has them all).
#
#   bash perf/gpu_checks.sh [OUTDIR]        # OUTDIR defaults to $OUT, else perf/gpu-out
#
# It writes one text file per measurement into OUTDIR; each goes, with the machine named,
# into the record it belongs to:
#   train_step.txt        naive beta-VAE loop, batch 64      -> perf/train_step.md
#   throughput.txt        naive vs packed groups, torch.func -> perf/train_throughput.txt
#   throughput_extras.txt precision/layout/compile + kernels -> perf/train_throughput.txt
#   disdiff.txt           phase-2/3 seconds per step         -> perf/disdiff.md
# Each step has its own time limit, so one that hangs cannot take the rest with it.
set -u
out=${1:-${OUT:-perf/gpu-out}}
mkdir -p "$out"
# The folders are installed as one package, disbench; uninstalled, links in a temporary
# folder lay out the same namespace (benchmark/ as disbench, methods/ and metrics/ in it).
ns=$(mktemp -d)
mkdir "$ns/disbench"
ln -s "$PWD"/benchmark/* "$ns/disbench/"
ln -s "$PWD/methods" "$PWD/metrics" "$ns/disbench/"
export PYTHONPATH="$ns${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

step() {  # step SECONDS FILE COMMAND...: run with a limit, keep its output, note its status
    local limit=$1 file=$out/$2
    shift 2
    echo "\$ $*" | tee "$file"
    timeout "$limit" "$@" 2>&1 | tee -a "$file"
    echo "exit status ${PIPESTATUS[0]}" | tee -a "$file"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/machine.txt"
"$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())' \
    | tee -a "$out/machine.txt"

step 90 train_step.txt "$py" perf/train_step.py --device cuda --learn-steps 300
step 150 throughput.txt "$py" perf/train_throughput.py --device cuda \
    --groups 1 4 16 64 128 256 --steps 20 --warmup 5 --rounds 3 --func
step 180 throughput_extras.txt "$py" perf/train_throughput.py --device cuda \
    --groups 128 256 --steps 20 --warmup 5 --rounds 2 --extras --profile 128
step 90 disdiff.txt "$py" perf/disdiff.py speed --device cuda --batch 128 --rounds 3
