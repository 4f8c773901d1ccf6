#!/usr/bin/env bash
# The main job on the embedded default, the whole chain on 2 MPI ranks:
#   mock surveys -> train (config/train_fast.ini) -> model-error selection -> calibration -> infer
#   -> validation.
# A labelled training sample (config/mock_training.ini, 40,000 stars) trains the model; inference
# then runs on all of it (the 20 % validation stars are inferred without their labels) and on the
# default survey (config/mock_default.ini); two partitions are also fitted with the paper's optimiser
# for the comparison in the report, and the labelled sample without its measured parallaxes
# (spectrum-only parallaxes: the report's truth-free check of the parallax errors). The model-error
# terms of inference are chosen against the labels of the training split
# (tools/select_model_error.py), and the catalogs' offsets and error floors are calibrated on the
# same split's labels and parallaxes (tools/calibrate_uncertainties.py), never against the truth. Outputs under $XPS_OUTPUT (default out/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ranks="${XPS_RANKS:-2}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mpirun_flags=(--oversubscribe)
[[ $(id -u) -eq 0 ]] && mpirun_flags+=(--allow-run-as-root)
run() { mpirun "${mpirun_flags[@]}" -np "$ranks" "$@"; }
output="${XPS_OUTPUT:-out}"
training_stars="${XPS_TRAINING_STARS:-40000}"
# XPS_SEED=N: other mock surveys than the embedded default (seed N for the survey, N + 1 for the
# labelled sample); unset: the seeds of config/mock_*.ini
survey_seed=() training_seed=()
if [[ -n "${XPS_SEED:-}" ]]; then
  survey_seed=(--survey.seed "$XPS_SEED") training_seed=(--survey.seed "$((XPS_SEED + 1))")
fi
rm -rf "$output/mock" "$output/training" "$output/model.h5" "$output/model_training" "$output/checkpoints" \
       "$output/catalog" "$output/catalog_survey" "$output/catalog_paper" "$output/catalog_spectro" \
       "$output/validation"
started=$(date +%s)

echo "== 1/7 mock surveys ($ranks ranks): default survey -> $output/mock, labelled sample -> $output/training"
run build/bin/xps_mock --config config/mock_default.ini "${survey_seed[@]}" --output "$output/mock"
run build/bin/xps_mock --config config/mock_training.ini "${training_seed[@]}" --stars "$training_stars" \
  --output "$output/training"

echo "== 2/7 training (config/train_fast.ini) -> $output/model.h5"
run build/bin/xps_train --config config/train_fast.ini --stars "$output/training" \
  --output "$output/model.h5" --checkpoint-dir "$output/checkpoints"

echo "== 3/7 model-error terms chosen against the training split's labels -> $output/model.h5"
/usr/bin/python3 tools/select_model_error.py --model "$output/model.h5" --stars "$output/training" \
  --launcher "mpirun ${mpirun_flags[*]} -np $ranks" --xps-infer build/bin/xps_infer

echo "== 4/7 offsets and error floors calibrated on the training split -> $output/model.h5"
/usr/bin/python3 tools/calibrate_uncertainties.py --model "$output/model.h5" --stars "$output/training" \
  --launcher "mpirun ${mpirun_flags[*]} -np $ranks" --xps-infer build/bin/xps_infer

echo "== 5/7 inference (fast optimiser) -> $output/catalog, $output/catalog_survey"
run build/bin/xps_infer --model "$output/model.h5" --stars "$output/training" --output "$output/catalog"
run build/bin/xps_infer --model "$output/model.h5" --stars "$output/mock" --output "$output/catalog_survey"

echo "== 6/7 the paper's optimiser on two partitions -> $output/catalog_paper; spectrum-only fits -> $output/catalog_spectro"
run build/bin/xps_infer --model "$output/model.h5" --stars "$output/training" --output "$output/catalog_paper" \
  --optimizer paper --partitions 0:2
run build/bin/xps_infer --model "$output/model.h5" --stars "$output/training" --output "$output/catalog_spectro" \
  --inference.use_parallax false

echo "== 7/7 validation report -> $output/validation"
/usr/bin/python3 tools/validate.py --stars "$output/training" --catalogs "$output/catalog" \
  --compare-catalogs "$output/catalog_paper" --spectro-catalogs "$output/catalog_spectro" \
  --output "$output/validation"

echo "== done in $(( $(date +%s) - started )) s (after the build)"
echo "   model:      $output/model.h5 (docs/model_file.md)"
echo "   catalogs:   $output/catalog/ (training sample), $output/catalog_survey/ (default survey); docs/catalog.md"
echo "   validation: $output/validation/validation_report.txt and validation.png"
