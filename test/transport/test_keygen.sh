#!/usr/bin/env bash
# secmig keygen: key pair files, modes, refusal to overwrite, --force, usage.
set -u
d=$(mktemp -d /tmp/smgkeygen.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $1"; fail=1; fi; }

pub=$("$SECMIG" keygen "$d/id"); rc=$?
check '[ $rc -eq 0 ]'
check '[ "$(stat -c %a "$d/id")" = 600 ]'
check '[ "$pub" = "$(cat "$d/id.pub")" ]'
check '[ ${#pub} -eq 44 ]'
"$SECMIG" keygen "$d/id" 2>/dev/null; rc=$?
check '[ $rc -eq 11 ]'                      # exists: config exit code
check '[ "$pub" = "$(cat "$d/id.pub")" ]'    # untouched
pub2=$("$SECMIG" keygen --force "$d/id"); rc=$?
check '[ $rc -eq 0 ] && [ "$pub2" != "$pub" ] && [ "$pub2" = "$(cat "$d/id.pub")" ]'
"$SECMIG" keygen 2>/dev/null; rc=$?
check '[ $rc -eq 2 ]'
"$SECMIG" keygen --bogus "$d/x" 2>/dev/null; rc=$?
check '[ $rc -eq 2 ]'
# a fresh host: keygen creates the key's directory, 0700 (README step 1)
"$SECMIG" keygen "$d/nodir/sub/id" >/dev/null 2>&1; rc=$?
check '[ $rc -eq 0 ] && [ -f "$d/nodir/sub/id" ]'
check '[ "$(stat -c %a "$d/nodir/sub")" = 700 ]'
# an existing directory is left as it is
chmod 755 "$d"
"$SECMIG" keygen "$d/id3" >/dev/null 2>&1
check '[ "$(stat -c %a "$d")" = 755 ]'
# a path through a file still fails
touch "$d/file"
"$SECMIG" keygen "$d/file/id" 2>/dev/null; rc=$?
check '[ $rc -eq 11 ]'
exit $fail
