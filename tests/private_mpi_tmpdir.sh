#!/usr/bin/env bash
# Runs a test command with an Open MPI session directory of its own (orte_tmpdir_base), removed
# afterwards: jobs that start at once under ctest -j otherwise race for the shared
# /tmp/ompi.<host>.<uid> and one fails in orte_init (open-mpi/ompi#8510;
# tests/private_mpi_tmpdir.hpp does the same for the GoogleTest singletons).
set -u
OMPI_MCA_orte_tmpdir_base=$(mktemp -d /tmp/xps-ompi-XXXXXX) || exit 1
export OMPI_MCA_orte_tmpdir_base
"$@"
status=$?
rm -rf "$OMPI_MCA_orte_tmpdir_base"
exit "$status"
