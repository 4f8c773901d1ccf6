#!/usr/bin/env bash
# xps_mock at 1 and 2 ranks writes the same files (h5diff silent), and a rerun is byte-identical.
source "$(dirname "$0")/common.sh"
run() { "${MPIRUN[@]}" -np "$1" "$XPS_BIN/xps_mock" --stars 3000 --seed 7 --healpix-level 1 --output "$2" > "$2.log"; }
run 1 "$XPS_WORK/np1"
run 2 "$XPS_WORK/np2"
run 2 "$XPS_WORK/np2_again"
files=$(cd "$XPS_WORK/np1" && ls stars_1_*.h5)
[[ -n "$files" ]] || fail "no star tables written"
[[ "$files" == "$(cd "$XPS_WORK/np2" && ls stars_1_*.h5)" ]] || fail "different partition files at 1 and 2 ranks"
for f in $files; do
  h5diff "$XPS_WORK/np1/$f" "$XPS_WORK/np2/$f" > "$XPS_WORK/diff.txt" || { head "$XPS_WORK/diff.txt"; fail "$f differs between 1 and 2 ranks"; }
  cmp -s "$XPS_WORK/np2/$f" "$XPS_WORK/np2_again/$f" || fail "$f is not byte-identical on a rerun"
  cmp -s "$XPS_WORK/np1/$f" "$XPS_WORK/np2/$f" || fail "$f is not byte-identical between 1 and 2 ranks"
done
ls "$XPS_WORK/np1" | grep -q '\.tmp' && fail "temporary files left behind"
grep -q "3000 stars" "$XPS_WORK/np2.log" || fail "summary does not report 3000 stars"
echo "ok: $(echo $files | wc -w) partitions identical at 1 and 2 ranks and on rerun"
