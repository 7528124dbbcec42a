#!/usr/bin/env bash
# The libxl/libxc stream the xen backend synthesises, checked by Xen's own
# verify-stream-v2 (xen-utils-4.17); the checker must also reject damaged
# copies, so a pass means something. Exit 77 only if xen-utils is unobtainable.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/xenbed.sh"
gen=${SMG_BUILD:?}/test_xen_stream
[ -x "$gen" ] || { echo "missing $gen"; exit 1; }
"$gen" --emit /dev/null >/dev/null 2>&1
[ $? = 77 ] && { echo "built without libxen-dev"; exit 77; }
xb_fetch_verify
rc=$?
[ $rc = 0 ] || exit $rc
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail=0
"$gen" --emit "$t/s.bin" || { echo "FAIL: emit"; exit 1; }
if ! $XB_VERIFY -v -f libxl -i "$t/s.bin" >"$t/out" 2>&1; then
	echo "FAIL: verify-stream-v2 rejects our stream"; cat "$t/out"; fail=1
fi
cat "$t/out"
for want in 'Libxc Image Header: Version 3' 'Static data end' 'Page Data' \
	'TSC info' 'HVM context' 'HVM params' 'Libxl Record: End'; do
	grep -q "$want" "$t/out" || { echo "FAIL: no '$want' in the summary"; fail=1; }
done
size=$(stat -c %s "$t/s.bin")
head -c $((size - 8)) "$t/s.bin" >"$t/cut.bin"
$XB_VERIFY -q -f libxl -i "$t/cut.bin" && { echo "FAIL: truncated stream accepted"; fail=1; }
# Byte 48 is the domain header type (x86 HVM = 2): make it unknown.
cp "$t/s.bin" "$t/bad.bin"
printf '\x07' | dd of="$t/bad.bin" bs=1 seek=48 conv=notrunc 2>/dev/null
$XB_VERIFY -q -f libxl -i "$t/bad.bin" && { echo "FAIL: bad domain type accepted"; fail=1; }
exit $fail
