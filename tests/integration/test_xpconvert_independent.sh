#!/usr/bin/env bash
# xps_xpconvert on grids for which no GaiaXPy output exists, checked against an independent
# numpy/scipy evaluation of GaiaXPy's algorithm (check_xpconvert.py): several grids inside
# 330-1050 nm, both covariance modes, with and without truncation.
source "$(dirname "$0")/common.sh"
REAL="$XPS_SOURCE/../shared/realdata/gaiaxpy"
[[ -d "$REAL" ]] || fail "no real Gaia data at $REAL (shared/ must sit beside the checkout)"
/usr/bin/python3 -c "import scipy, h5py" || fail "python3-scipy and python3-h5py are needed (scripts/install_deps.sh)"
convert="$XPS_BIN/xps_xpconvert"
check="$XPS_SOURCE/tests/integration/check_xpconvert.py"
input="$REAL/input/XP_CONTINUOUS_RAW_with_missing_BP.csv"
run() {  # sampling, then options for both programs
  local sampling=$1; shift
  local ours=() theirs=()
  for option in "$@"; do
    case $option in
      truncate) ours+=(--truncate); theirs+=(--truncate) ;;
      propagated) ours+=(--covariance propagated); theirs+=(--propagated) ;;
    esac
  done
  "$convert" --input "$input" --sampling "$sampling" "${ours[@]}" --output "$XPS_WORK/out.h5" > /dev/null ||
    fail "$sampling $*: exit status $?"
  /usr/bin/python3 "$check" independent "$XPS_WORK/out.h5" "$input" "$REAL/calibration" "${theirs[@]}" ||
    fail "$sampling $*: differs from the independent evaluation"
}
run 330:1050:7.5
run 333.3:1049.9:12.1
run 600:700:0.5 propagated
run 392:992:10 truncate
run 330:1050:3 truncate propagated
run 700:1050:25
run 330:600:11
echo "ok: xps_xpconvert agrees with an independent evaluation on other grids"
