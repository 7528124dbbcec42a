/* Non-repudiation and operator authorization (DESIGN §7, §8; docs/audit.md).
 *
 *  - evidence   the source's signed manifest and the destination's
 *               countersigned receipt (Ed25519 host identities; the TPM's
 *               AK as well where the session is TPM-bound);
 *  - the log    one append-only, hash-chained, signed audit log per host
 *               (records of every migration attempt, refusal and suspicious
 *               event), its verification and the cross-check of both
 *               halves of a migration;
 *  - operators  Ed25519 operator keys with roles, enrolled by admins;
 *               operator-signed migration tickets, checked at plan time on
 *               both hosts, single use (a replay cache that survives restarts);
 *  - counters   suspicious activity counted in one file per host, for
 *               `secmig audit counters` and the metrics exporter.
 *
 * The engine calls the few smg_audit_* hooks below; the CLI opens the host
 * context (smg_audit_open) and runs `secmig audit|ticket|operator`. */
#ifndef SMG_AUDIT_H
#define SMG_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "secmig.pb-c.h"

struct json_object;
struct smg_attest;
struct smg_identity;
struct smg_policy;
struct smg_session;

#define SMG_AUDIT_DIGEST_LEN 32 /* BLAKE2b-256 */
#define SMG_AUDIT_SIG_LEN    64 /* Ed25519, or P-256 r || s */
#define SMG_AUDIT_KEY_LEN    32 /* Ed25519 public key */
#define SMG_AUDIT_AK_LEN     65 /* P-256 point, uncompressed */
#define SMG_AUDIT_NAME_MAX   64 /* host, operator and domain names */
#define SMG_AUDIT_ID_MAX     32 /* migration id: 32 hex characters */
#define SMG_AUDIT_DISKS_MAX  8
#define SMG_AUDIT_REASON_MAX 256

/* ==== signed evidence (audit/evidence.c, audit/receipt.c) ================ */

/* What the source's manifest claims, and about whom: the digest over it is
 * what the source signs and the destination's receipt names. */
struct smg_audit_claim {
	char id[SMG_AUDIT_ID_MAX + 1];
	uint8_t memory_root[SMG_AUDIT_DIGEST_LEN];
	unsigned n_disks;
	uint8_t disk_roots[SMG_AUDIT_DISKS_MAX][SMG_AUDIT_DIGEST_LEN];
	uint8_t config_hash[SMG_AUDIT_DIGEST_LEN];
	uint8_t device_hash[SMG_AUDIT_DIGEST_LEN];
	bool has_vtpm;
	uint8_t vtpm_hash[SMG_AUDIT_DIGEST_LEN];
	uint8_t transcript[SMG_AUDIT_DIGEST_LEN];
	char src[SMG_AUDIT_NAME_MAX + 1];
	uint8_t src_key[SMG_AUDIT_KEY_LEN];
	char dst[SMG_AUDIT_NAME_MAX + 1];
	uint8_t dst_key[SMG_AUDIT_KEY_LEN];
};
/* BLAKE2b-256 over the claim's canonical encoding (docs/audit.md). */
void smg_audit_claim_digest(const struct smg_audit_claim *c,
			    uint8_t out[SMG_AUDIT_DIGEST_LEN]);
/* The message the source's Ed25519 key signs. */
#define SMG_AUDIT_MANIFEST_CTX "secmig manifest v1"
bool smg_audit_manifest_sig_ok(const struct smg_audit_claim *c,
			       const uint8_t key[SMG_AUDIT_KEY_LEN],
			       const uint8_t sig[SMG_AUDIT_SIG_LEN]);

/* The destination's receipt: "I, dst, received and verified exactly the
 * VM whose manifest has this digest, in this session, at these times." */
#define SMG_RECEIPT_VERSION	    1
#define SMG_RECEIPT_MAX		    512
#define SMG_RECEIPT_CTX		    "secmig receipt v1"
#define SMG_RECEIPT_RESULT_VERIFIED 1 /* every root and hash matched */
#define SMG_RECEIPT_OUTCOME_READY   1 /* holds it paused; resumes on COMMIT */
struct smg_audit_receipt {
	char id[SMG_AUDIT_ID_MAX + 1];
	uint8_t manifest[SMG_AUDIT_DIGEST_LEN]; /* smg_audit_claim_digest */
	uint8_t transcript[SMG_AUDIT_DIGEST_LEN];
	char src[SMG_AUDIT_NAME_MAX + 1];
	uint8_t src_key[SMG_AUDIT_KEY_LEN];
	char dst[SMG_AUDIT_NAME_MAX + 1];
	uint8_t dst_key[SMG_AUDIT_KEY_LEN];
	uint8_t result, outcome;
	uint64_t plan_at_ms, verified_at_ms; /* destination's wall clock, unix ms */
	bool has_ticket;
	uint8_t ticket[SMG_AUDIT_DIGEST_LEN];
	bool tpm; /* the AK below countersigns it too */
	uint8_t ak[SMG_AUDIT_AK_LEN];
};
int smg_audit_receipt_encode(const struct smg_audit_receipt *r, uint8_t *buf, size_t cap,
			     size_t *len);
/* Pure bounded decoder (fuzzed: fuzz_audit_receipt). */
int smg_audit_receipt_decode(const uint8_t *buf, size_t len,
			     struct smg_audit_receipt *out);
/* Check the receipt blob's signatures: Ed25519 by key, and, when tpm_sig is
 * not NULL, ECDSA-SHA256 by the AK point ak. SMG_OK or SMG_ERR_BAD_SIG. */
int smg_audit_receipt_sig_check(const uint8_t *blob, size_t len,
				const uint8_t key[SMG_AUDIT_KEY_LEN],
				const uint8_t sig[SMG_AUDIT_SIG_LEN], const uint8_t *ak,
				const uint8_t *tpm_sig);

/* An Ed25519 public key as `secmig keygen` writes it (base64, 44 chars). */
int smg_audit_key_parse(const char *text, uint8_t key[SMG_AUDIT_KEY_LEN]);

/* ==== the host context ===================================================== */
struct smg_audit;

struct smg_audit_opts {
	const char *dir;  /* audit.log, audit.head, counters, tickets-used (0700) */
	const char *host; /* our name, for records written outside a session */
	const struct smg_identity *identity; /* signs every record */
	struct smg_attest *attest;	     /* TPM mode: the AK countersigns receipts */
	const struct smg_policy *policy;     /* labels for ticket scopes, the knob */
	const char *policy_path;	     /* hashed into every record */
	const char *operators_path; /* enrolled operators; NULL or absent: none */
	bool require_ticket;	    /* in addition to "tickets required" */
};
/* Loads the operators file (SMG_ERR_CONFIG on a bad one, with FILE:LINE)
 * and creates the directory; the log itself is opened per append. */
int smg_audit_open(const struct smg_audit_opts *o, struct smg_audit **out);
void smg_audit_close(struct smg_audit *a);

/* ==== engine hooks (audit/hooks.c) =========================================
 * One struct per migration attempt, embedded in the engine's state; every
 * hook accepts a NULL smg_audit (no log, no tickets) but always signs and
 * checks the evidence. */
struct smg_audit_mig {
	bool source;
	uint64_t started_ms, plan_at_ms; /* wall clock, unix ms */
	bool has_claim;
	struct smg_audit_claim claim;
	uint8_t manifest_digest[SMG_AUDIT_DIGEST_LEN];
	bool has_manifest_sig;
	uint8_t manifest_sig[SMG_AUDIT_SIG_LEN];
	uint8_t receipt[SMG_RECEIPT_MAX];
	size_t receipt_len;
	bool has_receipt_sig;
	uint8_t receipt_sig[SMG_AUDIT_SIG_LEN];
	bool has_tpm_sig;
	uint8_t receipt_tpm_sig[SMG_AUDIT_SIG_LEN];
	bool has_ticket;
	uint8_t ticket_digest[SMG_AUDIT_DIGEST_LEN];
	bool ticket_unspent; /* authorized, not yet in the replay cache */
	uint64_t ticket_not_after;
	char operator_name[SMG_AUDIT_NAME_MAX + 1];
	const char *stage; /* a refusal: "ticket", "policy", "plan"; else NULL */
	bool bad_sig;	   /* a signature check failed (counted) */
};
void smg_audit_mig_init(struct smg_audit_mig *m, bool source);

/* Plan time, both hosts, before any VM byte: the ticket (ticket_len 0: none)
 * against the enrolled operators, the scope, expiry, and whether one is
 * required. SMG_OK or SMG_ERR_POLICY with the reason in why. */
int smg_audit_admit(struct smg_audit *a, struct smg_audit_mig *m,
		    const struct smg_session *s, const char *domain,
		    const uint8_t *ticket, size_t ticket_len, char *why, size_t why_len);
