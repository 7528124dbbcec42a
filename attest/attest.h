/* TPM access, quotes, TPM-resident ECDH keys, policy and the guest vTPM.
 *
 * Four parts, usable on their own:
 *  - smg_tpm_*      a host TPM through tpm2-tss ESAPI, any TCTI string
 *                   ("device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=N");
 *  - smg_evidence_* TPM2_Quote evidence: encoding, bounded decoding, checks;
 *  - smg_policy_*   the per-host policy file (enrolled peers, ACL, placement);
 *  - smg_attest_*   the TPM-bound handshake extension the transport calls;
 *  - smg_vtpm_* / smg_swtpm_*  a guest vTPM's state through swtpm's control
 *                   channel, and spawning swtpm instances.
 * PCRs are always the SHA-256 bank; a PCR set is a bit mask of PCRs 0..23. */
#ifndef SMG_ATTEST_H
#define SMG_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SMG_PCR_COUNT	      24
#define SMG_PCR_LEN	      32 /* SHA-256 */
#define SMG_PCR_MASK_ALL      0xffffffu
#define SMG_P256_POINT_LEN    65 /* uncompressed: 0x04 || X || Y */
#define SMG_P256_COORD_LEN    32
#define SMG_ATTEST_SECRET_LEN 32
#define SMG_TRANSCRIPT_MAX    64

/* Where tpm-enroll persists its two keys (owner hierarchy). */
#define SMG_TPM_HANDLE_ECDH 0x81018301u
#define SMG_TPM_HANDLE_AK   0x81018302u

/* ---- host TPM ------------------------------------------------------------ */
struct smg_tpm;

int smg_tpm_open(const char *tcti, struct smg_tpm **out);
void smg_tpm_close(struct smg_tpm *t);
/* Current values of the PCRs in mask, indexed by PCR number. */
int smg_tpm_read_pcrs(struct smg_tpm *t, uint32_t mask,
		      uint8_t vals[SMG_PCR_COUNT][SMG_PCR_LEN]);

struct smg_tpm_keys {
	uint8_t ecdh_pub[SMG_P256_POINT_LEN];
	uint8_t ak_pub[SMG_P256_POINT_LEN];
	uint32_t pcr_mask;
	uint8_t pcr[SMG_PCR_COUNT][SMG_PCR_LEN]; /* current values */
	bool created;	 /* this call made the keys (else they existed) */
	bool pcrs_match; /* current PCRs still satisfy the key's policy */
};

/* Create (once) under the storage primary key a P-256 ECDH key usable only
 * under PolicyPCR(mask) at today's PCR values, and a restricted P-256 ECDSA
 * attestation key; persist both. An existing pair is kept unless force. */
int smg_tpm_enroll(struct smg_tpm *t, uint32_t pcr_mask, bool force,
		   struct smg_tpm_keys *out);
/* Public halves of the enrolled keys; SMG_ERR_NOT_FOUND if not enrolled. */
int smg_tpm_load_keys(struct smg_tpm *t, uint32_t pcr_mask, struct smg_tpm_keys *out);
/* Z = x(k * peer_point) with the TPM-resident key, under its PCR policy.
 * A host whose PCRs changed since enrolment gets SMG_ERR_TPM. */
int smg_tpm_ecdh_zgen(struct smg_tpm *t, uint32_t pcr_mask,
		      const uint8_t peer_point[SMG_P256_POINT_LEN],
		      uint8_t z[SMG_P256_COORD_LEN]);
/* TPM2_Quote over mask with qual as qualifying data, encoded as evidence. */
int smg_tpm_quote(struct smg_tpm *t, uint32_t pcr_mask, const uint8_t *qual,
		  size_t qual_len, uint8_t *ev, size_t cap, size_t *ev_len);

/* ECDSA-SHA256 signature by the AK over msg, made inside the TPM: msg is
 * hashed by the TPM (TPM2_Hash, which refuses data that starts like a TPM
 * attestation structure and returns a ticket), then signed (TPM2_Sign with
 * that ticket), so a restricted AK can countersign secmig receipts without
 * being able to forge a quote. msg must not exceed 1024 bytes. */
int smg_tpm_sign(struct smg_tpm *t, const uint8_t *msg, size_t len,
		 uint8_t sig_r[SMG_P256_COORD_LEN], uint8_t sig_s[SMG_P256_COORD_LEN]);
/* The AK's public point (SMG_ERR_TPM if not enrolled). */
int smg_tpm_ak_public(struct smg_tpm *t, uint8_t ak[SMG_P256_POINT_LEN]);
/* Check an ECDSA-SHA256 P-256 signature (r, s) over msg: SMG_OK or
 * SMG_ERR_BAD_SIG (also for a key that is not a point on the curve). */
