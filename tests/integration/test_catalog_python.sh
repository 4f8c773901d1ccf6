#!/usr/bin/env bash
# The catalog through Python: tests/tools/catalog_fixture writes a catalog (row blocks in reverse
# order) and an empty one; check_catalog_python.py reads them with h5py, checks names, dtypes,
# shapes, values, units and attributes against docs/catalog.md, and exports them with astropy to
# FITS (as users do for TOPCAT) and reads that back.
source "$(dirname "$0")/common.sh"
fixture="${XPS_TEST_BIN:-$XPS_BIN/../tests/bin}/catalog_fixture"
[[ -x "$fixture" ]] || fail "no $fixture (built with the unit tests)"
"$fixture" "$XPS_WORK" 1000 || fail "catalog_fixture"
[[ -f "$XPS_WORK/catalog_5_1234.h5" && -f "$XPS_WORK/catalog_5_0.h5" ]] || fail "no catalogs written"
compgen -G "$XPS_WORK/*.tmp" > /dev/null && fail "temporary files left behind: $(ls "$XPS_WORK"/*.tmp)"
/usr/bin/python3 "$XPS_SOURCE/tests/integration/check_catalog_python.py" \
  "$XPS_WORK/catalog_5_1234.h5" 1000 "$XPS_WORK/catalog_5_0.h5" "$XPS_WORK" \
  || fail "check_catalog_python.py"
echo "catalog through h5py and astropy: ok"
