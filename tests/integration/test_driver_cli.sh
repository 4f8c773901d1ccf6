#!/usr/bin/env bash
# Every driver: --help exits 0 and lists every option and key; --version works; unknown options,
# unknown INI keys and bad values exit 2 naming the culprit; the config files in config/ parse.
source "$(dirname "$0")/common.sh"
drivers=$(cd "$XPS_SOURCE/mpi_drivers" && ls *.cpp | sed 's/[.]cpp$//')
for name in $drivers; do
  driver="$XPS_BIN/$name"
  [[ -x "$driver" ]] || fail "driver $name was not built"
  "$driver" --help > "$XPS_WORK/$name.help" || fail "$name --help exited $?"
  "$driver" --version | grep -q "$name" || fail "$name --version"
  "$driver" --print-config > "$XPS_WORK/$name.ini" || fail "$name --print-config"
  while read -r key; do
    grep -q -- "--$key " "$XPS_WORK/$name.help" || fail "$name --help does not list --$key"
  done < <(awk '/^\[/{s=substr($0,2,length($0)-2)} /^[a-z_0-9]+ = /{print s"."$1}' "$XPS_WORK/$name.ini")
  set +e
  "$driver" --no-such-option 2> "$XPS_WORK/err.txt"; status=$?
  set -e
  [[ $status -eq 2 ]] || fail "$name: unknown option exited $status, expected 2"
  grep -q "no-such-option" "$XPS_WORK/err.txt" || fail "$name: unknown option not named"
done

mock="$XPS_BIN/xps_mock"
grep -q -- "--output" "$XPS_WORK/xps_mock.help" || fail "xps_mock --help lacks --output"
printf '[survey]\nstarz = 10\n' > "$XPS_WORK/bad_key.ini"
set +e
"$mock" --config "$XPS_WORK/bad_key.ini" --output "$XPS_WORK/out" 2> "$XPS_WORK/err.txt"; status=$?
set -e
[[ $status -eq 2 ]] || fail "unknown INI key exited $status"
grep -q "survey.starz" "$XPS_WORK/err.txt" && grep -q "bad_key.ini" "$XPS_WORK/err.txt" || fail "unknown INI key not named with its file: $(cat "$XPS_WORK/err.txt")"
set +e
"$mock" --survey.g_limit 40 --output "$XPS_WORK/out" 2> "$XPS_WORK/err.txt"; status=$?
set -e
[[ $status -eq 2 ]] && grep -q "survey.g_limit" "$XPS_WORK/err.txt" || fail "out-of-range value not rejected"
set +e
"$mock" --stars 10 2> "$XPS_WORK/err.txt"; status=$?
set -e
[[ $status -eq 2 ]] && grep -q -- "--output" "$XPS_WORK/err.txt" || fail "missing --output not reported"

# The shipped configurations parse, and mock_default.ini documents exactly the built-in defaults.
for ini in "$XPS_SOURCE"/config/*.ini; do
  stage=$(basename "$ini" | cut -d_ -f1)   # mock_default.ini -> xps_mock
  [[ -x "$XPS_BIN/xps_$stage" ]] || fail "$ini: no driver xps_$stage for it"
  "$XPS_BIN/xps_$stage" --config "$ini" --print-config > /dev/null || fail "$ini does not parse"
done
strip() { grep -v '^#' "$1" | grep -v '^$'; }
diff <(strip "$XPS_SOURCE/config/mock_default.ini") <(strip "$XPS_WORK/xps_mock.ini") > "$XPS_WORK/ini.diff" ||
  { cat "$XPS_WORK/ini.diff"; fail "config/mock_default.ini differs from the built-in defaults"; }
diff <(strip "$XPS_SOURCE/config/train_paper.ini") <(strip "$XPS_WORK/xps_train.ini") > "$XPS_WORK/ini.diff" ||
  { cat "$XPS_WORK/ini.diff"; fail "config/train_paper.ini differs from the built-in defaults (the paper's recipe)"; }
diff <(strip "$XPS_SOURCE/config/infer_paper.ini") <(strip "$XPS_WORK/xps_infer.ini") > "$XPS_WORK/ini.diff" ||
  { cat "$XPS_WORK/ini.diff"; fail "config/infer_paper.ini differs from the built-in defaults"; }
# DESIGN §5 command line as written.
"${MPIRUN[@]}" -np 2 "$mock" --output "$XPS_WORK/design" --stars 200 --seed 3 --healpix-level 0 > /dev/null
ls "$XPS_WORK"/design/stars_0_*.h5 > /dev/null || fail "DESIGN §5 command line wrote no stars_0_*.h5"
echo "ok: CLI contract holds for drivers:" $drivers