int smg_p256_verify(const uint8_t pub[SMG_P256_POINT_LEN], const uint8_t *msg, size_t len,
		    const uint8_t sig_r[SMG_P256_COORD_LEN],
		    const uint8_t sig_s[SMG_P256_COORD_LEN]);

/* ---- quote evidence ------------------------------------------------------ */
#define SMG_EVIDENCE_VERSION 1
#define SMG_EVIDENCE_MAX     1024
#define SMG_ATTEST_BLOB_MAX  768 /* a TPMS_ATTEST of a quote is ~150 bytes */
#define SMG_ATTEST_NAME_MAX  68	 /* TPM2B_NAME */
#define SMG_ATTEST_EXTRA_MAX 64	 /* TPM2B_DATA */
#define SMG_ATTEST_SEL_MAX   16	 /* TPML_PCR_SELECTION count */

struct smg_evidence {
	uint8_t ak_pub[SMG_P256_POINT_LEN];
	const uint8_t *attest; /* borrowed from the decoded buffer */
	size_t attest_len;
	uint8_t sig_r[SMG_P256_COORD_LEN];
	uint8_t sig_s[SMG_P256_COORD_LEN];
};

/* The parts of a TPMS_ATTEST (type quote) the verifier needs. */
struct smg_quote_attest {
	uint32_t magic;
	uint16_t type;
	uint8_t extra[SMG_ATTEST_EXTRA_MAX];
	size_t extra_len;
	uint64_t clock;
	uint32_t reset_count;
	uint32_t restart_count;
	uint32_t pcr_mask; /* SHA-256 bank; any other bank is rejected */
	uint8_t pcr_digest[SMG_PCR_LEN];
};

/* Pure bounded decoders (fuzzed). */
int smg_evidence_decode(const uint8_t *buf, size_t len, struct smg_evidence *out);
int smg_quote_parse_attest(const uint8_t *buf, size_t len, struct smg_quote_attest *out);
/* SHA-256 over the PCR values in mask, in ascending PCR order. */
void smg_pcr_digest(uint32_t mask, const uint8_t vals[SMG_PCR_COUNT][SMG_PCR_LEN],
		    uint8_t out[SMG_PCR_LEN]);

/* Every check, in order: decodes, AK equals the enrolled AK, AK signature,
 * TPM-generated quote, qualifying data, PCR selection, PCR digest vs golden.
 * The first failure is logged naming the check and peer, and returned:
 * SMG_ERR_ATTEST (exit code 4). why (optional)
 * receives the failed check's name. */
struct smg_evidence_expect {
	const char *peer;
	const uint8_t *ak_pub; /* SMG_P256_POINT_LEN */
	uint32_t pcr_mask;
	const uint8_t (*golden)[SMG_PCR_LEN]; /* [SMG_PCR_COUNT], by PCR index */
	const uint8_t *qual;
	size_t qual_len;
};
int smg_evidence_verify(const uint8_t *ev, size_t len,
			const struct smg_evidence_expect *exp, char *why, size_t why_len);

/* ---- policy file --------------------------------------------------------- */
#define SMG_POLICY_NAME_MAX    64
#define SMG_POLICY_LABELS_MAX  16
#define SMG_POLICY_LABEL_MAX   64
#define SMG_POLICY_DOMAINS_MAX 32
#define SMG_POLICY_DOMAIN_MAX  128
#define SMG_POLICY_PEERS_MAX   256
#define SMG_POLICY_LINE_MAX    1024
#define SMG_POLICY_FILE_MAX    (1024 * 1024)
#define SMG_POLICY_TCTI_MAX    256

struct smg_policy_peer {
	char name[SMG_POLICY_NAME_MAX];
	unsigned line; /* where its block starts */
	bool has_ecdh, has_ak;
	uint8_t ecdh_pub[SMG_P256_POINT_LEN];
	uint8_t ak_pub[SMG_P256_POINT_LEN];
	uint32_t pcr_mask; /* PCRs with a golden value */
	uint8_t golden[SMG_PCR_COUNT][SMG_PCR_LEN];
	size_t nlabels;
	char labels[SMG_POLICY_LABELS_MAX][SMG_POLICY_LABEL_MAX]; /* key=value */
	size_t ndomains;
	char domains[SMG_POLICY_DOMAINS_MAX][SMG_POLICY_DOMAIN_MAX]; /* globs */
	bool may_send; /* a "send" line is present: may migrate to us */
};

