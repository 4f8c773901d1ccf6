#!/usr/bin/env bash
# tools/validate.py on a fake survey with known errors (make_fake_catalog.py): the recovered pull
# widths, the biased G bin reported FAIL and the others PASS, the bit-5 fractions among binaries
# and singles, the loss comparison with a second catalog set, the parallax-consistency check on a
# spectrum-only set (its injected width and star count), the validation split (vectorised vs
# the scalar reference on random int64 source_ids), an empty selection, and exit status 2 naming
# the file on unreadable input. Needs no build: runs under ctest or as
#   bash tests/integration/test_validate_tool.sh
here="$(cd "$(dirname "$0")" && pwd)"
: "${XPS_SOURCE:=$(cd "$here/../.." && pwd)}" "${XPS_BIN:=$XPS_SOURCE/build/bin}"
: "${XPS_WORK:=${TMPDIR:-/tmp}/xps_test_validate_tool}"
export XPS_SOURCE XPS_BIN XPS_WORK
source "$here/common.sh"
validate=("/usr/bin/python3" "$XPS_SOURCE/tools/validate.py")
fake="$XPS_WORK/fake"
/usr/bin/python3 "$here/make_fake_catalog.py" "$fake" > "$XPS_WORK/fake.log" \
  || fail "make_fake_catalog.py"

run() {  # run NAME ARGS...: validate.py into $XPS_WORK/NAME, stdout and stderr kept there
  local name=$1; shift
  "${validate[@]}" --stars "$fake/stars" --output "$XPS_WORK/$name" "$@" \
    > "$XPS_WORK/$name.out" 2> "$XPS_WORK/$name.err"
}
run all --catalogs "$fake/main" --all-stars --compare-catalogs "$fake/compare" \
  --spectro-catalogs "$fake/spectro" \
  || fail "validate.py --all-stars exited $? ($(cat "$XPS_WORK/all.err"))"
for f in validation_report.txt validation_summary.json validation.png; do
  [[ -s "$XPS_WORK/all/$f" ]] || fail "validate.py wrote no $f"
done
run default --catalogs "$fake/main" || fail "validate.py (validation stars) exited $?"
run salt --catalogs "$fake/main" --split-salt 5 || fail "validate.py --split-salt 5 exited $?"
run swapped --catalogs "$fake/compare" --compare-catalogs "$fake/main" --all-stars \
  || fail "validate.py with the compare set as main exited $?"
run empty --catalogs "$fake/main" --validation-fraction 0 || fail "empty selection exited $?"
grep -q "no stars" "$XPS_WORK/empty/validation_report.txt" || fail "empty selection: no 'no stars'"
grep -q "^6. Parallax consistency" "$XPS_WORK/all/validation_report.txt" || fail "no parallax-consistency section"

# Unreadable input: exit status 2 and the file named.
mkdir -p "$XPS_WORK/broken"
cp "$fake/main/"catalog_*.h5 "$XPS_WORK/broken/"
broken=$(ls "$XPS_WORK/broken/"catalog_*.h5 | tail -n 1)
head -c 3000 "$fake/main/$(basename "$broken")" > "$broken"
set +e
run broken --catalogs "$XPS_WORK/broken"; rc=$?
set -e
[[ $rc -eq 2 ]] || fail "truncated catalog: exit status $rc, expected 2"
grep -q "$(basename "$broken")" "$XPS_WORK/broken.err" || fail "truncated catalog not named: $(cat "$XPS_WORK/broken.err")"

PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 - "$XPS_WORK" "$fake/injected.json" "$XPS_SOURCE/tools/validate.py" "$here" <<'EOF' \
  || fail "validate.py results differ from the injected ones"
import importlib.util, json, math, sys
import numpy as np
work, injected_path, tool, here = sys.argv[1:]
sys.path.insert(0, here)
import make_fake_catalog as fake
spec = importlib.util.spec_from_file_location("validate", tool)
validate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(validate)
inj = json.load(open(injected_path))
load = lambda name: json.load(open(f"{work}/{name}/validation_summary.json"))
errors = []
def check(ok, message):
    if not ok:
        errors.append(message)

# The split: vectorised against the scalar reference, random int64 ids and the extremes.
rng = np.random.default_rng(3)
ids = np.concatenate([rng.integers(-2**63, 2**63 - 1, 20000, dtype=np.int64, endpoint=True),
                      np.array([0, 1, -1, 2**63 - 1, -2**63], dtype=np.int64)])
