#!/usr/bin/env bash
# scripts/package.sh [BUILD_DIR] -> BUILD_DIR/secmig_VERSION_ARCH.deb
# The Debian package: a release build of the secmig binary and its man pages
# (default BUILD_DIR build-pkg/), packaged by CPack's DEB generator with
# dependencies from dpkg-shlibdeps. Install with: dpkg -i BUILD_DIR/secmig_*.deb
# (docs/operating.md). -DSMG_WITH_XEN=OFF in SMG_PKG_FLAGS leaves the xen
# backend, and the Xen libraries, out.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-pkg}
command -v dpkg-shlibdeps >/dev/null || { echo "package: apt-get install -y dpkg-dev" >&2; exit 1; }
command -v scdoc >/dev/null || { echo "package: apt-get install -y scdoc" >&2; exit 1; }
# shellcheck disable=SC2086 # SMG_PKG_FLAGS is a list of -D flags
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_INSTALL_PREFIX=/usr ${SMG_PKG_FLAGS:-} >/dev/null
cmake --build "$build" --target secmig man -j "$(nproc)"
rm -f "$build"/secmig_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/secmig_*.deb
