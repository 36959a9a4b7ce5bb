#!/usr/bin/env bash
# Check the GPU path on a machine with a CUDA device, in about ten minutes:
#   1. the GPU tests (tests/test_gpu.py: a multi-task net trained on cuda);
#   2. benchmarks/gpu_trials_per_hour.py (trials per hour at 1, 0.5 and 0.25 GPUs per trial),
#      its section written to benchmarks/out/gpu_check/RESULTS.md;
#   3. a smoke tune with two trials sharing the GPU, its export and predict with its bundle.
#   scripts/gpu_check.sh               all three
#   SAMPLES=16 scripts/gpu_check.sh    the benchmark's own default number of trials (default here 8)
# Without a CUDA device it says so and exits 1.
export SPIKESORT_EXTRAS="test"  # pytest for the GPU tests
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
set +e
out="benchmarks/out/gpu_check"
mkdir -p "$out"
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA device here; nothing to check" >&2
  exit 1
fi
python -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
status=0
echo "== 1/3 GPU tests"
python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py || status=1
echo "== 2/3 trials per hour (benchmarks/gpu_trials_per_hour.py)"
cp benchmarks/RESULTS.md "$out/RESULTS.md"
python -m benchmarks.gpu_trials_per_hour --samples "${SAMPLES:-8}" --results-md "$out/RESULTS.md" || status=1
echo "== 3/3 smoke tune on the GPU, export and predict"
rm -rf "$out/results" "$out/ray_results"
python -m tuning tune cnn A12 --smoke --gpus-per-trial 0.5 --results-dir "$out/results" \
  --storage "$out/ray_results" || status=1
python -m tuning predict "$out/results/Classic CNN PyTorch/Model/A12" data/A12.csv --out "$out/predictions.csv" \
  || status=1
echo "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED); the benchmark's section is in $out/RESULTS.md"
exit $status
