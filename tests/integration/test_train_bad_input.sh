#!/usr/bin/env bash
# Bad training input (issue 4): stars with absurd labels, NaN parallaxes, NaN fluxes, negative
# variances and non-PSD covariances are excluded with a count per reason in the log and do not
# stop the run; a phase left without stars stops with exit 2 and a message naming it.
source "$(dirname "$0")/common.sh"
stars="$XPS_WORK/stars"
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_mock" --config "$XPS_SOURCE/config/mock_training.ini" --stars 3000 \
  --healpix-level 1 --output "$stars" > "$XPS_WORK/mock.log"
table=$(ls "$stars"/stars_1_*.h5 | head -1)
/usr/bin/python3 "$XPS_SOURCE/tests/integration/corrupt_training_stars.py" "$table" > "$XPS_WORK/expected.txt"
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_train" --config "$XPS_SOURCE/tests/data/train/train_tiny.ini" \
  --stars "$stars" --output "$XPS_WORK/model/model.h5" > "$XPS_WORK/train.log" 2>&1 ||
  { tail -20 "$XPS_WORK/train.log"; fail "training on damaged input did not finish"; }
while read -r line; do
  grep -q "excluded ($(echo "$line" | cut -d: -f1)): $(echo "$line" | cut -d: -f2 | tr -d ' ')\$" "$XPS_WORK/train.log" ||
    { grep excluded "$XPS_WORK/train.log"; fail "log lacks 'excluded ($line)'"; }
done < "$XPS_WORK/expected.txt"
# The per-star results mark the damaged stars as excluded (role 3), none of them trained.
/usr/bin/python3 - "$XPS_WORK/model/model_training" "$(basename "$table" | sed 's/stars_/training_/')" <<'PY' || fail "per-star results"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/" + sys.argv[2]) as f:
    role, exclusion = f["training/role"][:], f["training/exclusion"][:]
    teff = f["training/teff"][:]
assert (role == 3).sum() == 12, (role == 3).sum()
assert (exclusion[role == 3] > 0).sum() == 8, "whitening failures carry their reason code"
assert np.isfinite(teff[role == 1]).all() and np.isnan(teff[role != 1]).all()
PY
# No stars survive a self-cleaning threshold of 0: phase 5 has nothing to train on.
set +e
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_train" --config "$XPS_SOURCE/tests/data/train/train_tiny.ini" \
  --cleaning.label_parallax_sigma 0 --stars "$stars" --output "$XPS_WORK/empty/model.h5" > "$XPS_WORK/empty.log" 2>&1
status=$?
set -e
[[ $status -eq 2 ]] || fail "a phase without stars should exit 2 (got $status)"
grep -q "phase5 (alternate, selection clean) has no stars" "$XPS_WORK/empty.log" || fail "no message naming the empty phase"
[[ -e "$XPS_WORK/empty/model.h5" ]] && fail "a failed run left a model file"
echo "ok: bad input excluded with counts per reason; empty phase reported"
