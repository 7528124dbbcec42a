/* Guest vTPM migration across two real swtpm instances: a secret sealed to a
 * persistent key, an NV index and an extended PCR on the source are all
 * there on the destination after get-state / encode / decode / put-state,
 * and the source instance is gone. Checked with tpm2-tools. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "attest/attest.h"
#include "base/base.h"
#include "check.h"
#include "tpm_env.h"

#define SEAL_HANDLE "0x81000010"
#define NV_INDEX    "0x01500016"
#define SECRET	    "guest-secret-4711"
#define NV_DATA	    "nvdata-0123456789"

static int tool(const struct tenv *e, const char *fmt, const char *arg)
{
	char cmd[900];

	int r;

	snprintf(cmd, sizeof(cmd), fmt, arg, arg, arg, arg);
	r = tenv_tool(e, cmd);
	/* no resource manager in front of swtpm: drop what the tool left loaded */
	if (tenv_tool(e, "tpm2_flushcontext -t") != 0 ||
	    tenv_tool(e, "tpm2_flushcontext -s") != 0)
		r = -1;
	return r;
}

static int read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return (int)n;
}

/* Seal a secret, write an NV index, extend PCR 16 — a guest's TPM use. */
static void guest_setup(const struct tenv *src, char *pcr_before, size_t cap)
{
	const char *d = src->dir;
	char p[256];

	snprintf(p, sizeof(p), "%s/secret.txt", d);
	FILE *f = fopen(p, "w");
	if (f != NULL) {
		fputs(SECRET, f);
		fclose(f);
	}
	snprintf(p, sizeof(p), "%s/nv.txt", d);
	if ((f = fopen(p, "w")) != NULL) {
		fputs(NV_DATA, f);
		fclose(f);
	}
	CHECK_EQ(tool(src, "tpm2_createprimary -Q -C o -c %s/prim.ctx", d), 0);
	CHECK_EQ(tool(src,
		      "tpm2_create -Q -C %s/prim.ctx -i %s/secret.txt -u %s/seal.pub -r "
		      "%s/seal.priv",
		      d),
		 0);
	CHECK_EQ(tool(src,
		      "tpm2_load -Q -C %s/prim.ctx -u %s/seal.pub -r %s/seal.priv -c "
		      "%s/seal.ctx",
		      d),
		 0);
	CHECK_EQ(tool(src, "tpm2_evictcontrol -Q -C o -c %s/seal.ctx " SEAL_HANDLE, d),
		 0);
	CHECK_EQ(tool(src,
		      "tpm2_nvdefine -Q " NV_INDEX
		      " -C o -s 17 -a 'ownerread|ownerwrite'%s",
		      ""),
		 0);
	CHECK_EQ(tool(src, "tpm2_nvwrite -Q " NV_INDEX " -C o -i %s/nv.txt", d), 0);
	CHECK_EQ(tool(src,
		      "tpm2_pcrextend 16:sha256="
		      "00112233445566778899aabbccddeeff"
		      "00112233445566778899aabbccddeeff%s",
		      ""),
		 0);
	CHECK_EQ(tool(src, "tpm2_pcrread sha256:16 > %s/pcr.txt", d), 0);
	snprintf(p, sizeof(p), "%s/pcr.txt", d);
	CHECK(read_file(p, pcr_before, cap) > 0);
}

static void guest_check(const struct tenv *dst, const char *pcr_before)
{
	const char *d = dst->dir;
	char p[256], buf[512];

	CHECK_EQ(tool(dst, "tpm2_unseal -c " SEAL_HANDLE " -o %s/unsealed.txt", d), 0);
	snprintf(p, sizeof(p), "%s/unsealed.txt", d);
	CHECK(read_file(p, buf, sizeof(buf)) > 0 && !strcmp(buf, SECRET));
	CHECK_EQ(tool(dst, "tpm2_nvread -Q " NV_INDEX " -C o -s 17 -o %s/nvread.txt", d),
		 0);
	snprintf(p, sizeof(p), "%s/nvread.txt", d);
	CHECK(read_file(p, buf, sizeof(buf)) > 0 && !strcmp(buf, NV_DATA));
	CHECK_EQ(tool(dst, "tpm2_pcrread sha256:16 > %s/pcr.txt", d), 0);
	snprintf(p, sizeof(p), "%s/pcr.txt", d);
	CHECK(read_file(p, buf, sizeof(buf)) > 0 && !strcmp(buf, pcr_before));
}

