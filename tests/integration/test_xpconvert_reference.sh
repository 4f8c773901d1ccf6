#!/usr/bin/env bash
# xps_xpconvert on the real Gaia spectra of shared/realdata reproduces GaiaXPy's own outputs
# (1e-6 on flux and error, 1e-5 on covariance), with and without mpirun, with the DESIGN §5
# command line; the outputs do not depend on the number of ranks.
source "$(dirname "$0")/common.sh"
REAL="$XPS_SOURCE/../shared/realdata/gaiaxpy"
[[ -d "$REAL" ]] || fail "no real Gaia data at $REAL (shared/ must sit beside the checkout)"
convert="$XPS_BIN/xps_xpconvert"
check="$XPS_SOURCE/tests/integration/check_xpconvert.py"
same_datasets() {
  for d in /source_id /wavelength_nm /flux /flux_error /flux_cov; do
    h5diff -q "$1" "$2" "$d" "$d" || fail "$1 and $2 differ in $d"
  done
}
for name in raw missingbp; do
  input="$REAL/input/XP_CONTINUOUS_RAW.csv"
  [[ $name == missingbp ]] && input="$REAL/input/XP_CONTINUOUS_RAW_with_missing_BP.csv"
  "$convert" --input "$input" --sampling 392:992:10 --output "$XPS_WORK/$name.h5" > "$XPS_WORK/$name.log" ||
    fail "$name: exit status $?"
  [[ -f "$XPS_WORK/$name.h5" && ! -e "$XPS_WORK/$name.h5.tmp" ]] || fail "$name: no output file"
  /usr/bin/python3 "$check" reference "$XPS_WORK/$name.h5" "$REAL/reference/$name" || fail "$name differs from GaiaXPy"
  for np in 1 2; do
    "${MPIRUN[@]}" -np $np "$convert" --input "$input" --sampling 392:992:10 \
      --output "$XPS_WORK/${name}_np$np.h5" > /dev/null || fail "$name under mpirun -np $np"
    same_datasets "$XPS_WORK/$name.h5" "$XPS_WORK/${name}_np$np.h5"
  done
done
# ECSV-style '.ecsv' name, the options spelled out, the provenance recorded.
"$convert" --input "$REAL/input/XP_CONTINUOUS_RAW.csv" --sampling 392:992:10 --covariance gaiaxpy \
  --calibration-dir "$REAL/calibration" --output "$XPS_WORK/dir.h5" > /dev/null || fail "--calibration-dir"
same_datasets "$XPS_WORK/raw.h5" "$XPS_WORK/dir.h5"
h5dump -a /provenance "$XPS_WORK/raw.h5" | grep -q "xps_xpconvert" || fail "no provenance attribute"
echo "ok: xps_xpconvert reproduces GaiaXPy's reference outputs"
