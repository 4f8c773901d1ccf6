#!/usr/bin/env bash
# The main job on the embedded default: builds, then generates the default mock survey with
# 2 MPI ranks (later stages will train, infer and validate here) and prints the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ranks="${XPS_RANKS:-2}"
mpirun_flags=(--oversubscribe)
[[ $(id -u) -eq 0 ]] && mpirun_flags+=(--allow-run-as-root)
output="${XPS_OUTPUT:-out}"
rm -rf "$output/mock"
echo "== mock survey (config/mock_default.ini, $ranks ranks) -> $output/mock"
mpirun "${mpirun_flags[@]}" -np "$ranks" build/bin/xps_mock --config config/mock_default.ini --output "$output/mock"
echo "== done: star tables in $output/mock/ (schema docs/star_table.md, model docs/mock.md)"
