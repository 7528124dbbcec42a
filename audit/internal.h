/* audit/ internals shared by its files and the fuzzers. */
#ifndef SMG_AUDIT_INTERNAL_H
#define SMG_AUDIT_INTERNAL_H

#include <pthread.h>

#include <json-c/json.h>

#include "audit/audit.h"
#include "base/base.h"

#define AUDIT_COUNTERS_NAME "counters"
#define AUDIT_REPLAY_NAME   "tickets-used"
#define AUDIT_RL_SLOTS	    64	  /* (kind, address) pairs the rate limit tracks */
#define AUDIT_RL_BURST	    5	  /* records per slot per window */
#define AUDIT_RL_WINDOW_MS  60000 /* then one record carries "suppressed" */
#define AUDIT_RL_GLOBAL	    60	  /* records per window over every slot */

struct audit_rl_slot {
	char key[96];
	uint64_t window_start;
	unsigned used, suppressed;
};

struct smg_audit {
	char dir[512];
	char host[SMG_AUDIT_NAME_MAX + 1];
	const struct smg_identity *identity;
	struct smg_attest *attest;
	const struct smg_policy *policy;
	bool require_ticket;
	uint8_t policy_hash[SMG_AUDIT_DIGEST_LEN];
	bool has_policy_hash;
	struct smg_operators *ops; /* NULL: none enrolled */
	pthread_mutex_t lock;	   /* the rate-limit table */
	struct audit_rl_slot rl[AUDIT_RL_SLOTS];
	uint64_t rl_global_start;
	unsigned rl_global_used;
};

/* Wall clock, unix ms. */
uint64_t audit_wall_ms(void);
/* Standard base64 (sodium's original variant, padded). */
void audit_b64(const uint8_t *p, size_t n, char *out, size_t cap);
int audit_unb64(const char *s, size_t slen, uint8_t *out, size_t n);
bool audit_name_ok(const char *s, size_t max);
void audit_hash(const void *p, size_t n, uint8_t out[SMG_AUDIT_DIGEST_LEN]);

/* Named fault-injection points of the evidence (SMG_FI=name, as the engine's). */
bool audit_fault_on(const char *name);
/* Fault "wrong key" on the TPM side: an ECDSA-SHA256 signature by a fresh
 * software P-256 key instead of the AK. */
int audit_fault_p256_sign(const uint8_t *msg, size_t len, uint8_t sig[SMG_AUDIT_SIG_LEN]);

/* Append one record (the object gets seq, prev, time, host, signer);
 * takes ownership of rec. bump: counters to add one to, under the same lock. */
int audit_log_append(struct smg_audit *a, struct json_object *rec,
		     const enum smg_audit_counter *bump, size_t nbump);
/* Counters, with the lock held (log.c) or taking it (a rate-limited alert). */
int audit_counters_bump_locked(const char *dir, const enum smg_audit_counter *bump,
			       size_t nbump);
int audit_counters_bump(const char *dir, const enum smg_audit_counter *bump,
			size_t nbump);
/* Rate limit per (kind, address): true if a record may be written now;
 * *suppressed receives how many were left out since the last one. */
bool audit_rl_allow(struct smg_audit *a, const char *kind, const char *addr,
		    unsigned *suppressed);

/* JSON helpers for records. */
void audit_json_str(struct json_object *o, const char *k, const char *v);
void audit_json_u64(struct json_object *o, const char *k, uint64_t v);
void audit_json_hex(struct json_object *o, const char *k, const uint8_t *p, size_t n);
void audit_json_b64(struct json_object *o, const char *k, const uint8_t *p, size_t n);
/* Field getters: false if absent or of the wrong type/length. */
const char *audit_json_get_str(struct json_object *o, const char *k);
bool audit_json_get_u64(struct json_object *o, const char *k, uint64_t *v);
bool audit_json_get_hex(struct json_object *o, const char *k, uint8_t *out, size_t n);
bool audit_json_get_b64(struct json_object *o, const char *k, uint8_t *out, size_t n);
/* Variable-length base64 field into out (cap); *len its size. */
bool audit_json_get_b64v(struct json_object *o, const char *k, uint8_t *out, size_t cap,
			 size_t *len);

/* The messages the manifest and receipt signatures cover (evidence.c). */
void audit_manifest_msg(const uint8_t digest[SMG_AUDIT_DIGEST_LEN], uint8_t *msg,
			size_t *len);
#define AUDIT_MANIFEST_MSG_LEN (sizeof(SMG_AUDIT_MANIFEST_CTX) + SMG_AUDIT_DIGEST_LEN)
int audit_receipt_msg(const uint8_t *blob, size_t len, uint8_t *msg, size_t cap,
		      size_t *mlen);
#define AUDIT_RECEIPT_MSG_MAX (sizeof(SMG_RECEIPT_CTX) + SMG_RECEIPT_MAX)

/* The lock every writer of dir takes (log, head, counters, replay cache). */
int audit_lock(const char *dir, int *fd);
void audit_unlock(int fd);
/* Write path atomically (tmp, fsync, rename, fsync dir), mode 0600. */
int audit_write_atomic(const char *dir, const char *name, const void *buf, size_t len);
/* Read a whole small file (at most max bytes; NUL-terminated). */
int audit_read_file(const char *path, size_t max, char **buf, size_t *len);

/* Serialise obj, sign it and lay out the line (with its '\n') in out;
 * hash receives the chain hash of the line (record.c). */
int audit_record_format(struct json_object *obj, const struct smg_identity *id, char *out,
			size_t cap, size_t *len, uint8_t hash[SMG_AUDIT_DIGEST_LEN]);

/* The replay cache's lines ("HEX-DIGEST NOT_AFTER\n"): whether digest is
 * there (unexpired), and the unexpired lines copied to keep (room for
 * len bytes). SMG_ERR_PROTO on any malformed line (replay.c; fuzzed). */
int audit_replay_scan(const char *text, size_t len,
		      const uint8_t digest[SMG_AUDIT_DIGEST_LEN], uint64_t now,
		      char *keep, size_t *keep_len, bool *seen);

/* Record the claim's fields into a record, and read them back. */
void audit_claim_to_json(const struct smg_audit_claim *c, struct json_object *o);
bool audit_claim_from_json(struct json_object *o, struct smg_audit_claim *c);

/* ---- a loaded chain of records (verify.c, crosscheck.c, show.c) ---- */
struct audit_entry {
	size_t file;
	unsigned line;
	struct smg_audit_record rec;
};

struct smg_audit_chain {
	struct audit_entry *v;
	size_t n;
	char **files;
	size_t nfiles;
	bool has_signer;
	uint8_t signer[SMG_AUDIT_KEY_LEN];
	char host[SMG_AUDIT_NAME_MAX + 1];
	bool have_prev;
	uint64_t prev_seq;
	uint8_t prev_hash[SMG_AUDIT_DIGEST_LEN];
	int problems;
};

void audit_problem(const struct smg_audit_verify_opts *o, int *count, const char *file,
		   unsigned line, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* done, resumed, committed, in_doubt: the host went ahead on the evidence. */
bool audit_outcome_relied(const char *outcome);
/* The evidence inside one migration record, against the chain's signer. */
void audit_check_evidence(const struct smg_audit_chain *c,
			  const struct smg_audit_verify_opts *o, int *np,
			  const struct audit_entry *e);

#endif
