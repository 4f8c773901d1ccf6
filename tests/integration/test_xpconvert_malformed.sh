#!/usr/bin/env bash
# Rows that cannot be converted are skipped, each with one warning naming its source_id and the
# reason, the rest is converted, and the exit status is 1 (DESIGN §5); usage errors exit 2.
source "$(dirname "$0")/common.sh"
REAL="$XPS_SOURCE/../shared/realdata/gaiaxpy"
[[ -d "$REAL" ]] || fail "no real Gaia data at $REAL (shared/ must sit beside the checkout)"
convert="$XPS_BIN/xps_xpconvert"
bad="$XPS_WORK/bad.csv"
/usr/bin/python3 - "$REAL/input/XP_CONTINUOUS_RAW.csv" "$bad" <<'PY'
import csv, sys
csv.field_size_limit(10**8)
rows = list(csv.reader(open(sys.argv[1])))
header, good = rows[0], rows[1]
col = {name: i for i, name in enumerate(header)}
def row(source_id, **changes):
    r = list(good)
    r[0] = source_id
    for name, value in changes.items():
        r[col[name]] = value
    return r
out = [header, row("2001"),
       row("2002", bp_coefficients=good[col["bp_coefficients"]][:-1]),               # truncated array
       row("2003", rp_coefficient_errors="(" + good[col["rp_coefficient_errors"]].split(", ", 1)[1]),  # 54 values
       row("2004", rp_coefficients="(nan, " + good[col["rp_coefficients"]].split(", ", 1)[1]),         # NaN
       row("2005", **{n: "" for n in header if n[:3] in ("bp_", "rp_")}),                # both bands missing
       row("2006", rp_standard_deviation="")]                                            # RP without sigma
with open(sys.argv[2], "w", newline="") as f:
    csv.writer(f, lineterminator="\n").writerows(out)
PY
set +e
"$convert" --input "$bad" --sampling 400:900:20 --output "$XPS_WORK/out.h5" > "$XPS_WORK/out.txt" 2> "$XPS_WORK/err.txt"
status=$?
set -e
cat "$XPS_WORK/err.txt"
[[ $status -eq 1 ]] || fail "exit status $status with skipped rows, expected 1"
[[ $(grep -c "warning" "$XPS_WORK/err.txt") -eq 5 ]] || fail "expected 5 warnings"
for expected in "source_id 2002 (line 3): bp_coefficients: array not closed" \
                "source_id 2003 (line 4): rp_coefficient_errors has 54 values, expected 55" \
                "source_id 2004 (line 5): rp_coefficients contain NaN" \
                "source_id 2005 (line 6): both bands missing" \
                "source_id 2006 (line 7): rp_standard_deviation missing"; do
  grep -qF "$expected" "$XPS_WORK/err.txt" || fail "no warning: $expected"
done
ids=$(/usr/bin/python3 -c "import h5py,sys; print(*h5py.File(sys.argv[1])['source_id'][:])" "$XPS_WORK/out.h5")
[[ "$ids" == "2001" ]] || fail "output holds source_ids '$ids', expected 2001"

usage() {  # expected text, then arguments: exit status 2 and the text on stderr
  local text=$1; shift
  set +e
  "$convert" "$@" > /dev/null 2> "$XPS_WORK/usage.txt"; local got=$?
  set -e
  [[ $got -eq 2 ]] || fail "$*: exit status $got, expected 2"
  grep -qF -- "$text" "$XPS_WORK/usage.txt" || fail "$*: message lacks '$text': $(cat "$XPS_WORK/usage.txt")"
}
good="$REAL/input/XP_CONTINUOUS_RAW.csv"
usage "330, 1050" --input "$good" --sampling 300:992:10 --output "$XPS_WORK/u.h5"
usage "START:STOP:STEP" --input "$good" --sampling 392-992 --output "$XPS_WORK/u.h5"
usage "--input" --sampling 392:992:10 --output "$XPS_WORK/u.h5"
usage "--covariance" --input "$good" --sampling 392:992:10 --output "$XPS_WORK/u.h5" --covariance full
usage "no-such.csv" --input "$XPS_WORK/no-such.csv" --sampling 392:992:10 --output "$XPS_WORK/u.h5"
[[ ! -e "$XPS_WORK/u.h5" ]] || fail "a failed run left an output file"
echo "ok: malformed rows skipped with their source_id, usage errors exit 2"