for fraction, salt in ((0.2, 0), (0.5, 5), (0.01, 123456789), (1.0, 0), (0.0, 0)):
    fast = validate.held_out(ids, fraction, salt)
    slow = np.array([fake.held_out_reference(i, fraction, salt) for i in ids])
    check(np.array_equal(fast, slow), f"held_out vectorised != scalar (fraction {fraction}, salt {salt}): "
          f"{int(np.sum(fast != slow))} differ")
    check(np.array_equal(slow, [validate.held_out_scalar(i, fraction, salt) for i in ids]),
          "validate.held_out_scalar != reference")
share = validate.held_out(ids[:20000], 0.2, 0).mean()
check(abs(share - 0.2) < 0.015, f"held_out share {share}, expected 0.2")

s = load("all")
check(s["n_stars"] == inj["n_stars"], f"n_stars {s['n_stars']} != {inj['n_stars']}")
scale = inj["pull_scale"]
lo, hi = inj["biased_bin"]
for key, p in s["pulls"].items():
    # Overall width: equal to the injected sample's, and to the scale within sampling error.
    check(abs(p["robust_std"] - inj["injected_robust_std"][key]) < 2e-3,
          f"{key}: robust pull sd {p['robust_std']} != injected {inj['injected_robust_std'][key]}")
    tolerance = 4 * 1.17 * scale / math.sqrt(p["n"])
    check(abs(p["robust_std"] - scale) < tolerance,
          f"{key}: robust pull sd {p['robust_std']} not {scale} within {tolerance:.3f}")
    check(p["verdict"] == "FAIL", f"{key}: verdict {p['verdict']}, expected FAIL (biased bin)")
    w = p["worst_bin"]
    check(w and (w["g_lo"], w["g_hi"]) == (lo, hi), f"{key}: worst bin {w}, expected G {lo}-{hi}")
    for b in p["bins"]:
        biased = (b["g_lo"], b["g_hi"]) == (lo, hi)
        name = f"{key} G {b['g_lo']}-{b['g_hi']}"
        check(abs(b["robust_std"] - scale) < 4 * 1.17 * scale / math.sqrt(b["n"]),
              f"{name}: robust sd {b['robust_std']}")
        check(abs(b["median_z"] - (inj["bias"] if biased else 0)) < 0.01, f"{name}: median z {b['median_z']}")
        # the median's sampling error: 1.2533 x the pulls' sd / sqrt(N) (the injected sd within sampling)
        check(abs(b["median_z_se"] * math.sqrt(b["n"]) / (1.2533 * scale) - 1) < 4 * 1.17 / math.sqrt(b["n"]),
              f"{name}: median standard error {b['median_z_se']} for {b['n']} stars")
        check(b["pass"] == (not biased), f"{name}: {'PASS' if b['pass'] else 'FAIL'} reported")
        check(b["checked"] == (b["g_hi"] <= 17), f"{name}: checked {b['checked']}")
    # Residuals in truth units: median = bias * err and scatter = scale * err in each bin.
    r = s["residuals"][key]
    factor = 1000.0 if key == "teff" else 1.0
    for b, err in zip(r["bins"], inj["errors"][key]):
        biased = (b["g_lo"], b["g_hi"]) == (lo, hi)
        err *= factor
        check(abs(b["median"] - (inj["bias"] * err if biased else 0)) < 0.01 * err,
              f"{key} G {b['g_lo']}: residual median {b['median']} (err {err})")
        check(abs(b["robust_scatter"] / err - scale) < 4 * 1.17 * scale / math.sqrt(b["n"]),
              f"{key} G {b['g_lo']}: residual scatter {b['robust_scatter']} (err {err})")
check(s["pulls"]["E"]["n"] == s["pulls"]["teff"]["n"] - 20, "E: the 20 NaN estimates not skipped")

# Bit 5: exactly the injected counts.
b, e = s["binaries"], inj["bit5"]
for group in ("singles", "binaries"):
    check((b[group]["n"], b[group]["n_flagged"]) == (e[group]["n"], e[group]["n_flagged"]),
          f"bit 5 {group}: {b[group]} != injected {e[group]}")
for got, want in zip(b["q_bins"], e["q_bins"]):
    check((got["n"], got["n_flagged"]) == (want["n"], want["n_flagged"])
          and abs(got["fraction"] - want["fraction"]) < 1e-12, f"bit 5 q bin: {got} != {want}")

