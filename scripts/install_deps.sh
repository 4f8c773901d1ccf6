#!/usr/bin/env bash
# Installs, from Debian packages only, what building and testing xpstellar needs.
# Idempotent: packages already present are skipped, so CI pays nothing on a warm machine.
# Usage: scripts/install_deps.sh [--bench]   (--bench adds the heavy comparison packages)
set -euo pipefail
packages=(build-essential cmake pkg-config
          openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
          libeigen3-dev libboost-program-options-dev libgtest-dev libhealpix-cxx-dev
          python3 python3-numpy python3-scipy python3-h5py python3-matplotlib python3-healpy python3-extinction python3-sklearn python3-astropy)
if [[ "${1:-}" == "--bench" ]]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install_deps: all ${#packages[@]} packages present"
fi