struct smg_policy {
	char host[SMG_POLICY_NAME_MAX];
	char tcti[SMG_POLICY_TCTI_MAX];
	uint32_t pcr_mask;   /* our own PCR policy; default 0,1,2,3,7 */
	bool software_mode;  /* "mode software": the explicit, logged opt-in */
	bool require_ticket; /* "tickets required": operator tickets (audit/) */
	char defs[SMG_POLICY_TCTI_MAX]; /* "defs PATH": host definitions file */
	size_t nlabels;
	char labels[SMG_POLICY_LABELS_MAX][SMG_POLICY_LABEL_MAX];
	size_t npeers;
	struct smg_policy_peer *peers;
};

#define SMG_PCR_MASK_DEFAULT ((1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 7))

/* Parse a policy from memory (pure, fuzzed). On error returns SMG_ERR_CONFIG
 * and writes "NAME:LINE: what" to err. */
int smg_policy_parse(const char *text, size_t len, const char *name,
		     struct smg_policy **out, char *err, size_t err_len);
int smg_policy_load(const char *path, struct smg_policy **out, char *err, size_t err_len);
void smg_policy_free(struct smg_policy *p);
const struct smg_policy_peer *smg_policy_find_peer(const struct smg_policy *p,
						   const char *name);
/* "0,1,2-4,7" -> mask. */
int smg_pcr_mask_parse(const char *s, uint32_t *mask);
/* Render a peer block for this host, as a peer's policy file enrols it. */
int smg_policy_format_peer(const char *name, const struct smg_tpm_keys *k,
			   const char *const *labels, size_t nlabels, char *out,
			   size_t cap);

enum smg_policy_role {
	SMG_POLICY_AS_SENDER,	/* we send; peer is the destination */
	SMG_POLICY_AS_RECEIVER, /* we receive; peer is the source */
};
/* Plan-time ACL and placement check. vm_labels are the VM's allowed
 * placement labels ("key=value"; for each key the destination must carry one
 * of the listed values); the destination is the peer (as sender) or us (as
 * receiver). Returns SMG_OK, SMG_ERR_UNKNOWN_PEER or SMG_ERR_POLICY with the
 * reason in why. */
int smg_policy_check_migration(const struct smg_policy *p, enum smg_policy_role role,
			       const char *peer, const char *domain,
			       const char *const *vm_labels, size_t n_vm_labels,
			       char *why, size_t why_len);

/* ---- TPM-bound handshake extension --------------------------------------- */
/* The TPM-bound mode's steps, for a handshake's mode-extension hook (the
 * CLI wires them into the transport: cli/tpm_ext.c):
 *   hello   -> our HELLO extension: version, mode, our host name and a fresh
 *              ephemeral P-256 point, kept in the handshake's own state;
 *   secret  -> after both HELLOs: KDF input from two ephemeral-static ECDHs,
 *              each computed by one host's TPM (Esys_ECDH_ZGen under its PCR
 *              policy) and by the other host in software against the
 *              enrolled public key; a software-mode peer, an unknown peer or
 *              a host whose PCRs moved fails here;
 *   evidence/verify -> a TPM2_Quote over our policy PCRs with qualifying data
 *              bound to the transcript hash and our role; the peer's checked
 *              against its enrolled AK and golden PCRs.
 * Safe for concurrent handshakes: each has its own struct smg_attest_hs
 * (its ephemeral key lives exactly as long as the handshake); TPM calls are
 * serialised. */
#define SMG_ATTEST_HELLO_VERSION 1
#define SMG_ATTEST_HELLO_MAX	 (3 + SMG_POLICY_NAME_MAX + SMG_P256_POINT_LEN)
enum smg_attest_mode {
	SMG_ATTEST_MODE_SOFTWARE = 0,
	SMG_ATTEST_MODE_TPM = 1,
};

struct smg_attest;
struct smg_attest_hs;

/* policy and tpm are borrowed and must outlive the attest object; the
 * policy's pcrs are the PCRs our key is bound to and our quotes cover. */
int smg_attest_new(const struct smg_policy *policy, struct smg_tpm *tpm,
		   struct smg_attest **out);
void smg_attest_free(struct smg_attest *a);

/* One handshake's state (a borrows; free it before a). */
int smg_attest_hs_new(struct smg_attest *a, struct smg_attest_hs **out);
void smg_attest_hs_free(struct smg_attest_hs *hs);
int smg_attest_hello(struct smg_attest_hs *hs, uint8_t *out, size_t cap, size_t *len);
/* our_ext must be the hello this hs made; its ephemeral key serves this one
 * secret (SMG_ERR_STATE otherwise). */
