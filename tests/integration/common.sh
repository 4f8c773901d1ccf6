# Shared by the integration tests (sourced, not run): paths, mpirun flags, failure helper.
set -euo pipefail
: "${XPS_BIN:?set by ctest}" "${XPS_SOURCE:?set by ctest}" "${XPS_WORK:?set by ctest}"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
export OMP_NUM_THREADS=1
rm -rf "$XPS_WORK"
mkdir -p "$XPS_WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }
