#!/usr/bin/env bash
# End to end: a sim VM with a guest vTPM (swtpm run by its sim host) migrates
# with `secmig send`/`recv`. Before: a secret sealed under a persistent key,
# an NV index written, PCR 16 extended in the guest's vTPM (tpm2-tools).
# After: all three readable on the destination's instance, the source's
# instance gone. And an aborted migration (a damaged page on arrival) keeps
# the source's vTPM serving the VM, with nothing left on the destination.
command -v swtpm >/dev/null && command -v tpm2_unseal >/dev/null || exit 77
. "$SMG_SRC/test/engine/lib.sh"

SEAL=0x81000010
NV=0x01500016
SECRET=guest-secret-4711
NVDATA=nvdata-0123456789

vtpm_tcti() { # HOSTDIR NAME -> the tcti of NAME's vTPM, or empty
	"$SECMIG" sim --state-dir "$1" vtpm "$2" 2>/dev/null | awk 'NF == 2 {print $2}'
}
tool() { # TCTI CMD... ; flush what the tool left loaded (no resource manager)
	local tcti=$1; shift
	TPM2TOOLS_TCTI=$tcti "$@" && TPM2TOOLS_TCTI=$tcti tpm2_flushcontext -t &&
		TPM2TOOLS_TCTI=$tcti tpm2_flushcontext -s
}

guest_setup() { # TCTI
	printf '%s' "$SECRET" >"$T/secret"
	printf '%s' "$NVDATA" >"$T/nv"
	tool "$1" tpm2_createprimary -Q -C o -c "$T/prim.ctx" &&
		tool "$1" tpm2_create -Q -C "$T/prim.ctx" -i "$T/secret" -u "$T/seal.pub" -r "$T/seal.priv" &&
		tool "$1" tpm2_load -Q -C "$T/prim.ctx" -u "$T/seal.pub" -r "$T/seal.priv" -c "$T/seal.ctx" &&
		tool "$1" tpm2_evictcontrol -Q -C o -c "$T/seal.ctx" $SEAL &&
		tool "$1" tpm2_nvdefine -Q $NV -C o -s 17 -a 'ownerread|ownerwrite' &&
		tool "$1" tpm2_nvwrite -Q $NV -C o -i "$T/nv" &&
		tool "$1" tpm2_pcrextend 16:sha256=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff ||
		err "guest vTPM set-up failed"
}
guest_check() { # TCTI WHAT
	rm -f "$T/unsealed" "$T/nvread"
	tool "$1" tpm2_unseal -c $SEAL -o "$T/unsealed" || err "$2: unseal failed"
	[ "$(cat "$T/unsealed" 2>/dev/null)" = "$SECRET" ] || err "$2: sealed secret differs"
	tool "$1" tpm2_nvread -Q $NV -C o -s 17 -o "$T/nvread" || err "$2: nvread failed"
	[ "$(cat "$T/nvread" 2>/dev/null)" = "$NVDATA" ] || err "$2: NV index differs"
	TPM2TOOLS_TCTI=$1 tpm2_pcrread sha256:16 >"$T/pcr.now" || err "$2: pcrread failed"
	cmp -s "$T/pcr.before" "$T/pcr.now" || err "$2: PCR 16 differs"
}

# 1. migration with the vTPM
vm vt1 16M uniform 5M "vtpm = yes"
TS=$(vtpm_tcti "$A" vt1)
[ -n "$TS" ] || { err "no vTPM for vt1 on the source"; exit 1; }
guest_setup "$TS"
TPM2TOOLS_TCTI=$TS tpm2_pcrread sha256:16 >"$T/pcr.before" || err "pcrread before"
grep -q "0x0\{64\}" "$T/pcr.before" && err "PCR 16 was not extended"
start_recv
send vt1
wait "$RECV_PID"
[ "$RC" = 0 ] || err "vtpm migration: send exit $RC"
expect_on B vt1 "vtpm migration"
TD=$(vtpm_tcti "$B" vt1)
[ -n "$TD" ] || err "no vTPM for vt1 on the destination"
[ "$TD" != "$TS" ] || err "destination reuses the source's instance"
guest_check "$TD" "destination"
TPM2TOOLS_TCTI=$TS tpm2_pcrread sha256:16 >/dev/null 2>&1 && err "the source's vTPM still answers"
[ -e "$A/vtpm/vt1" ] && err "the source's vTPM state directory is left"
[ -z "$(vtpm_tcti "$A" vt1)" ] || err "the source still lists a vTPM for vt1"

# 2. aborted migration: the source keeps its vTPM, the destination nothing
vm vt2 16M uniform 5M "vtpm = yes"
TS=$(vtpm_tcti "$A" vt2)
guest_setup "$TS"
TPM2TOOLS_TCTI=$TS tpm2_pcrread sha256:16 >"$T/pcr.before"
start_recv SMG_FI=dst_bad_root
send vt2
wait "$RECV_PID"
[ "$RC" = 7 ] || err "aborted: send exit $RC, want 7"
expect_on A vt2 "aborted"
[ "$(vtpm_tcti "$A" vt2)" = "$TS" ] || err "aborted: the source's vTPM changed"
guest_check "$TS" "source after abort"
[ -e "$B/vtpm/vt2" ] && err "aborted: the destination kept a vTPM state directory"
exit $fail