/* Once the host accepted the plan: the admitted ticket goes into the
 * replay cache (single use). SMG_OK (also without a ticket), or
 * SMG_ERR_POLICY with the reason in why (already used, or the cache cannot
 * record it: fails closed). */
int smg_audit_spend(struct smg_audit *a, struct smg_audit_mig *m, char *why,
		    size_t why_len);
/* Source, before MANIFEST: sign it (sets mf->signature to m's buffer). */
int smg_audit_manifest_sign(struct smg_audit_mig *m, const struct smg_session *s,
			    Smg__Manifest *mf);
/* Destination, before READY: the manifest must carry the source's
 * signature over it and both identities. SMG_ERR_INTEGRITY otherwise. */
int smg_audit_manifest_check(struct smg_audit_mig *m, const struct smg_session *s,
			     const Smg__Manifest *mf);
/* Destination: countersign the receipt into READY (fields point into m). */
int smg_audit_receipt_sign(struct smg_audit *a, struct smg_audit_mig *m,
			   const struct smg_session *s, Smg__Ready *rd);
/* Source, before COMMIT: the receipt must name our manifest and session and
 * carry the destination's signature (and its enrolled AK's where the
 * session is TPM-bound). SMG_ERR_INTEGRITY otherwise. */
int smg_audit_receipt_check(struct smg_audit_mig *m, const struct smg_session *s,
			    const struct smg_policy *policy, const Smg__Ready *rd);

/* RESOLVE (audit/resolve.c): the destination signs its answer with its
 * host key (sets ans->signature to sig); the source acts on an answer only
 * if that signature is by the destination's enrolled key over this session
 * and answer. SMG_ERR_INTEGRITY otherwise: nothing is settled. */
int smg_audit_resolve_sign(const struct smg_session *s, Smg__ResolveAnswer *ans,
			   uint8_t sig[SMG_AUDIT_SIG_LEN]);
int smg_audit_resolve_check(const struct smg_session *s, const Smg__ResolveAnswer *ans);

/* How the attempt ended; outcome: source "done", "aborted", "in_doubt";
 * destination "resumed", "discarded", "committed"; either "refused". */
struct smg_audit_result {
	const char *id, *domain;
	const char *outcome;
	int err;
	const char *reason; /* ABORT detail or refusal, may be NULL */
	uint64_t downtime_ms, total_ms, bytes;
	unsigned rounds;
	bool verified;
};
/* Append the attempt's record (fsync-ed) before the caller reports it. */
void smg_audit_finish(struct smg_audit *a, struct smg_audit_mig *m,
		      const struct smg_session *s, const struct smg_audit_result *res);
/* Suspicious activity outside a session (refused handshakes, unknown
 * peers): a record (rate-limited per kind and address) and a counter. */
void smg_audit_alert(struct smg_audit *a, const char *addr, const char *peer, int err);
/* smg_session_opts.on_refused adapter: arg is the struct smg_audit. */
void smg_audit_on_refused(void *arg, const char *addr, const char *peer, int err);

/* ==== the log (audit/log.c, audit/record.c, audit/verify.c) ================ */
#define SMG_AUDIT_LOG_NAME     "audit.log"
#define SMG_AUDIT_HEAD_NAME    "audit.head"
#define SMG_AUDIT_RECORD_MAX   16384 /* one line: JSON, TAB, base64 signature */
#define SMG_AUDIT_ROTATE_BYTES (16u << 20)
#define SMG_AUDIT_RECORD_CTX   "secmig audit record v1"
#define SMG_AUDIT_CHAIN_CTX    "secmig audit chain v1"

/* One parsed record line (pure, bounded; fuzzed: fuzz_audit_record). The
 * JSON object stays owned by the record. */
struct smg_audit_record {
	uint64_t seq, time_ms;
	char event[16];
	char host[SMG_AUDIT_NAME_MAX + 1];
	uint8_t prev[SMG_AUDIT_DIGEST_LEN];
	uint8_t signer[SMG_AUDIT_KEY_LEN];
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	uint8_t hash[SMG_AUDIT_DIGEST_LEN]; /* of the whole line: next record's prev */
	bool sig_ok;			    /* signature by signer over the JSON */
	struct json_object *json;
};
int smg_audit_record_parse(const char *line, size_t len, struct smg_audit_record *out);
void smg_audit_record_free(struct smg_audit_record *r);

/* Close the current log and start a new one whose first record links to
 * the last of the old one (the chain is unbroken across files). */
