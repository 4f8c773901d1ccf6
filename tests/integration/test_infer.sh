#!/usr/bin/env bash
# xps_infer (issue 5) end to end on a small mock with a tiny trained model:
#  - 1 rank and 2 ranks give byte-identical catalogs, rows in star-table order;
#  - a rerun skips finished partitions, --force with --partitions A:B redoes exactly those;
#  - a star table that cannot be read is named on stderr, the others finish, exit status 1, and no
#    catalog or temporary file is left for it; a range past the end does nothing and exits 0;
#  - stars that cannot be fitted get quality bit 7, their fit_status and NaN estimates, and no
#    fitted star has a NaN anywhere;
#  - --optimizer paper runs and is recorded.
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
echo "ok: 1 = 2 ranks byte for byte; skip, --force, ranges; unreadable table named; unfittable stars flagged"
