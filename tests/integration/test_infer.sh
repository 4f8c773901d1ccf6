#!/usr/bin/env bash
# xps_infer (issue 5) end to end on a small mock with a tiny trained model:
#  - 1 rank and 2 ranks give byte-identical catalogs, rows in star-table order;
#  - a rerun skips finished partitions, --force with --partitions A:B redoes exactly those;
#  - a star table that cannot be read is named on stderr, the others finish, exit status 1, and no
#    catalog or temporary file is left for it; a range past the end does nothing and exits 0;
#  - stars that cannot be fitted get quality bit 7, their fit_status and NaN estimates, and no
#    fitted star has a NaN anywhere;
#  - --optimizer paper runs and is recorded;
#  - tools/select_model_error.py picks the best-scored model-error terms into the model file, and
#    xps_infer uses them, records them, and gives the plain fits back with model_error.* = 0.
source "$(dirname "$0")/common.sh"
stars="$XPS_WORK/stars"
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_mock" --config "$XPS_SOURCE/config/mock_training.ini" --stars 3000 \
  --healpix-level 1 --output "$stars" > "$XPS_WORK/mock.log"
"${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_train" --config "$XPS_SOURCE/tests/data/train/train_tiny.ini" \
  --stars "$stars" --output "$XPS_WORK/model.h5" > "$XPS_WORK/train.log" 2>&1 ||
  { tail -20 "$XPS_WORK/train.log"; fail "training the test model"; }
# Damage two stars of the first table: every band missing, and one NaN flux.
first="$stars/$(ls "$stars" | sort -t_ -k3 -n | head -1)"
/usr/bin/python3 - "$first" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    flux, cov = f["stars/flux"], f["stars/flux_cov"]
    row = flux[0, :]; row[:] = np.nan; flux[0, :] = row
    c = cov[0, :]; c[:] = np.nan; cov[0, :] = c
    row = flux[1, :]; row[5] = np.nan; flux[1, :] = row
PY
infer() { "${MPIRUN[@]}" -np "$1" "$XPS_BIN/xps_infer" --model "$XPS_WORK/model.h5" --stars "$2" \
            --output "$3" --start.gmm_samples 64 "${@:4}"; }
infer 1 "$stars" "$XPS_WORK/cat1" > "$XPS_WORK/infer1.log" 2>&1 || { cat "$XPS_WORK/infer1.log"; fail "1-rank inference"; }
infer 2 "$stars" "$XPS_WORK/cat2" > "$XPS_WORK/infer2.log" 2>&1 || { cat "$XPS_WORK/infer2.log"; fail "2-rank inference"; }
count=$(ls "$stars"/stars_1_*.h5 | wc -l)
[[ $(ls "$XPS_WORK/cat2"/catalog_1_*.h5 | wc -l) -eq $count ]] || fail "not one catalog per star table"
for c in "$XPS_WORK/cat1"/catalog_1_*.h5; do
  h5diff -q "$c" "$XPS_WORK/cat2/$(basename "$c")" > /dev/null || fail "$(basename "$c") differs between 1 and 2 ranks"
  cmp -s "$c" "$XPS_WORK/cat2/$(basename "$c")" || fail "$(basename "$c") is not byte-identical between 1 and 2 ranks"
done

