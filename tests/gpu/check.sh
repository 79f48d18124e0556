#!/usr/bin/env bash
# One-call GPU check: everything GPU-specific, each part in its own process with a timeout so that one crash does
# not hide the others, then one summary table (check, status, figure). About 8 minutes on one H100/H200.
#   bash tests/gpu/check.sh            # from the repository root, in an environment with the CUDA build of torch
# The table is also written to gpu-check.txt. A part prints its figure as a last line starting with "FIGURE:".
set -uo pipefail
cd "$(dirname "$0")/../.."
unset TRITON_INTERPRET
export PYTHONUNBUFFERED=1
log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
rows=()

part() {  # part NAME TIMEOUT_S COMMAND...
    local name="$1" limit="$2"; shift 2
    local log="$log_dir/$name.log" status figure
    echo "== $name (timeout ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    case $? in
        0) status="pass" ;;
        124|137) status="TIMEOUT" ;;
        *) status="FAIL" ;;
    esac
    figure="$(grep '^FIGURE:' "$log" | tail -1 | cut -c9-)"
    [ "$status" = pass ] || tail -15 "$log" | sed 's/^/   | /'
    rows+=("$(printf '%-34s %-8s %s' "$name" "$status" "${figure:-}")")
}

python3 - <<'PY' || { echo "torch sees no GPU: install the CUDA build of torch (pip install torch)"; exit 2; }
import torch
assert torch.cuda.is_available()
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY

# 1. the kernel tests, natively on the GPU (the kernel_device fixture picks cuda), then one interpreter run
part "kernel tests (native)" 240 python3 -m pytest -q -p no:cacheprovider tests/test_lowbit.py tests/test_kernels.py
part "kernel tests (interpreter)" 180 env TRITON_INTERPRET=1 REPRO_KERNEL_DEVICE=cpu \
    python3 -m pytest -q -p no:cacheprovider tests/test_lowbit.py -k bit_exact
# 2. each kernel against its reference at several sizes, with tails and the full-scale shapes
part "kernels vs references" 120 python3 tests/gpu/kernels_check.py
# 3. the benchmarks (triton.testing.do_bench)
part "benchmarks" 120 python3 tests/gpu/kernels_check.py --bench
# 4. one chapter end to end on the GPU
part "sylvie smoke on cuda" 180 env REPRO_BUILD="$log_dir/build" repro run sylvie --scale smoke --device cuda --force

{
    printf '%-34s %-8s %s\n' "check" "status" "figure"
    printf '%s\n' "${rows[@]}"
} | tee gpu-check.txt
! grep -qE ' (FAIL|TIMEOUT) ' gpu-check.txt
