#!/usr/bin/env bash
# The model file through Python: tests/tools/model_file_fixture writes a model file with random
# weights and the C++ forward pass on random stars; check_model_file.py reads the file with h5py,
# checks the schema, and evaluates it with tools/xps_model.py (numpy) for every activation.
source "$(dirname "$0")/common.sh"
fixture="${XPS_TEST_BIN:-$XPS_BIN/../tests/bin}/model_file_fixture"
[[ -x "$fixture" ]] || fail "no $fixture (built with the unit tests)"
dirs=()
for activation in tanh silu relu softplus elu sigmoid; do
  for use_xi in 0 1; do
    dir="$XPS_WORK/${activation}_xi${use_xi}"
    mkdir -p "$dir"
    "$fixture" "$dir" "$activation" "$use_xi" 300 || fail "model_file_fixture $activation $use_xi"
    dirs+=("$dir")
  done
done
/usr/bin/python3 "$XPS_SOURCE/tests/integration/check_model_file.py" "${dirs[@]}" \
  || fail "check_model_file.py"
