/* report: the record of each migration attempt (both hosts write one: the
 * evidence they signed and checked, who, what, where, when, the outcome)
 * and of suspicious activity outside sessions, plus the counters. Records
 * a flood can cause are rate-limited per kind and address; their
 * counters count every event. */
#include <stdio.h>
#include <string.h>

#include "audit/internal.h"
#include "proto/proto.h"
#include "transport/transport.h"

void audit_claim_to_json(const struct smg_audit_claim *c, struct json_object *o)
{
	struct json_object *disks = json_object_new_array();
	char hex[2 * SMG_AUDIT_DIGEST_LEN + 1];

	audit_json_hex(o, "memory_root", c->memory_root, SMG_AUDIT_DIGEST_LEN);
	for (unsigned i = 0; i < c->n_disks && disks != NULL; i++) {
		smg_hex_encode(c->disk_roots[i], SMG_AUDIT_DIGEST_LEN, hex);
		json_object_array_add(disks, json_object_new_string(hex));
	}
	if (disks != NULL)
		json_object_object_add(o, "disk_roots", disks);
	audit_json_hex(o, "config_hash", c->config_hash, SMG_AUDIT_DIGEST_LEN);
	audit_json_hex(o, "device_hash", c->device_hash, SMG_AUDIT_DIGEST_LEN);
	if (c->has_vtpm)
		audit_json_hex(o, "vtpm_hash", c->vtpm_hash, SMG_AUDIT_DIGEST_LEN);
	audit_json_str(o, "src", c->src);
	audit_json_b64(o, "src_key", c->src_key, SMG_AUDIT_KEY_LEN);
	audit_json_str(o, "dst", c->dst);
	audit_json_b64(o, "dst_key", c->dst_key, SMG_AUDIT_KEY_LEN);
}

bool audit_claim_from_json(struct json_object *o, struct smg_audit_claim *c)
{
	struct json_object *disks;
	const char *id = audit_json_get_str(o, "id"), *src, *dst;

	memset(c, 0, sizeof(*c));
	if (id == NULL || !audit_name_ok(id, SMG_AUDIT_ID_MAX) ||
	    (src = audit_json_get_str(o, "src")) == NULL ||
	    (dst = audit_json_get_str(o, "dst")) == NULL ||
	    !audit_name_ok(src, SMG_AUDIT_NAME_MAX) ||
	    !audit_name_ok(dst, SMG_AUDIT_NAME_MAX))
		return false;
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->src, sizeof(c->src), "%s", src);
	snprintf(c->dst, sizeof(c->dst), "%s", dst);
	if (!audit_json_get_hex(o, "memory_root", c->memory_root, SMG_AUDIT_DIGEST_LEN) ||
	    !audit_json_get_hex(o, "config_hash", c->config_hash, SMG_AUDIT_DIGEST_LEN) ||
	    !audit_json_get_hex(o, "device_hash", c->device_hash, SMG_AUDIT_DIGEST_LEN) ||
	    !audit_json_get_hex(o, "transcript", c->transcript, SMG_AUDIT_DIGEST_LEN) ||
	    !audit_json_get_b64(o, "src_key", c->src_key, SMG_AUDIT_KEY_LEN) ||
	    !audit_json_get_b64(o, "dst_key", c->dst_key, SMG_AUDIT_KEY_LEN))
		return false;
	c->has_vtpm = audit_json_get_str(o, "vtpm_hash") != NULL;
	if (c->has_vtpm &&
	    !audit_json_get_hex(o, "vtpm_hash", c->vtpm_hash, SMG_AUDIT_DIGEST_LEN))
		return false;
	if (!json_object_object_get_ex(o, "disk_roots", &disks) ||
	    !json_object_is_type(disks, json_type_array) ||
	    json_object_array_length(disks) > SMG_AUDIT_DISKS_MAX)
		return false;
	c->n_disks = (unsigned)json_object_array_length(disks);
	for (unsigned i = 0; i < c->n_disks; i++) {
		struct json_object *d = json_object_array_get_idx(disks, i);
		if (!json_object_is_type(d, json_type_string) ||
		    smg_hex_decode(json_object_get_string(d),
				   strlen(json_object_get_string(d)), c->disk_roots[i],
				   SMG_AUDIT_DIGEST_LEN) != SMG_OK)
			return false;
	}
	return true;
}