int smg_attest_secret(struct smg_attest_hs *hs, bool initiator, const char *peer,
		      const uint8_t *our_ext, size_t our_len, const uint8_t *peer_ext,
		      size_t peer_len, uint8_t out[SMG_ATTEST_SECRET_LEN]);
int smg_attest_evidence(struct smg_attest *a, bool initiator, const uint8_t *th,
			size_t th_len, uint8_t *out, size_t cap, size_t *len);
int smg_attest_verify(struct smg_attest *a, bool initiator, const char *peer,
		      const uint8_t *th, size_t th_len, const uint8_t *ev, size_t len);

/* smg_tpm_sign / smg_tpm_ak_public through the attest object, serialised
 * with the handshakes that share its TPM (receipts: audit/). */
int smg_attest_sign(struct smg_attest *a, const uint8_t *msg, size_t len,
		    uint8_t sig_r[SMG_P256_COORD_LEN], uint8_t sig_s[SMG_P256_COORD_LEN]);
int smg_attest_ak_public(struct smg_attest *a, uint8_t ak[SMG_P256_POINT_LEN]);

/* Pure decoder of a hello (fuzzed). */
struct smg_attest_hello {
	uint8_t version;
	uint8_t mode;
	char name[SMG_POLICY_NAME_MAX];
	uint8_t point[SMG_P256_POINT_LEN];
};
int smg_attest_hello_decode(const uint8_t *buf, size_t len, struct smg_attest_hello *out);

/* ---- swtpm instances and guest vTPM state -------------------------------- */
#define SMG_SWTPM_PATH_MAX 108 /* sun_path */
struct smg_swtpm {
	pid_t pid;
	char sock[SMG_SWTPM_PATH_MAX];	    /* TPM command channel: DIR/tpm.sock */
	char ctrl[SMG_SWTPM_PATH_MAX];	    /* control channel: DIR/tpm.sock.ctrl */
	char tcti[SMG_SWTPM_PATH_MAX + 16]; /* "swtpm:path=DIR/tpm.sock" (tpm2-tss) */
};

/* Spawn `swtpm socket --tpm2` with both channels on unix sockets (0600) in
 * dir, which becomes 0700; never TCP. startup: send TPM2_Startup (a fresh
 * host TPM); otherwise it waits for state blobs and CMD_INIT. */
int smg_swtpm_start(const char *dir, bool startup, struct smg_swtpm *out);
/* SIGTERM by PID, then reap it. */
int smg_swtpm_stop(struct smg_swtpm *s);
/* 0 once the process has exited (reaped), else SMG_ERR_BUSY. */
int smg_swtpm_wait_exit(struct smg_swtpm *s, unsigned timeout_ms);

#define SMG_VTPM_BLOB_MAX  (4u * 1024 * 1024)
#define SMG_VTPM_STATE_MAX (2 * SMG_VTPM_BLOB_MAX + 64)
#define SMG_VTPM_HASH_LEN  32

/* A vTPM's state: permanent and volatile blobs, as swtpm hands them out. */
struct smg_vtpm_state {
	uint8_t *perm;
	size_t perm_len;
	uint32_t perm_flags; /* PTM_STATE_FLAG_ENCRYPTED passes through */
	uint8_t *vol;
	size_t vol_len;
	uint32_t vol_flags;
};

/* Take the state of a running instance over its control socket. */
int smg_vtpm_get_state(const char *ctrl, struct smg_vtpm_state *out);
/* Load a state into an instance started with startup == false, then CMD_INIT:
 * it resumes exactly where the source stopped (PCRs, objects, NV). */
int smg_vtpm_put_state(const char *ctrl, const struct smg_vtpm_state *st);
/* CMD_SHUTDOWN: the instance saves nothing more and exits. */
int smg_vtpm_shutdown(const char *ctrl);
void smg_vtpm_state_free(struct smg_vtpm_state *st);
/* Wire form for the engine (sent inside the session) and its BLAKE2b-256
 * hash for the manifest. encode allocates *buf (free()). */
int smg_vtpm_state_encode(const struct smg_vtpm_state *st, uint8_t **buf, size_t *len);
int smg_vtpm_state_decode(const uint8_t *buf, size_t len, struct smg_vtpm_state *out);
void smg_vtpm_state_hash(const uint8_t *buf, size_t len, uint8_t out[SMG_VTPM_HASH_LEN]);
/* Pure parser of a CMD_GET_STATEBLOB response header (fuzzed). */
int smg_vtpm_parse_getstate_hdr(const uint8_t *buf, size_t len, uint32_t *tpm_result,
				uint32_t *flags, uint32_t *totlen, uint32_t *chunk);

#endif
