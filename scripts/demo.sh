#!/usr/bin/env bash
# The README's first command: set up, build, and run the demo: two sim hosts,
# a receiver and a sender on loopback; a 1 GiB VM with a running hot-spot
# workload migrates and is verified on the destination.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/scripts/setup.sh"
bash "$top/scripts/build.sh" release
"$top/build-release/secmig" version
exec "$top/build-release/secmig" demo "$@"