static size_t classify(const struct smg_audit_mig *m, const struct smg_audit_result *res,
		       bool refused, enum smg_audit_counter *b)
{
	size_t n = 0;
	bool ok = res->err == SMG_OK;

	b[n++] = refused ? SMG_CNT_REFUSED : SMG_CNT_MIGRATIONS;
	if (!refused)
		b[n++] = ok ? SMG_CNT_MIGRATIONS_OK : SMG_CNT_MIGRATIONS_FAILED;
	if (m->stage != NULL && !strcmp(m->stage, "ticket"))
		b[n++] = SMG_CNT_BAD_TICKET;
	else if (res->err == SMG_ERR_POLICY)
		b[n++] = SMG_CNT_POLICY_DENIED;
	if (res->err == SMG_ERR_UNKNOWN_PEER)
		b[n++] = SMG_CNT_UNKNOWN_PEER;
	if (res->err == SMG_ERR_DECRYPT)
		b[n++] = SMG_CNT_TAG_FAILURE;
	if (res->err == SMG_ERR_INTEGRITY)
		b[n++] = m->bad_sig ? SMG_CNT_BAD_SIGNATURE : SMG_CNT_INTEGRITY;
	if (res->err == SMG_ERR_PROTO || res->err == SMG_ERR_STATE ||
	    res->err == SMG_ERR_UNKNOWN_TYPE || res->err == SMG_ERR_TOO_LONG ||
	    res->err == SMG_ERR_TRUNCATED || res->err == SMG_ERR_TRAILING ||
	    res->err == SMG_ERR_AFTER_FINAL)
		b[n++] = SMG_CNT_PROTOCOL;
	return n;
}

static void evidence_to_json(const struct smg_audit_mig *m, struct json_object *o)
{
	if (m->has_claim) {
		audit_claim_to_json(&m->claim, o);
		audit_json_hex(o, "manifest", m->manifest_digest, SMG_AUDIT_DIGEST_LEN);
		if (m->has_manifest_sig)
			audit_json_b64(o, "manifest_sig", m->manifest_sig,
				       SMG_AUDIT_SIG_LEN);
	}
	if (m->receipt_len > 0) {
		audit_json_b64(o, "receipt", m->receipt, m->receipt_len);
		if (m->has_receipt_sig)
			audit_json_b64(o, "receipt_sig", m->receipt_sig,
				       SMG_AUDIT_SIG_LEN);
		if (m->has_tpm_sig)
			audit_json_b64(o, "receipt_tpm_sig", m->receipt_tpm_sig,
				       SMG_AUDIT_SIG_LEN);
	}
}

static void who_to_json(struct smg_audit *a, const struct smg_audit_mig *m,
			const struct smg_session *s, struct json_object *o)
{
	audit_json_str(o, "role", m->source ? "source" : "destination");
	audit_json_str(o, "peer", smg_session_peer_name(s));
	audit_json_b64(o, "peer_key", smg_session_peer_key(s), SMG_AUDIT_KEY_LEN);
	audit_json_str(o, "peer_addr", smg_session_peer_addr(s));
	audit_json_str(o, "mode",
		       smg_session_capabilities(s) & SMG_CAP_TPM ? "tpm" : "software");
	audit_json_hex(o, "transcript", smg_session_transcript(s), SMG_AUDIT_DIGEST_LEN);
	if (a->has_policy_hash)
		audit_json_hex(o, "policy", a->policy_hash, SMG_AUDIT_DIGEST_LEN);
	if (m->has_ticket) {
		audit_json_hex(o, "ticket", m->ticket_digest, SMG_AUDIT_DIGEST_LEN);
		if (m->operator_name[0] != '\0')
			audit_json_str(o, "operator", m->operator_name);
	}
}

