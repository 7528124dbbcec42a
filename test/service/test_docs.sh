#!/usr/bin/env bash
# Man pages and completion keep up with the CLI: every command `secmig --help`
# lists has a page (help is in secmig(1)), every page scdoc built renders
# with `man --warnings` silent, and the bash completion sources cleanly,
# completes every command, and offers every flag the command's usage names.
set -u
fail=0
bad() { echo "FAIL: $*"; fail=1; }
man_dir=$SMG_BUILD/man
command -v scdoc >/dev/null || { echo "FAIL: scdoc missing (scripts/setup.sh)"; exit 1; }
[ -d "$man_dir" ] || { echo "FAIL: $man_dir missing: the build made no man pages"; exit 1; }

cmds=$("$SECMIG" --help | sed -n '/^commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p')
[ -n "$cmds" ] || { echo "FAIL: no commands in secmig --help"; exit 1; }
pages=(secmig.1 secmig.conf.5)
for c in $cmds; do
	[ "$c" = help ] && continue
	pages+=("secmig-$c.1")
done
for p in "${pages[@]}"; do
	[ -f "$SMG_SRC/man/$p.scd" ] || { bad "no man page source man/$p.scd"; continue; }
	[ -f "$man_dir/$p" ] || { bad "$p not built"; continue; }
	w=$(MANWIDTH=80 man --warnings -l "$man_dir/$p" 2>&1 >/dev/null)
	[ -z "$w" ] || bad "$p renders with warnings: $w"
	MANWIDTH=80 man -l "$man_dir/$p" 2>/dev/null | grep -q '^NAME' || bad "$p has no NAME section"
done
# every page scdoc built, also those of commands not in this binary yet
for p in "$man_dir"/*.[15]; do
	w=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null)
	[ -z "$w" ] || bad "$(basename "$p") renders with warnings: $w"
done
echo "man pages checked: ${pages[*]}"

comp=$SMG_SRC/dist/completion/secmig
out=$(bash -c "set -eu; source '$comp'; complete -p secmig" 2>&1) ||
	bad "completion does not source cleanly: $out"
grep -q -- '-F _secmig secmig' <<<"$out" || bad "completion not registered: $out"
# complete WORDS...: what the completion offers for the last word
complete_words() {
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_secmig; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
for c in $cmds; do
	complete_words secmig "${c:0:2}" | grep -qx "$c" || bad "completion misses command $c"
	# flags of this command (not "send --ticket" named in recv's text)
	want=$("$SECMIG" help "$c" | { [ "$c" = send ] && cat || sed 's/send --[a-z-]*//g'; } |
		grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	have=$(complete_words secmig "$c" --)
	for f in $want; do
		grep -qx -- "$f" <<<"$have" || bad "completion of '$c' misses $f"
	done
done
complete_words secmig send --storage-mode "" | grep -qx dbt || bad "no values for --storage-mode"
echo "completion checked for: $(echo $cmds)"
exit $fail