/usr/bin/python3 - "$stars" "$XPS_WORK/cat2" "$(basename "$first")" <<'PY' || fail "catalog contents"
import sys, glob, os, h5py, numpy as np
stars, cats, damaged = sys.argv[1:]
fitted_total = 0
for path in sorted(glob.glob(stars + "/stars_1_*.h5")):
    name = os.path.basename(path)
    with h5py.File(path) as s, h5py.File(cats + "/" + name.replace("stars_", "catalog_")) as f:
        c = f["catalog"]
        assert (c["gdr3_source_id"][:] == s["stars/source_id"][:]).all(), name + ": rows out of order"
        assert c.attrs["optimizer"] == "fast" and abs(c.attrs["parallax_zero_point"] + 0.017) < 1e-12
        q, status = c["quality_flags"][:], c["fit_status"][:]
        est, err = c["stellar_params_est"][:], c["stellar_params_err"][:]
        fitted = (q & 128) == 0
        fitted_total += fitted.sum()
        for column in ("stellar_params_est", "stellar_params_err", "stellar_params_icov_triu",
                       "stellar_params_cov_triu", "chi2_opt", "ln_prior", "chi2_dof", "loss_opt"):
            v = c[column][:]
            assert np.isfinite(v[fitted]).all(), f"{name}: NaN in {column} of a fitted star"
            assert np.isnan(v[~fitted]).all(), f"{name}: a star without a fit has a number in {column}"
        assert (err[fitted] > 0).all()
        # quality bits agree with the columns they summarise
        assert (((q & 8) > 0)[fitted] == (c["chi2_dof"][:][fitted] > 2)).all(), "bit 3"
        assert (((q & 64) > 0) == (status == 1)).all(), "bit 6 is fit_status 1"
        if name == damaged:
            assert q[0] == 128 and status[0] == 2, (q[0], status[0])   # no bands
            assert q[1] == 128 and status[1] == 3, (q[1], status[1])   # non-finite flux
            assert fitted[2:].all()
        # the covariance is the inverse of the inverse covariance, and PSD
        iu = np.triu_indices(5)
        for r in np.flatnonzero(fitted)[:20]:
            icov = np.zeros((5, 5)); icov[iu] = c["stellar_params_icov_triu"][r]; icov = icov + np.triu(icov, 1).T
            cov = np.zeros((5, 5)); cov[iu] = c["stellar_params_cov_triu"][r]; cov = cov + np.triu(cov, 1).T
            assert np.linalg.eigvalsh(cov).min() >= -1e-6 * np.abs(cov).max()
            assert np.allclose(np.sqrt(np.diag(cov)), err[r], rtol=1e-5)
            # float32 storage: the product is the identity where icov is well conditioned
            if np.linalg.cond(icov) < 1e4:
                assert np.abs(cov @ icov - np.eye(5)).max() < 1e-2, np.abs(cov @ icov - np.eye(5)).max()
assert fitted_total > 2800, fitted_total
PY