void smg_audit_finish(struct smg_audit *a, struct smg_audit_mig *m,
		      const struct smg_session *s, const struct smg_audit_result *res)
{
	enum smg_audit_counter bump[12];
	bool refused = !strcmp(res->outcome, "refused");
	struct json_object *o;
	unsigned supp = 0;
	size_t nb;

	if (a == NULL)
		return;
	nb = classify(m, res, refused, bump);
	if (refused && !audit_rl_allow(a, "refused", smg_session_peer_addr(s), &supp)) {
		bump[nb++] = SMG_CNT_SUPPRESSED;
		audit_counters_bump(a->dir, bump, nb);
		return;
	}
	if ((o = json_object_new_object()) == NULL)
		return;
	audit_json_str(o, "event", "migration");
	if (res->id != NULL && res->id[0] != '\0')
		audit_json_str(o, "id", res->id);
	if (res->domain != NULL && res->domain[0] != '\0')
		audit_json_str(o, "domain", res->domain);
	audit_json_str(o, "outcome", res->outcome);
	if (res->err != SMG_OK)
		audit_json_str(o, "error", smg_strerror(res->err));
	audit_json_str(o, "stage", m->stage);
	audit_json_str(o, "reason", res->reason);
	who_to_json(a, m, s, o);
	evidence_to_json(m, o);
	audit_json_u64(o, "started", m->started_ms);
	audit_json_u64(o, "ended", audit_wall_ms());
	if (m->source)
		audit_json_u64(o, "downtime_ms", res->downtime_ms);
	audit_json_u64(o, "total_ms", res->total_ms);
	audit_json_u64(o, "bytes", res->bytes);
	audit_json_u64(o, "rounds", res->rounds);
	json_object_object_add(o, "verified", json_object_new_boolean(res->verified));
	if (supp > 0)
		audit_json_u64(o, "suppressed", supp);
	audit_log_append(a, o, bump, nb);
}

void smg_audit_alert(struct smg_audit *a, const char *addr, const char *peer, int err)
{
	enum smg_audit_counter bump[3] = {SMG_CNT_HANDSHAKE_REFUSED};
	const char *kind = err == SMG_ERR_UNKNOWN_PEER ? "unknown_peer"
			   : err == SMG_ERR_BUSY       ? "busy"
			   : err == SMG_ERR_TIMEOUT    ? "handshake_timeout"
						       : "handshake_refused";
	struct json_object *o;
	unsigned supp = 0;
	size_t nb = 1;

	if (a == NULL)
		return;
	if (err == SMG_ERR_UNKNOWN_PEER)
		bump[nb++] = SMG_CNT_UNKNOWN_PEER;
	if (!audit_rl_allow(a, kind, addr, &supp)) {
		bump[nb++] = SMG_CNT_SUPPRESSED;
		audit_counters_bump(a->dir, bump, nb);
		return;
	}
	if ((o = json_object_new_object()) == NULL)
		return;
	audit_json_str(o, "event", "alert");
	audit_json_str(o, "kind", kind);
	audit_json_str(o, "peer_addr", addr);
	if (peer != NULL && audit_name_ok(peer, SMG_AUDIT_NAME_MAX))
		audit_json_str(o, "peer", peer);
	audit_json_str(o, "error", smg_strerror(err));
	if (supp > 0)
		audit_json_u64(o, "suppressed", supp);
	audit_log_append(a, o, bump, nb);
}

void smg_audit_on_refused(void *arg, const char *addr, const char *peer, int err)
{
	smg_audit_alert(arg, addr, peer, err);
}
