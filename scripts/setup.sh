#!/usr/bin/env bash
# Install everything secmig needs from Debian 12 packages. Idempotent: when
# every package is already there it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config ninja-build iputils-ping
	libsodium-dev liburing-dev libprotobuf-c-dev protobuf-c-compiler
	libtss2-dev libssl-dev libxen-dev libjson-c-dev libzstd-dev nettle-dev
	swtpm swtpm-tools tpm2-tools
	clang clang-format libclang-rt-14-dev
	iproute2 openssh-server openssh-client qemu-utils nbd-client
	qemu-system-x86 busybox-static cpio python3
	libsystemd-dev systemd scdoc man-db dpkg-dev fakeroot
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "setup: these Debian packages are missing: ${missing[*]}" >&2
	echo "setup: run as root (or: sudo apt-get install -y ${missing[*]})" >&2
	exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
