#!/usr/bin/env bash
# xps_train is deterministic and restartable (issue 4): the same model (h5diff silent outside
# /provenance) and per-star results from 1 rank, 2 ranks, and runs killed with SIGKILL at several
# steps (in every phase kind, right after a checkpoint, at a phase boundary) and resumed, one of
# them resumed at a different rank count and one after its newest checkpoint was corrupted.
source "$(dirname "$0")/common.sh"
stars="$XPS_WORK/stars"
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_mock" --config "$XPS_SOURCE/config/mock_training.ini" --stars 3000 \
  --healpix-level 1 --output "$stars" > "$XPS_WORK/mock.log"
train() {  # ranks name [extra args...]
  local ranks=$1 name=$2; shift 2
  "${MPIRUN[@]}" -np "$ranks" "$XPS_BIN/xps_train" --config "$XPS_SOURCE/tests/data/train/train_tiny.ini" \
    --stars "$stars" --output "$XPS_WORK/$name/model.h5" --checkpoint-dir "$XPS_WORK/$name/checkpoints" "$@" \
    >> "$XPS_WORK/$name.log" 2>&1
}
same_model() {  # name reference
  h5diff --exclude-path /provenance "$XPS_WORK/$2/model.h5" "$XPS_WORK/$1/model.h5" > "$XPS_WORK/$1.diff" ||
    { head -20 "$XPS_WORK/$1.diff"; fail "$1: model differs from $2"; }
  for f in "$XPS_WORK/$2/model_training"/training_*.h5; do
    h5diff "$f" "$XPS_WORK/$1/model_training/$(basename "$f")" > "$XPS_WORK/$1.diff" ||
      { head -20 "$XPS_WORK/$1.diff"; fail "$1: per-star results $(basename "$f") differ from $2"; }
  done
}

train 2 reference || { tail -20 "$XPS_WORK/reference.log"; fail "reference run failed"; }
grep -q "self-cleaning of" "$XPS_WORK/reference.log" || fail "no self-cleaning report"
steps=$(ls "$XPS_WORK/reference/checkpoints" | sed -n 's/checkpoint_0*\([0-9]*\)\.h5/\1/p' | sort -n | tail -1)
[[ "$steps" -ge 20 ]] || fail "expected at least 20 steps in the tiny recipe, the last checkpoint is at $steps"
[[ $(ls "$XPS_WORK/reference/checkpoints" | wc -l) -eq 2 ]] || fail "checkpoint_keep = 2 not honoured"

train 1 one_rank || { tail -20 "$XPS_WORK/one_rank.log"; fail "1-rank run failed"; }
same_model one_rank reference

# Killed (SIGKILL) after global steps 2, 3 (a checkpoint step), and at later steps spread over
# the phases (the last inside the coordinated phase), then resumed.
for kill_at in 2 3 $((steps / 2)) $((steps - 4)) $((steps - 1)); do
  name="killed_$kill_at"
  XPS_TRAIN_ABORT_AT_STEP=$kill_at train 2 "$name" && fail "$name: the run was not killed"
  [[ -f "$XPS_WORK/$name/model.h5" ]] && fail "$name: a killed run left a model file"
  train 2 "$name" --resume || { tail -20 "$XPS_WORK/$name.log"; fail "$name: resume failed"; }
  if [[ $kill_at -lt 3 ]]; then  # before the first checkpoint: a fresh start
    grep -q "starting afresh" "$XPS_WORK/$name.log" || fail "$name: should have started afresh"
  else
    grep -q "resuming at" "$XPS_WORK/$name.log" || fail "$name: did not resume from a checkpoint"
  fi
  same_model "$name" reference
done

# Resume at another rank count, after corrupting the newest checkpoint: the previous one is used.
name=corrupted
XPS_TRAIN_ABORT_AT_STEP=$((steps / 2 + 1)) train 2 "$name" && fail "$name: the run was not killed"
newest=$(ls "$XPS_WORK/$name/checkpoints"/checkpoint_*.h5 | sort | tail -1)
size=$(stat -c %s "$newest")
dd if=/dev/urandom of="$newest" bs=1 count=64 seek=$((size / 2)) conv=notrunc status=none
train 1 "$name" --resume || { tail -20 "$XPS_WORK/$name.log"; fail "$name: resume failed"; }
grep -q "resuming at" "$XPS_WORK/$name.log" || fail "$name: did not resume"
same_model "$name" reference

# Without --resume, a directory holding checkpoints is refused (exit 2) instead of mixed.
set +e
train 2 reference
status=$?
set -e
[[ $status -eq 2 ]] || fail "a second run into the same checkpoint directory should exit 2 (got $status)"
grep -q "already holds checkpoints" "$XPS_WORK/reference.log" || fail "no message about existing checkpoints"
# phaseN.update_extinction = false keeps R at its starting curve while the network learns.
only_phase1() {  # name model_lr update_extinction (lr 0: the starting model)
  train 1 "$1" --phase1.epochs 2 --phase1.model_lr "$2" --phase1.update_extinction "$3" --phase2.kind off \
    --phase3.kind off --phase4.kind off --phase5.kind off --phase6.kind off --phase7.kind off ||
    { tail -20 "$XPS_WORK/$1.log"; fail "$1 failed"; }
}
only_phase1 curve_start 0 true
only_phase1 curve_frozen 3e-3 false
only_phase1 curve_free 3e-3 true
h5diff "$XPS_WORK/curve_start/model.h5" "$XPS_WORK/curve_frozen/model.h5" /model/extinction_R > /dev/null ||
  fail "update_extinction = false changed R"
h5diff "$XPS_WORK/curve_start/model.h5" "$XPS_WORK/curve_frozen/model.h5" /model/nn/layer_0/weight > /dev/null &&
  fail "the network did not learn with update_extinction = false"
h5diff "$XPS_WORK/curve_start/model.h5" "$XPS_WORK/curve_free/model.h5" /model/extinction_R > /dev/null &&
  fail "R did not move with update_extinction = true"

echo "ok: identical models at 1 and 2 ranks and after kills at steps 2 3 $((steps / 2)) $((steps - 4)) $((steps - 1)) and a corrupted checkpoint"
