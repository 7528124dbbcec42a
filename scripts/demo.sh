#!/usr/bin/env bash
# The README's first command: set up, build, and run the demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/scripts/setup.sh"
bash "$top/scripts/build.sh" release
"$top/build-release/secmig" version
