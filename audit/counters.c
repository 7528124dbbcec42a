/* counters: suspicious activity and outcomes, counted in one JSON file per
 * host (DIR/counters) under the audit lock, so `secmig audit counters` and
 * a metrics exporter read the same numbers every writer updates. The rate
 * limit decides how many alert records a flood may write; the counters
 * count every event regardless. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/internal.h"

#define COUNTERS_FILE_MAX 65536

static const char *const names[SMG_CNT_MAX_] = {
    [SMG_CNT_RECORDS] = "records",
    [SMG_CNT_MIGRATIONS] = "migrations",
    [SMG_CNT_MIGRATIONS_OK] = "migrations_ok",
    [SMG_CNT_MIGRATIONS_FAILED] = "migrations_failed",
    [SMG_CNT_REFUSED] = "refused",
    [SMG_CNT_HANDSHAKE_REFUSED] = "handshake_refused",
    [SMG_CNT_UNKNOWN_PEER] = "unknown_peer",
    [SMG_CNT_BAD_TICKET] = "bad_ticket",
    [SMG_CNT_TAG_FAILURE] = "tag_failure",
    [SMG_CNT_POLICY_DENIED] = "policy_denied",
    [SMG_CNT_BAD_SIGNATURE] = "bad_signature",
    [SMG_CNT_INTEGRITY] = "integrity",
    [SMG_CNT_PROTOCOL] = "protocol",
    [SMG_CNT_SUPPRESSED] = "alerts_suppressed",
};

const char *smg_audit_counter_name(enum smg_audit_counter c)
{
	return (unsigned)c < SMG_CNT_MAX_ ? names[c] : "?";
}

int smg_audit_counters_read(const char *dir, uint64_t out[SMG_CNT_MAX_])
{
	struct json_object *o;
	char path[600], *buf;
	size_t len;
	int r;

	memset(out, 0, SMG_CNT_MAX_ * sizeof(uint64_t));
	snprintf(path, sizeof(path), "%s/%s", dir, AUDIT_COUNTERS_NAME);
	if ((r = audit_read_file(path, COUNTERS_FILE_MAX, &buf, &len)) != SMG_OK)
		return r == SMG_ERR_NOT_FOUND ? SMG_OK : r;
	o = json_tokener_parse(buf);
	free(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return SMG_ERR_PROTO;
	}
	for (unsigned i = 0; i < SMG_CNT_MAX_; i++)
		audit_json_get_u64(o, names[i], &out[i]);
	json_object_put(o);
	return SMG_OK;
}

int audit_counters_bump_locked(const char *dir, const enum smg_audit_counter *bump,
			       size_t nbump)
{
	uint64_t v[SMG_CNT_MAX_];
	struct json_object *o;
	const char *text;
	int r;

	if (smg_audit_counters_read(dir, v) != SMG_OK)
		smg_warn("audit: %s/%s unreadable; counting from zero", dir,
			 AUDIT_COUNTERS_NAME);
	for (size_t i = 0; i < nbump; i++)
		if ((unsigned)bump[i] < SMG_CNT_MAX_)
			v[bump[i]]++;
	if ((o = json_object_new_object()) == NULL)
		return SMG_ERR_NOMEM;
	for (unsigned i = 0; i < SMG_CNT_MAX_; i++)
		audit_json_u64(o, names[i], v[i]);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	r = audit_write_atomic(dir, AUDIT_COUNTERS_NAME, text, strlen(text));
	json_object_put(o);
	return r;
}

int audit_counters_bump(const char *dir, const enum smg_audit_counter *bump, size_t nbump)
{
	int lk, r;

	if ((r = audit_lock(dir, &lk)) != SMG_OK)
		return r;
	r = audit_counters_bump_locked(dir, bump, nbump);
	audit_unlock(lk);
	return r;
}

/* One slot per (kind, address), and a cap over all of them together, so a
 * flood from many addresses cannot fill the disk either. */
static bool rl_slot(struct smg_audit *a, const char *key, uint64_t now, bool full,
		    unsigned *supp)
{
	struct audit_rl_slot *s = NULL, *oldest = &a->rl[0];

	for (unsigned i = 0; i < AUDIT_RL_SLOTS && s == NULL; i++) {
		if (strcmp(a->rl[i].key, key) == 0)
			s = &a->rl[i];
		else if (a->rl[i].window_start < oldest->window_start)
			oldest = &a->rl[i];
	}
	if (s == NULL) {
		s = oldest;
		memset(s, 0, sizeof(*s));
		snprintf(s->key, sizeof(s->key), "%s", key);
		s->window_start = now;
	}
	if (now - s->window_start >= AUDIT_RL_WINDOW_MS) {
		s->window_start = now;
		s->used = 0;
	}
	if (full || s->used >= AUDIT_RL_BURST) {
		s->suppressed++;
		return false;
	}
	s->used++;
	*supp = s->suppressed;
	s->suppressed = 0;
	return true;
}

bool audit_rl_allow(struct smg_audit *a, const char *kind, const char *addr,
		    unsigned *suppressed)
{
	char key[96];
	uint64_t now = smg_now_ms();
	bool ok, full;

	*suppressed = 0;
	snprintf(key, sizeof(key), "%s %s", kind, addr != NULL ? addr : "-");
	pthread_mutex_lock(&a->lock);
	if (now - a->rl_global_start >= AUDIT_RL_WINDOW_MS) {
		a->rl_global_start = now;
		a->rl_global_used = 0;
	}
	full = a->rl_global_used >= AUDIT_RL_GLOBAL;
	if ((ok = rl_slot(a, key, now, full, suppressed)))
		a->rl_global_used++;
	pthread_mutex_unlock(&a->lock);
	return ok;
}