int smg_audit_rotate(struct smg_audit *a, char *rotated, size_t cap);
/* The log files of dir, oldest first (rotated ones, then audit.log). */
int smg_audit_log_files(const char *dir, char ***files, size_t *n);
void smg_audit_log_files_free(char **files, size_t n);

/* Verification: every line parses, every signature holds, the signer is
 * one key (pin: that key), seq counts up by one, each prev is the hash of
 * the record before, the head (if given) is not ahead of the log. Each
 * problem goes to report with the file, line and record number; returns
 * the number of problems (0: intact) or a negative smg_err. */
struct smg_audit_chain;
typedef void (*smg_audit_report_fn)(void *arg, const char *file, unsigned line,
				    uint64_t seq, const char *what);
struct smg_audit_verify_opts {
	const uint8_t *pin; /* SMG_AUDIT_KEY_LEN: the host key the log must use */
	const char *head;   /* the head file to check the end against */
	smg_audit_report_fn report;
	void *arg;
};
int smg_audit_chain_load(const char *const *files, size_t n,
			 const struct smg_audit_verify_opts *o,
			 struct smg_audit_chain **out);
void smg_audit_chain_free(struct smg_audit_chain *c);
size_t smg_audit_chain_records(const struct smg_audit_chain *c);
const uint8_t *smg_audit_chain_signer(const struct smg_audit_chain *c);
/* Both halves of every migration in ours that the peer's log also holds,
 * and every migration the peer's log holds that ours should: ids, identities,
 * the manifest digest and both signatures, the receipt, the ticket and the
 * outcomes must agree. Returns problems found; *pairs the halves checked. */
int smg_audit_cross_check(const struct smg_audit_chain *ours,
			  const struct smg_audit_chain *peer,
			  const struct smg_audit_verify_opts *o, size_t *pairs);
/* `audit show`: records at or after since_ms, as text or JSON lines. */
int smg_audit_show(const char *const *files, size_t n, bool json, uint64_t since_ms,
		   const char *id, FILE *out);

/* ==== counters (audit/counters.c): the one place they live ================= */
enum smg_audit_counter {
	SMG_CNT_RECORDS = 0,   /* records written */
	SMG_CNT_MIGRATIONS,    /* attempts that got to a plan */
	SMG_CNT_MIGRATIONS_OK, /* done / resumed */
	SMG_CNT_MIGRATIONS_FAILED,
	SMG_CNT_REFUSED, /* refused at plan time (ticket, policy) */
	SMG_CNT_HANDSHAKE_REFUSED,
	SMG_CNT_UNKNOWN_PEER,
	SMG_CNT_BAD_TICKET,
	SMG_CNT_TAG_FAILURE, /* AEAD tag check failed on a frame */
	SMG_CNT_POLICY_DENIED,
	SMG_CNT_BAD_SIGNATURE, /* manifest or receipt signature */
	SMG_CNT_INTEGRITY,     /* manifest mismatch */
	SMG_CNT_PROTOCOL,
	SMG_CNT_SUPPRESSED, /* alert records left out by the rate limit */
	SMG_CNT_MAX_
};
const char *smg_audit_counter_name(enum smg_audit_counter c);
/* Read the counters file of dir (all zero if none yet). */
int smg_audit_counters_read(const char *dir, uint64_t out[SMG_CNT_MAX_]);

/* ==== operators and tickets (audit/operators.c, ticket.c, replay.c) ======== */
enum smg_op_role { SMG_OP_ADMIN = 1, SMG_OP_OPERATOR = 2 };
#define SMG_OP_PATTERNS_MAX    16
#define SMG_OP_PATTERN_MAX     128
#define SMG_OPERATORS_MAX      1024
#define SMG_OPERATORS_FILE_MAX (1024 * 1024)
#define SMG_OPERATORS_LINE_MAX 4096
#define SMG_OPERATOR_CTX       "secmig operator v1"

struct smg_operator {
	char name[SMG_AUDIT_NAME_MAX + 1];
	uint8_t key[SMG_AUDIT_KEY_LEN];
	enum smg_op_role role;
	size_t nvms, nfrom, nto;
	char vms[SMG_OP_PATTERNS_MAX][SMG_OP_PATTERN_MAX];  /* domain globs */
	char from[SMG_OP_PATTERNS_MAX][SMG_OP_PATTERN_MAX]; /* host glob or key=value */
	char to[SMG_OP_PATTERNS_MAX][SMG_OP_PATTERN_MAX];
	char by[SMG_AUDIT_NAME_MAX + 1]; /* the admin who enrolled it */
	unsigned line, revoked_line;	 /* revoked_line 0: not revoked */
};
struct smg_operators {
	struct smg_operator *v;
	size_t n;
};
/* Pure parser (fuzzed: fuzz_audit_operators). Every operator and revoke
 * line must carry a valid signature by an admin of the same file. */