# A rerun skips everything; --force --partitions 1:3 redoes exactly two, to the same bytes.
before=$(md5sum "$XPS_WORK/cat2"/*.h5 | md5sum)
infer 2 "$stars" "$XPS_WORK/cat2" > "$XPS_WORK/rerun.log" 2>&1 || fail "rerun"
grep -q "0 partition(s) to do, $count already done" "$XPS_WORK/rerun.log" || { cat "$XPS_WORK/rerun.log"; fail "rerun did not skip"; }
infer 2 "$stars" "$XPS_WORK/cat2" --force --partitions 1:3 > "$XPS_WORK/force.log" 2>&1 || fail "--force"
grep -q "2 selected, 2 done" "$XPS_WORK/force.log" || { cat "$XPS_WORK/force.log"; fail "--force --partitions 1:3"; }
[[ "$(md5sum "$XPS_WORK/cat2"/*.h5 | md5sum)" == "$before" ]] || fail "redone partitions differ"
infer 1 "$stars" "$XPS_WORK/cat2" --partitions 1000: > "$XPS_WORK/past.log" 2>&1 || fail "a range past the end should exit 0"

# An unreadable star table: named, the others done, exit 1, nothing left behind for it.
cp -r "$stars" "$XPS_WORK/stars_bad"
victim="$XPS_WORK/stars_bad/$(ls "$XPS_WORK/stars_bad" | sort -t_ -k3 -n | sed -n 3p)"
truncate -s 5000 "$victim"
set +e
infer 2 "$XPS_WORK/stars_bad" "$XPS_WORK/cat_bad" > "$XPS_WORK/bad.log" 2>&1
status=$?
set -e
[[ $status -eq 1 ]] || { cat "$XPS_WORK/bad.log"; fail "an unreadable partition should give exit 1 (got $status)"; }
grep -q "$(basename "$victim")" "$XPS_WORK/bad.log" || fail "the unreadable file is not named"
[[ $(ls "$XPS_WORK/cat_bad" | grep -c '^catalog_1_.*\.h5$') -eq $((count - 1)) ]] || fail "the other partitions did not all finish"
ls "$XPS_WORK/cat_bad" | grep -q tmp && fail "a temporary file was left"
[[ -e "$XPS_WORK/cat_bad/$(basename "$victim" | sed 's/stars_/catalog_/')" ]] && fail "a catalog for the unreadable table"

# The paper's optimiser (short here) runs and is recorded.
infer 1 "$stars" "$XPS_WORK/cat_paper" --optimizer paper --partitions 2:3 --paper.adam_steps 300 \
  --paper.sgd_steps 50 > "$XPS_WORK/paper.log" 2>&1 || { cat "$XPS_WORK/paper.log"; fail "--optimizer paper"; }
/usr/bin/python3 -c "
import sys, glob, h5py
[p] = glob.glob('$XPS_WORK/cat_paper/catalog_1_*.h5')
assert h5py.File(p)['catalog'].attrs['optimizer'] == 'paper'
" || fail "paper catalog"
# tools/select_model_error.py on a copy of the model: it scores every candidate against the
# training split's labels, writes the best into /model/inflation (and nothing else), later fits
# use it and record it, and model_error.* keys set to 0 give back the plain fits exactly.
cp "$XPS_WORK/model.h5" "$XPS_WORK/model_sel.h5"
/usr/bin/python3 "$XPS_SOURCE/tools/select_model_error.py" --model "$XPS_WORK/model_sel.h5" --stars "$stars" \
  --launcher "${MPIRUN[*]} -np 2" --xps-infer "$XPS_BIN/xps_infer" --work "$XPS_WORK/selection" \
  --max-stars 100000 --smooth-grid 0.005,0.02 --level-grid 0.01,0.05 --infer-arg=--start.gmm_samples \
  --infer-arg=64 > "$XPS_WORK/select.log" 2>&1 || { cat "$XPS_WORK/select.log"; fail "select_model_error.py"; }
[[ $(grep -c "score" "$XPS_WORK/select.log") -ge 4 ]] || { cat "$XPS_WORK/select.log"; fail "too few candidates scored"; }
[[ -e "$XPS_WORK/selection" || -e "$XPS_WORK/model_sel.h5.tmp" ]] && fail "select_model_error.py left scratch files"
infer_selected() { "${MPIRUN[@]}" -np 2 "$XPS_BIN/xps_infer" --model "$XPS_WORK/model_sel.h5" --stars "$stars" \
                     --output "$1" --start.gmm_samples 64 "${@:2}"; }
infer_selected "$XPS_WORK/cat_sel" > "$XPS_WORK/infer_sel.log" 2>&1 || fail "inference with the selected model"
infer_selected "$XPS_WORK/cat_sel0" --model_error.level_frac 0 --model_error.smooth_frac 0 \
  > "$XPS_WORK/infer_sel0.log" 2>&1 || fail "inference with the model error switched off"
/usr/bin/python3 - "$XPS_WORK" <<'PY' || fail "model-error selection"
import sys, glob, os, h5py, numpy as np
work = sys.argv[1]
with h5py.File(work + "/model.h5") as old, h5py.File(work + "/model_sel.h5") as new:
    a = dict(new["model/inflation"].attrs)
    rows = [line.split() for line in a["model_error_selection"].splitlines()[1:]]
    best = min(rows, key=lambda r: float(r[2]))
    assert (a["smooth_frac"], a["level_frac"]) == (float(best[0]), float(best[1])), (best, dict(a))
    assert a["smooth_frac"] in (0.005, 0.02) and a["level_frac"] in (0.01, 0.05) and a["smooth_length_nm"] == 100
    assert len(rows) >= 3, rows
    for key in ("diag_frac", "joint_frac", "bp_frac", "rp_frac", "unwise_frac", "eigen_floor"):
        assert a[key] == old["model/inflation"].attrs[key], key
    for name in ("model/nn/layer_0/weight", "model/extinction_R", "prior/gmm/means"):
        assert np.array_equal(new[name][...], old[name][...]), name
ratios = []
for path in sorted(glob.glob(work + "/cat_sel/catalog_1_*.h5")):
    name = os.path.basename(path)
    with h5py.File(path) as s, h5py.File(work + "/cat_sel0/" + name) as z, h5py.File(work + "/cat2/" + name) as p:
        c = s["catalog"]
        assert c.attrs["model_error_level_frac"] == a["level_frac"], name
        assert c.attrs["model_error_smooth_frac"] == a["smooth_frac"], name
        assert z["catalog"].attrs["model_error_level_frac"] == 0, name
        for column in ("stellar_params_est", "stellar_params_err", "quality_flags"):
            assert np.array_equal(z["catalog/" + column][...], p["catalog/" + column][...], equal_nan=True), (name, column)
        fitted = (c["quality_flags"][...] & 128) == 0
        ratios.append(c["stellar_params_err"][...][fitted] / p["catalog/stellar_params_err"][...][fitted])
# a larger covariance: larger uncertainties (Teff, [Fe/H], E) for most fitted stars
ratio = np.nanmedian(np.concatenate(ratios), axis=0)
assert (ratio[[0, 1, 3]] > 1).all(), ratio
PY
set +e
/usr/bin/python3 "$XPS_SOURCE/tools/select_model_error.py" --model "$XPS_WORK/model_sel.h5" --stars "$XPS_WORK/nowhere" \
  > "$XPS_WORK/select_bad.log" 2>&1
status=$?
set -e
[[ $status -eq 2 ]] && grep -q "nowhere" "$XPS_WORK/select_bad.log" || fail "a missing star directory: exit 2 naming it"


# Calibration against the training split (tools/calibrate_uncertainties.py), on the uncalibrated
# catalogs of the selected model; xps_infer applies it unless --inference.calibrate false.
/usr/bin/python3 "$XPS_SOURCE/tools/calibrate_uncertainties.py" --model "$XPS_WORK/model_sel.h5" --stars "$stars" \
  --catalogs "$XPS_WORK/cat_sel" --min-stars 20 > "$XPS_WORK/calibrate.log" 2>&1 \
  || { cat "$XPS_WORK/calibrate.log"; fail "calibrate_uncertainties.py"; }
[[ -e "$XPS_WORK/model_sel.h5.tmp" ]] && fail "calibrate_uncertainties.py left its temporary file"
infer_selected "$XPS_WORK/cat_cal" > "$XPS_WORK/infer_cal.log" 2>&1 || fail "inference with the calibrated model"
infer_selected "$XPS_WORK/cat_uncal" --inference.calibrate false > "$XPS_WORK/infer_uncal.log" 2>&1 \
  || fail "inference with the calibration switched off"
/usr/bin/python3 - "$XPS_WORK" <<'PY' || fail "calibration applied by xps_infer"
import sys, glob, os, h5py, numpy as np
work = sys.argv[1]
with h5py.File(work + "/model_sel.h5") as m:
    t = {k: m["calibration/" + k][...] for k in ("teff_edges_kK", "logg_edges", "offset", "floor", "parallax_offset_frac", "parallax_floor_frac", "stars",
                                                 "feh_knots", "feh_offset")}
assert len(t["feh_knots"]) >= 2 and np.abs(t["feh_offset"]).max() > 0, "no [Fe/H] curve fitted"
assert (t["stars"] > 0).any(), "no cell has its own values"
assert (t["floor"] > 0).any() and (t["parallax_floor_frac"] > 0).any(), t
checked = recombined = 0
for path in sorted(glob.glob(work + "/cat_cal/catalog_1_*.h5")):
    name = os.path.basename(path)
    with h5py.File(path) as cal, h5py.File(work + "/cat_uncal/" + name) as unc, \
         h5py.File(work + "/cat_sel/" + name) as sel, h5py.File(glob.glob(work + "/stars/" + name.replace("catalog_", "stars_"))[0]) as s:
        assert cal["catalog"].attrs["calibrated"] == 1 and unc["catalog"].attrs["calibrated"] == 0, name
        for column in ("stellar_params_est", "stellar_params_err", "stellar_params_cov_triu", "quality_flags", "loss_opt"):
            assert np.array_equal(unc["catalog/" + column][...], sel["catalog/" + column][...], equal_nan=True), (name, column)
        est0, err0 = unc["catalog/stellar_params_est"][...].astype(float), unc["catalog/stellar_params_err"][...].astype(float)
        est1, err1 = cal["catalog/stellar_params_est"][...].astype(float), cal["catalog/stellar_params_err"][...].astype(float)
        fitted = (unc["catalog/quality_flags"][...] & 128) == 0
        assert np.array_equal(fitted, (cal["catalog/quality_flags"][...] & 128) == 0)
        assert np.isnan(est1[~fitted]).all() and np.isfinite(est1[fitted]).all() and np.isfinite(err1[fitted]).all()
        cell = np.digitize(est0[:, 0], t["teff_edges_kK"]) * (len(t["logg_edges"]) + 1) + np.digitize(est0[:, 2], t["logg_edges"])
        f = fitted
        # the cell's offsets plus the [Fe/H] curve (np.interp: linear, the end values beyond the knots)
        curve = np.stack([np.interp(est0[:, 1], t["feh_knots"], t["feh_offset"][:, k]) for k in range(4)], axis=1)
        assert np.allclose(est1[f, :4], est0[f, :4] - t["offset"][cell[f]] - curve[f], rtol=0, atol=2e-6 * (1 + np.abs(est0[f, :4]))), name
        assert np.allclose(err1[f, :4] ** 2, err0[f, :4] ** 2 + t["floor"][cell[f]] ** 2, rtol=1e-4, atol=1e-12), name
        # The parallax: the spectrophotometric one taken out of the fit's, calibrated, and combined
        # with the measurement afresh (no measurement: the spectrophotometric one calibrated).
        plx_err = s["stars/parallax_error"][...].astype(float)
        measured = s["stars/parallax"][...].astype(float) - unc["catalog"].attrs["parallax_zero_point"]
        has = np.isfinite(plx_err) & (plx_err > 0) & np.isfinite(measured)
        v0, m2 = err0[:, 4] ** 2, plx_err ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            room = m2 - v0
            s2 = np.where(has, v0 * m2 / room, v0)
            sp = np.where(has, est0[:, 4] + (est0[:, 4] - measured) * s2 / m2, est0[:, 4])
            sp = sp - t["parallax_offset_frac"][cell] * est0[:, 4]
            s2 = s2 + (t["parallax_floor_frac"][cell] * est0[:, 4]) ** 2
            v1 = np.where(has, 1 / (1 / s2 + 1 / m2), s2)
            p1 = np.where(has, v1 * (sp / s2 + measured / m2), sp)
        clear = f & (~has | (room > 1e-3 * m2))  # away from the no-spectral-information cut
        # parallax_spectro: the calibrated spectrophotometric parallax (sp, s2 above) in the calibrated
        # catalog, the raw one taken out of the fit in the uncalibrated catalog
        assert np.allclose(cal["catalog/parallax_spectro"][...][clear], sp[clear], rtol=1e-4, atol=0), name
        assert np.allclose(cal["catalog/parallax_spectro_error"][...][clear] ** 2, s2[clear], rtol=1e-3), name
        with np.errstate(invalid="ignore", divide="ignore"):
            raw_s2 = np.where(has, v0 * m2 / room, v0)
            raw_sp = np.where(has, est0[:, 4] + (est0[:, 4] - measured) * raw_s2 / m2, est0[:, 4])
        assert np.allclose(unc["catalog/parallax_spectro"][...][clear], raw_sp[clear], rtol=1e-4, atol=0), name
        assert np.allclose(unc["catalog/parallax_spectro_error"][...][clear] ** 2, raw_s2[clear], rtol=1e-3), name
        assert np.isnan(cal["catalog/parallax_spectro"][...][~f]).all(), "not fitted: no spectrophotometric parallax"
        assert np.allclose(est1[clear, 4], p1[clear], rtol=1e-4, atol=0), name
        assert np.allclose(err1[clear, 4] ** 2, v1[clear], rtol=1e-3), name
        assert (err1[f & has, 4] <= plx_err[f & has] * (1 + 1e-5)).all(), "a parallax less precise than its measurement"
        kept = f & has & (room < 1e-7 * m2)
        assert np.array_equal(est1[kept, 4], est0[kept, 4]), "the spectrum adds nothing: the fit's parallax"
        recombined += clear.sum()
        iu = np.triu_indices(5)
        for r in np.flatnonzero(f)[:10]:
            cov = np.zeros((5, 5)); cov[iu] = cal["catalog/stellar_params_cov_triu"][r]; cov = cov + np.triu(cov, 1).T
            icov = np.zeros((5, 5)); icov[iu] = cal["catalog/stellar_params_icov_triu"][r]; icov = icov + np.triu(icov, 1).T
            assert np.allclose(np.sqrt(np.diag(cov)), err1[r], rtol=1e-5)
            if np.linalg.cond(cov) < 1e4:
                assert np.abs(cov @ icov - np.eye(5)).max() < 1e-2
        checked += f.sum()
assert checked > 2800 and recombined > 2800, (checked, recombined)
PY

# Choosing the model-error terms again removes the calibration made for the old ones.
/usr/bin/python3 "$XPS_SOURCE/tools/select_model_error.py" --model "$XPS_WORK/model_sel.h5" --stars "$stars" \
  --launcher "${MPIRUN[*]} -np 2" --xps-infer "$XPS_BIN/xps_infer" --work "$XPS_WORK/reselection" \
  --max-stars 100000 --smooth-grid 0.02 --level-grid 0.05 --infer-arg=--start.gmm_samples \
  --infer-arg=64 > "$XPS_WORK/reselect.log" 2>&1 || { cat "$XPS_WORK/reselect.log"; fail "select_model_error.py again"; }
grep -q "removed /calibration" "$XPS_WORK/reselect.log" || fail "no word of the removed calibration"
/usr/bin/python3 -c "import h5py, sys; sys.exit('calibration' in h5py.File(sys.argv[1], 'r'))" "$XPS_WORK/model_sel.h5" \
  || fail "a calibration made for the old model-error terms was kept"

echo "ok: 1 = 2 ranks byte for byte; skip, --force, ranges; unreadable table named; unfittable stars flagged; model-error selection; calibration"
