#!/usr/bin/env bash
# The GPU check (issue 23), one call on a machine with CUDA, at most 8 minutes: vitnotes' hot paths
# against a plain SDPA forward on ViT-B/16 geometry (bf16, batch 256; 32 for integrated gradients and
# occlusion), and the CPU-against-CUDA agreement of every method, the sweep and the profile on
# fmnist-vit-p2, a random DeiT and a random DINOv2 with registers. Writes the GPU section of
# benchmarks/RESULTS.md (and a copy to $OUT/gpu_section.md when $OUT is set).
#
#   tools/gpu_check.sh              # on the GPU machine
#   tools/gpu_check.sh --dry-run    # anywhere: the same code paths on the CPU, tiny sizes
#
# Machines without captum or Fashion-MNIST: put a captum wheel in _build/gpu/wheels/ and the
# t10k-*.gz files in _build/gpu/fmnist/ (pip download --no-deps captum; cp /usr/share/datasets/...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if ! $PY -c "import captum" 2>/dev/null && ls _build/gpu/wheels/captum-*.whl >/dev/null 2>&1; then
  site=$(mktemp -d)
  $PY -m pip install -q --no-deps --no-index --target "$site" _build/gpu/wheels/captum-*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d _build/gpu/fmnist ] && [ -z "${VITNOTES_FASHION_MNIST:-}" ] && export VITNOTES_FASHION_MNIST=$PWD/_build/gpu/fmnist
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
section=${OUT:-_build}/gpu_section.md
mkdir -p "$(dirname "$section")"
timeout 480 $PY benchmarks/bench_gpu.py --out "$section" "$@"
case " $* " in *" --dry-run "*) ;; *) $PY benchmarks/bench_gpu.py --paste "$section" ;; esac
