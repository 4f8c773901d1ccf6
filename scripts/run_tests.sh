#!/usr/bin/env bash
# Builds xpstellar and runs every test (unit, MPI integration, Python cross-checks) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j 2 --timeout 600