# The loss comparison: the injected differences, PASS; and FAIL with the roles swapped.
for name, want, verdict in (("all", inj["loss"], "PASS"), ("swapped", inj["loss_swapped"], "FAIL")):
    got = load(name)["compare"]["fitted_in_both"]
    check(got["n"] == want["n"], f"{name}: {got['n']} stars fitted in both, injected {want['n']}")
    for k in ("median", "p99", "fraction_main_lower"):
        check(abs(got[k] - want[k]) < 1e-9, f"{name}: loss {k} {got[k]} != injected {want[k]}")
    check(got["verdict"] == verdict, f"{name}: loss verdict {got['verdict']}, expected {verdict}")
got, want = load("all")["compare"]["usable_in_both"], inj["loss_usable"]
check(got["n"] == want["n"] and got["n"] < inj["loss"]["n"], f"usable in both: {got['n']} != {want['n']}")
check(abs(got["median"] - want["median"]) < 1e-9 and abs(got["p99"] - want["p99"]) < 1e-9,
      f"usable in both: {got} != {want}")
c = s["compare"]
check(abs(c["wall_main"]["seconds"] - inj["wall"]["main_seconds"]) < 1e-9
      and abs(c["wall_compare"]["seconds"] - inj["wall"]["compare_seconds"]) < 1e-9, "wall seconds")
check(any("no catalog for stars_" in n for n in load("swapped")["notes"]),
      "missing catalog of a partition not noted")

# Parallax consistency: every injected star, and the injected width (stratified: within O(1/n)).
pc, want = s["parallax_consistency"], inj["consistency"]
check(pc["all"]["n"] == want["n_all_stars"], f"consistency: {pc['all']['n']} stars, injected {want['n_all_stars']}")
check(abs(pc["all"]["robust_std"] - want["scale"]) < 0.02,
      f"consistency: robust sd {pc['all']['robust_std']}, injected {want['scale']}")
check(abs(pc["all"]["median"]) < 0.01, f"consistency: median {pc['all']['median']}")
check(abs(pc["parallax_zero_point"] - (-0.017)) < 1e-12, "consistency: zero point not read")
check(sum(b["n"] for b in pc["bins"]) == pc["all"]["n"], "consistency: G bins do not add up")
# Binary candidates (spectrum-only parallax > measured by 3 sigma): the stars injected above it.
ex, want_ex = pc["excess"], want["excess"]
check(ex["z_min"] == want["excess_z"], f"excess: threshold {ex['z_min']}")
check(ex["singles"]["n_flagged"] == want_ex["singles"] and ex["binaries"]["n_flagged"] == want_ex["binaries"],
      f"excess: flagged singles/binaries {ex['singles']['n_flagged']}/{ex['binaries']['n_flagged']}, "
      f"injected {want_ex['singles']}/{want_ex['binaries']}")
check(want_ex["singles"] > 0 and want_ex["binaries"] > 0, f"excess: injection flags no one {want_ex}")
check([b["n_flagged"] for b in ex["q_bins"]] == want_ex["q_bins"],
      f"excess: q bins {[b['n_flagged'] for b in ex['q_bins']]}, injected {want_ex['q_bins']}")
check(ex["singles"]["n"] + ex["binaries"]["n"] == pc["all"]["n"], "excess: singles + binaries != all")
# The main catalogs' parallax_spectro holds the spectro catalogs' parallaxes: the same z, stars, counts.
j = pc.get("joint")
check(j is not None, "no comparison with the main catalogs' parallax_spectro")
if j:
    check(j["n"] == pc["all"]["n"] and j["relative_median"] == 0 and j["relative_robust_std"] == 0,
          f"parallax_spectro vs spectrum-only: {j}")
    for group in ("singles", "binaries"):
        check(j["excess"][group] == ex[group], f"parallax_spectro candidates {group}: {j['excess'][group]} != {ex[group]}")
check("parallax_consistency" not in load("default"), "consistency reported without --spectro-catalogs")

# The default selection: labelled stars of the held-out split (scalar reference counts).
for name, salt in (("default", "0"), ("salt", "5")):
    got = load(name)
    check(got["selection"] == "validation" and got["n_stars"] == inj["n_validation"][salt],
          f"{name}: {got['n_stars']} validation stars, expected {inj['n_validation'][salt]}")
check(load("empty")["n_stars"] == 0, "empty selection")
if errors:
    print("\n".join("FAIL: " + m for m in errors), file=sys.stderr)
    sys.exit(1)
print(f"validate.py: all checks passed")
EOF
