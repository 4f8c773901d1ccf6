#!/usr/bin/env bash
# Benchmark: xps_infer memory and rank scaling (DESIGN §1.5, streaming in inference.chunk_stars).
#  (a) peak memory while streaming: one mock survey at HEALPix level 0 (12 partitions of very
#      different sizes: the Galactic plane crosses a few of them) gives single star tables of about
#      20k, 80k and 200k rows; xps_infer runs on each alone under /usr/bin/time -v and its
#      "Maximum resident set size" is tabulated against the rows of the partition, with a linear fit
#      extrapolated to 1 million rows (flat if the partition is streamed chunk by chunk);
#  (b) 1 vs 2 ranks on the same partitions (default: the 48 of /tmp/xp/dev/training): wall time,
#      speed-up, and h5diff -q / cmp of every catalog pair (they must be identical).
# Usage: bench/bench_infer_scaling.sh [BUILD_DIR (build-bench)] [WORK_DIR (/tmp/xp/bench_work)]
# Environment: XPS_BENCH_MODEL (/tmp/xp/dev/model.h5), XPS_BENCH_STARS (/tmp/xp/dev/training),
#   XPS_BENCH_MOCK_STARS (720000: the largest level-0 partition of the default survey then holds
#   ~200k), XPS_BENCH_TARGETS ("20000 80000 200000": partition sizes looked for).
# The mock survey is kept in WORK_DIR and reused by later runs (same star count). Everything runs
# with OMP_NUM_THREADS=1; about 9 minutes on 2 cores (mock ~3 min, memory runs ~4, ranks ~1.5).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build-bench}"
work="${2:-/tmp/xp/bench_work}"
[[ "$build" = /* ]] || build="$here/$build"
model="${XPS_BENCH_MODEL:-/tmp/xp/dev/model.h5}"
training="${XPS_BENCH_STARS:-/tmp/xp/dev/training}"
mock_stars="${XPS_BENCH_MOCK_STARS:-720000}"
read -r -a targets <<< "${XPS_BENCH_TARGETS:-20000 80000 200000}"
export OMP_NUM_THREADS=1

mpirun_cmd=(mpirun)
[[ $(id -u) -eq 0 ]] && mpirun_cmd+=(--allow-run-as-root --oversubscribe)
for tool in xps_infer xps_mock; do
  [[ -x "$build/bin/$tool" ]] || { echo "bench_infer_scaling: $build/bin/$tool missing (build it first)" >&2; exit 2; }
done
for tool in /usr/bin/time h5diff h5ls mpirun; do
  command -v "$tool" > /dev/null || { echo "bench_infer_scaling: $tool not found" >&2; exit 2; }
done
[[ -f "$model" ]] || { echo "bench_infer_scaling: no model $model" >&2; exit 2; }
mkdir -p "$work"
now() { date +%s.%N; }
rows_of() { h5ls "$1/stars/source_id" | sed -n 's/.*Dataset {\([0-9]*\).*/\1/p'; }
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
start_all=$(now)
echo "bench_infer_scaling: build $build, work $work, model $model, OMP_NUM_THREADS=1, $(nproc --all) cores"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- (a) memory vs partition size
mock="$work/mock_l0_$mock_stars"
if [[ ! -f "$mock/.complete" ]]; then
  rm -rf "$mock"
  t0=$(now)
  "${mpirun_cmd[@]}" -np 2 "$build/bin/xps_mock" --config "$here/config/mock_default.ini" \
    --stars "$mock_stars" --healpix-level 0 --output "$mock" > "$work/mock_l0.log" 2>&1 ||
    { tail -20 "$work/mock_l0.log"; echo "bench_infer_scaling: xps_mock failed" >&2; exit 1; }
  touch "$mock/.complete"
  echo "  mock survey: $mock_stars stars at HEALPix level 0 in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.0f", b-a}') s"
else
  echo "  mock survey: reusing $mock"
fi
declare -A rows_by_file
for f in "$mock"/stars_0_*.h5; do rows_by_file[$f]=$(rows_of "$f"); done
echo "  partition rows: $(for f in "${!rows_by_file[@]}"; do echo "${rows_by_file[$f]}"; done | sort -n | tr '\n' ' ')"

# The partition closest to each target size, each alone in a directory.
chosen=()
for target in "${targets[@]}"; do
  best="" best_distance=""
  for f in "${!rows_by_file[@]}"; do
    d=$(( ${rows_by_file[$f]} > target ? ${rows_by_file[$f]} - target : target - ${rows_by_file[$f]} ))
    if [[ -z "$best" || $d -lt $best_distance ]]; then best=$f best_distance=$d; fi
  done
  chosen+=("$best")
done
mem_run() {  # $1 star table -> writes $work/mem_<rows>/{time.txt,infer.log}
  local rows=${rows_by_file[$1]} dir="$work/mem_${rows_by_file[$1]}"
  rm -rf "$dir" && mkdir -p "$dir/stars"
  ln "$1" "$dir/stars/" 2> /dev/null || cp "$1" "$dir/stars/"
  /usr/bin/time -v -o "$dir/time.txt" "$build/bin/xps_infer" --model "$model" --stars "$dir/stars" \
    --output "$dir/catalogs" --force > "$dir/infer.log" 2>&1 || echo "failed" > "$dir/failed"
}
# Two processes at a time on the 2 cores: the largest partition alone, the others one after another.
t0=$(now)
mem_run "${chosen[${#chosen[@]}-1]}" &
largest=$!
for (( i = 0; i + 1 < ${#chosen[@]}; ++i )); do mem_run "${chosen[$i]}"; done
wait "$largest"
mem_seconds=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.0f", b-a}')
echo
echo "(a) peak memory of xps_infer vs rows in the partition (1 rank x 1 thread, chunk_stars 4096; ${mem_seconds} s)"
printf "  %10s  %12s  %10s  %12s  %s\n" rows "max RSS MiB" "wall s" "stars/s" "star table"
fit_input=""
for f in "${chosen[@]}"; do
  dir="$work/mem_${rows_by_file[$f]}"
  if [[ -f "$dir/failed" ]]; then
    echo "  ${rows_by_file[$f]}: xps_infer FAILED (see $dir/infer.log)"
    continue
  fi
  kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.txt")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.txt" |
         awk -F: '{ s = 0; for (i = 1; i <= NF; ++i) s = s * 60 + $i; print s }')
  printf "  %10d  %12s  %10.1f  %12.0f  %s\n" "${rows_by_file[$f]}" "$(kib_to_mib "$kib")" "$wall" \
    "$(awk -v r="${rows_by_file[$f]}" -v w="$wall" 'BEGIN { print r / w }')" "$(basename "$f")"
  fit_input+="${rows_by_file[$f]} $kib"$'\n'
done
# Least-squares line RSS = a + b rows, extrapolated to 1 million rows.
awk 'NF == 2 { n++; x += $1; y += $2; xx += $1 * $1; xy += $1 * $2 }
     END {
       if (n < 2) { print "  (too few points for a fit)"; exit }
       b = (n * xy - x * y) / (n * xx - x * x); a = (y - b * x) / n
       printf "  linear fit: RSS = %.1f MiB + %.1f bytes/row x rows -> %.1f MiB at 1,000,000 rows\n", a / 1024, b * 1024, (a + b * 1e6) / 1024
       if (b * 1024 > 8)
         printf "  (a growth this size is the catalog writer'"'"'s HDF5 chunk caches filling, 1 MiB per dataset by\n" \
                "   default, ~20 MiB for the 20 columns, full by ~1M rows; the fit is then an upper bound)\n"
     }' <<< "$fit_input"

# ---------------------------------------------------------------- (b) 1 vs 2 ranks
echo
partitions=$(ls "$training"/stars_*_*.h5 | wc -l)
stars_total=0
for f in "$training"/stars_*_*.h5; do stars_total=$(( stars_total + $(rows_of "$f") )); done
declare -A wall_by_ranks
for ranks in 1 2; do
  out="$work/ranks_$ranks"
  rm -rf "$out"
  t0=$(now)
  "${mpirun_cmd[@]}" -np "$ranks" "$build/bin/xps_infer" --model "$model" --stars "$training" --output "$out" \
    --force > "$work/ranks_$ranks.log" 2>&1 ||
    { tail -20 "$work/ranks_$ranks.log"; echo "bench_infer_scaling: $ranks-rank inference failed" >&2; exit 1; }
  wall_by_ranks[$ranks]=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')
done
identical=0 differ=0 bytes_identical=0 missing=0
for c in "$work/ranks_1"/catalog_*.h5; do
  other="$work/ranks_2/$(basename "$c")"
  if [[ ! -f "$other" ]]; then missing=$((missing + 1)); continue; fi
  if h5diff -q "$c" "$other" > /dev/null 2>&1; then identical=$((identical + 1)); else differ=$((differ + 1)); echo "  differs: $(basename "$c")"; fi
  cmp -s "$c" "$other" && bytes_identical=$((bytes_identical + 1))
done
catalogs=$(ls "$work/ranks_1"/catalog_*.h5 | wc -l)
echo "(b) 1 vs 2 ranks (OMP_NUM_THREADS=1) on $partitions partitions, $stars_total stars of $training"
printf "  %6s  %8s  %10s  %14s  %8s  %s\n" ranks "wall s" "stars/s" "stars/s/rank" speed-up "(inference loop alone: s, speed-up)"
loop_seconds() { sed -n 's/.*inference (stars): done, [0-9]* in \([0-9.]*\) s.*/\1/p' "$work/ranks_$1.log" | tail -1; }
for ranks in 1 2; do
  awk -v r="$ranks" -v w="${wall_by_ranks[$ranks]}" -v n="$stars_total" -v w1="${wall_by_ranks[1]}" \
      -v l="$(loop_seconds "$ranks")" -v l1="$(loop_seconds 1)" \
    'BEGIN { printf "  %6d  %8.2f  %10.0f  %14.0f  %8.2f  (%.1f s, %.2f)\n", r, w, n / w, n / w / r, w1 / w, l, (l > 0 ? l1 / l : 0) }'
done
echo "  catalogs: $catalogs from 1 rank; h5diff -q identical $identical, differing $differ, missing from 2 ranks $missing;" \
     "byte-identical (cmp) $bytes_identical"
echo "  (wall time includes mpirun start-up and the model load per rank; logs: $work/ranks_*.log)"
echo
echo "bench_infer_scaling: done in $(awk -v a="$start_all" -v b="$(now)" 'BEGIN{printf "%.0f", b-a}') s;" \
     "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
