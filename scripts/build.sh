#!/usr/bin/env bash
# Configures and builds xpstellar into build/ (binaries in build/bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
build_type="${BUILD_TYPE:-Release}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="$build_type" -DXPS_WERROR=ON > build.log 2>&1 || { cat build.log; exit 2; }
cmake --build build -j "$(nproc)" >> build.log 2>&1 || { tail -n 60 build.log; exit 2; }
echo "build: ok (build/bin)"