int main(void)
{
	struct tenv src = {0}, dst = {0}, other = {0};
	struct smg_vtpm_state st = {0}, st2 = {0};
	uint8_t *wire = NULL, h1[SMG_VTPM_HASH_LEN], h2[SMG_VTPM_HASH_LEN];
	char pcr_before[512] = "";
	size_t wire_len = 0;
	pid_t src_pid;

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	if (sodium_init() < 0 || tenv_start(&src, true) != 0 ||
	    tenv_start(&dst, false) != 0 || tenv_start(&other, true) != 0) {
		fprintf(stderr, "cannot start swtpm instances\n");
		goto out;
	}
	guest_setup(&src, pcr_before, sizeof(pcr_before));

	/* source: take the state, then the instance goes away */
	CHECK_EQ(smg_vtpm_get_state(src.sw.ctrl, &st), 0);
	CHECK(st.perm_len > 0 && st.vol_len > 0);
	CHECK_EQ(smg_vtpm_state_encode(&st, &wire, &wire_len), 0);
	smg_vtpm_state_hash(wire, wire_len, h1);
	src_pid = src.sw.pid;
	CHECK_EQ(smg_vtpm_shutdown(src.sw.ctrl), 0);
	CHECK_EQ(smg_swtpm_wait_exit(&src.sw, 5000), 0);
	CHECK(kill(src_pid, 0) != 0); /* reaped: the source instance is gone */
	CHECK_EQ(tenv_tool(&src, "tpm2_pcrread sha256:16 >/dev/null 2>&1"), 256);

	/* a running TPM refuses foreign state */
	CHECK_EQ(smg_vtpm_state_decode(wire, wire_len, &st2), 0);
	CHECK_EQ(smg_vtpm_put_state(other.sw.ctrl, &st2), SMG_ERR_TPM);

	/* destination: state in, then init; the hash matches what was sent */
	smg_vtpm_state_hash(wire, wire_len, h2);
	CHECK(memcmp(h1, h2, sizeof(h1)) == 0);
	CHECK_EQ(smg_vtpm_put_state(dst.sw.ctrl, &st2), 0);
	guest_check(&dst, pcr_before);
	smg_vtpm_state_free(&st2);

	/* wire form: corrupt / truncated / oversized are refused */
	wire[0] ^= 1;
	CHECK_EQ(smg_vtpm_state_decode(wire, wire_len, &st2), SMG_ERR_PROTO);
	wire[0] ^= 1;
	CHECK_EQ(smg_vtpm_state_decode(wire, wire_len - 1, &st2), SMG_ERR_TRUNCATED);
	CHECK(st2.perm == NULL);
	{
		uint8_t hdr[16];
		uint32_t res, fl, tot, ch;

		smg_store_be32(hdr, 0);
		smg_store_be32(hdr + 4, 0);
		smg_store_be32(hdr + 8, SMG_VTPM_BLOB_MAX + 1);
		smg_store_be32(hdr + 12, 10);
		CHECK_EQ(smg_vtpm_parse_getstate_hdr(hdr, 16, &res, &fl, &tot, &ch),
			 SMG_ERR_TOO_LONG);
		smg_store_be32(hdr + 8, 5);
		CHECK_EQ(smg_vtpm_parse_getstate_hdr(hdr, 16, &res, &fl, &tot, &ch),
			 SMG_ERR_PROTO);
		CHECK_EQ(smg_vtpm_parse_getstate_hdr(hdr, 15, &res, &fl, &tot, &ch),
			 SMG_ERR_TRUNCATED);
	}
	/* a dead control port is a clean error */
	CHECK(smg_vtpm_get_state(src.sw.ctrl, &st2) != 0);
out:
	free(wire);
	smg_vtpm_state_free(&st);
	smg_vtpm_state_free(&st2);
	tenv_stop(&src);
	tenv_stop(&dst);
	tenv_stop(&other);
	return check_result("test_attest_vtpm");
}