int smg_operators_parse(const char *text, size_t len, const char *name,
			struct smg_operators **out, char *err, size_t err_len);
int smg_operators_load(const char *path, struct smg_operators **out, char *err,
		       size_t err_len);
void smg_operators_free(struct smg_operators *ops);
const struct smg_operator *smg_operators_find(const struct smg_operators *ops,
					      const char *name);
/* An admin-signed line: "operator NAME KEY vms=.. from=.. to=.. by=ADMIN
 * sig=..." (spec is the part after the key) or "revoke NAME by=.. sig=..". */
int smg_operator_sign_line(const struct smg_identity *admin, const char *admin_name,
			   const char *unsigned_line, char *out, size_t cap);

#define SMG_TICKET_VERSION   1
#define SMG_TICKET_MAX	     512
#define SMG_TICKET_NONCE_LEN 16
#define SMG_TICKET_CTX	     "secmig ticket v1"
#define SMG_TICKET_LIFE_MAX  (31ull * 24 * 3600) /* seconds */
#define SMG_TICKET_SKEW	     300		 /* seconds of clock skew allowed */
#define SMG_TICKET_TEXT_MAX  2048
struct smg_ticket {
	char operator_name[SMG_AUDIT_NAME_MAX + 1];
	uint8_t key[SMG_AUDIT_KEY_LEN];
	char vm[SMG_AUDIT_NAME_MAX + 1];
	char from[SMG_AUDIT_NAME_MAX + 1];
	char to[SMG_AUDIT_NAME_MAX + 1];
	uint64_t issued, not_after; /* unix seconds */
	uint8_t nonce[SMG_TICKET_NONCE_LEN];
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	size_t signed_len; /* bytes the signature covers */
};
/* Fill nonce, sign with the operator's key, encode. */
int smg_ticket_sign(struct smg_ticket *t, const struct smg_identity *op, uint8_t *buf,
		    size_t cap, size_t *len);
/* Pure bounded decoder (fuzzed: fuzz_audit_ticket); no signature check. */
int smg_ticket_decode(const uint8_t *buf, size_t len, struct smg_ticket *out);
bool smg_ticket_sig_ok(const uint8_t *buf, size_t len, const struct smg_ticket *t,
		       const uint8_t key[SMG_AUDIT_KEY_LEN]);
void smg_ticket_digest(const uint8_t *buf, size_t len, uint8_t out[SMG_AUDIT_DIGEST_LEN]);
/* The file form: an armoured base64 block; dearmor is bounded (fuzzed). */
int smg_ticket_armor(const uint8_t *buf, size_t len, char *out, size_t cap);
int smg_ticket_dearmor(const char *text, size_t len, uint8_t *buf, size_t cap,
		       size_t *out_len);

/* Who asks what: the migration the ticket must cover, with each host's
 * labels (from the policy) for the operator's from=/to= selectors. */
struct smg_ticket_scope {
	const char *domain;
	const char *src, *dst;
	const char *const *src_labels, *const *dst_labels;
	size_t n_src_labels, n_dst_labels;
	uint64_t now; /* unix seconds */
};
/* Signature by the enrolled key, role, revocation, scope and expiry (no
 * replay check). SMG_OK or SMG_ERR_POLICY with the reason in why. */
int smg_ticket_authorize(const struct smg_operators *ops, const uint8_t *buf, size_t len,
			 const struct smg_ticket_scope *sc, struct smg_ticket *out,
			 char *why, size_t why_len);
/* Single use: record digest in the replay cache at path (kept until
 * not_after has passed), SMG_ERR_REPLAY if it is there already. */
#define SMG_REPLAY_FILE_MAX (4u << 20)
int smg_replay_use(const char *path, const uint8_t digest[SMG_AUDIT_DIGEST_LEN],
		   uint64_t not_after, uint64_t now);
/* The same question without recording: SMG_ERR_REPLAY if it is there. */
int smg_replay_check(const char *path, const uint8_t digest[SMG_AUDIT_DIGEST_LEN],
		     uint64_t now);

#endif
