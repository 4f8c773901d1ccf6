#!/usr/bin/env bash
# Independent checks of a mock survey with Python libraries: healpy pixels vs source_id, schema and
# dtypes through h5py, covariances positive definite through numpy, truth curve vs python3-extinction.
source "$(dirname "$0")/common.sh"
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_mock" --stars 4000 --seed 11 --healpix-level 2 --output "$XPS_WORK/survey" > "$XPS_WORK/mock.log"
/usr/bin/python3 "$XPS_SOURCE/tests/integration/check_mock_survey.py" "$XPS_WORK/survey"
