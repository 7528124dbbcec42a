/* crosscheck: what an auditor concludes from the records. Inside one log,
 * each migration record's evidence must hold by itself (the claim hashes
 * to the manifest digest, the source's key signed it, the destination's
 * key, and AK where present, signed the receipt, which names that digest).
 * Across two hosts' logs, both halves of every migration must agree on the
 * session, the identities, the manifest, the receipt, the ticket and the
 * outcome, and each half must exist where the other says it should. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"

static const char *fname(const struct smg_audit_chain *c, const struct audit_entry *e)
{
	return c->files[e->file];
}

/* A host relied on the evidence when it went ahead: then every signature
 * in its record must hold. A refused or aborted attempt may hold the very
 * evidence that was refused (unsigned, tampered, wrong key). */
bool audit_outcome_relied(const char *outcome)
{
	return outcome != NULL &&
	       (!strcmp(outcome, "done") || !strcmp(outcome, "resumed") ||
		!strcmp(outcome, "committed") || !strcmp(outcome, "in_doubt"));
}

static void check_receipt(const struct smg_audit_chain *c,
			  const struct smg_audit_verify_opts *o, int *np,
			  const struct audit_entry *e, const struct smg_audit_claim *cl,
			  const uint8_t digest[SMG_AUDIT_DIGEST_LEN])
{
	struct json_object *j = e->rec.json;
	uint8_t blob[SMG_RECEIPT_MAX], sig[SMG_AUDIT_SIG_LEN], tsig[SMG_AUDIT_SIG_LEN];
	struct smg_audit_receipt rc;
	size_t len;
	bool has_tsig;

	if (!audit_json_get_b64v(j, "receipt", blob, sizeof(blob), &len) ||
	    smg_audit_receipt_decode(blob, len, &rc) != SMG_OK ||
	    !audit_json_get_b64(j, "receipt_sig", sig, sizeof(sig))) {
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the receipt in this record is missing or malformed");
		return;
	}
	has_tsig = audit_json_get_b64(j, "receipt_tpm_sig", tsig, sizeof(tsig));
	if (sodium_memcmp(rc.manifest, digest, SMG_AUDIT_DIGEST_LEN) != 0 ||
	    strcmp(rc.id, cl->id) != 0)
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the receipt names another manifest than this record's");
	if (smg_audit_receipt_sig_check(blob, len, cl->dst_key, sig, NULL, NULL) !=
	    SMG_OK)
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the receipt is not signed by the destination's key");
	if (rc.tpm &&
	    (!has_tsig || smg_audit_receipt_sig_check(blob, len, cl->dst_key, sig, rc.ak,
						      tsig) != SMG_OK))
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the receipt's AK signature is invalid");
}

void audit_check_evidence(const struct smg_audit_chain *c,
			  const struct smg_audit_verify_opts *o, int *np,
			  const struct audit_entry *e)
{
	struct json_object *j = e->rec.json;
	const char *role = audit_json_get_str(j, "role");
	bool relied = audit_outcome_relied(audit_json_get_str(j, "outcome"));
	uint8_t d[SMG_AUDIT_DIGEST_LEN], want[SMG_AUDIT_DIGEST_LEN],
	    sig[SMG_AUDIT_SIG_LEN];
	struct smg_audit_claim cl;

	if (strcmp(e->rec.event, "migration") != 0)
		return;
	if (audit_json_get_str(j, "manifest") == NULL) {
		if (relied)
			audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
				      "a completed migration without a manifest");
		return;
	}
	if (!audit_claim_from_json(j, &cl) ||
	    !audit_json_get_hex(j, "manifest", want, sizeof(want)) || role == NULL) {
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the evidence in this record is malformed");
		return;
	}
	smg_audit_claim_digest(&cl, d);
	if (sodium_memcmp(d, want, sizeof(d)) != 0)
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the manifest digest does not match the recorded claim");
	if (sodium_memcmp(!strcmp(role, "source") ? cl.src_key : cl.dst_key, c->signer,
			  SMG_AUDIT_KEY_LEN) != 0)
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the claim names another key for this host than the one "
			      "that signs its log");
	if (!relied)
		return;
	if (!audit_json_get_b64(j, "manifest_sig", sig, sizeof(sig)) ||
	    !smg_audit_manifest_sig_ok(&cl, cl.src_key, sig))
		audit_problem(o, np, fname(c, e), e->line, e->rec.seq,
			      "the manifest is not signed by the source's key");
	if (audit_json_get_str(j, "receipt") != NULL || !strcmp(role, "source"))
		check_receipt(c, o, np, e, &cl, d);
}

static bool same_str(struct json_object *a, struct json_object *b, const char *k)
{
	const char *x = audit_json_get_str(a, k), *y = audit_json_get_str(b, k);

	return (x == NULL && y == NULL) || (x != NULL && y != NULL && !strcmp(x, y));
}

static const struct audit_entry *find_half(const struct smg_audit_chain *c,
					   const char *id, const char *role)
{
	for (size_t i = 0; i < c->n; i++) {
		struct json_object *j = c->v[i].rec.json;
		const char *x = audit_json_get_str(j, "id"),
			   *r = audit_json_get_str(j, "role");

		if (!strcmp(c->v[i].rec.event, "migration") && x != NULL && r != NULL &&
		    !strcmp(x, id) && !strcmp(r, role))
			return &c->v[i];
	}
	return NULL;
}

static bool outcomes_agree(const char *src, const char *dst)
{
	bool s_done = !strcmp(src, "done"), s_doubt = !strcmp(src, "in_doubt");
	bool d_runs = !strcmp(dst, "resumed") || !strcmp(dst, "committed");

	if (s_doubt)
		return true; /* settled later by resolve */
	return s_done == d_runs;
}

struct pair {
	const struct smg_audit_chain *oc, *pc; /* ours, peer's */
	const struct audit_entry *oe, *pe;
	const struct smg_audit_verify_opts *o;
	int *np;
};

static void pair_problem(struct pair *p, const char *what)
{
	audit_problem(p->o, p->np, fname(p->oc, p->oe), p->oe->line, p->oe->rec.seq,
		      "migration %s: %s (peer's record %llu)",
		      audit_json_get_str(p->oe->rec.json, "id"), what,
		      (unsigned long long)p->pe->rec.seq);
}

static void check_pair(struct pair *p)
{
	struct json_object *a = p->oe->rec.json, *b = p->pe->rec.json;
	uint8_t ka[SMG_AUDIT_KEY_LEN], kb[SMG_AUDIT_KEY_LEN];
	bool a_src = !strcmp(audit_json_get_str(a, "role"), "source");
	const char *oa = audit_json_get_str(a, "outcome"),
		   *ob = audit_json_get_str(b, "outcome");

	if (!audit_json_get_b64(a, "peer_key", ka, sizeof(ka)) ||
	    sodium_memcmp(ka, p->pc->signer, SMG_AUDIT_KEY_LEN) != 0)
		pair_problem(p, "our record names another key for the peer than the one "
				"that signs the peer's log");
	if (!audit_json_get_b64(b, "peer_key", kb, sizeof(kb)) ||
	    sodium_memcmp(kb, p->oc->signer, SMG_AUDIT_KEY_LEN) != 0)
		pair_problem(p, "the peer's record names another key for us than ours");
	if (strcmp(audit_json_get_str(a, "peer") ?: "", p->pe->rec.host) != 0 ||
	    strcmp(audit_json_get_str(b, "peer") ?: "", p->oe->rec.host) != 0)
		pair_problem(p, "the host names differ");
	if (!same_str(a, b, "transcript"))
		pair_problem(p, "the halves are from different sessions");
	if (!same_str(a, b, "domain"))
		pair_problem(p, "the halves name different VMs");
	if (!same_str(a, b, "ticket"))
		pair_problem(p, "the halves name different tickets");
	if (audit_json_get_str(a, "manifest") != NULL &&
	    audit_json_get_str(b, "manifest") != NULL &&
	    (!same_str(a, b, "manifest") ||
	     (audit_outcome_relied(oa) && audit_outcome_relied(ob) &&
	      !same_str(a, b, "manifest_sig"))))
		pair_problem(p, "the halves hold different manifests");
	if (audit_json_get_str(a, "receipt") != NULL &&
	    audit_json_get_str(b, "receipt") != NULL && !same_str(a, b, "receipt"))
		pair_problem(p, "the halves hold different receipts");
	if (oa == NULL || ob == NULL || !outcomes_agree(a_src ? oa : ob, a_src ? ob : oa))
		pair_problem(p, "the outcomes contradict each other");
}

/* A half the other log says must exist: not a refusal (rate-limited
 * refusals may be absent), with us as the peer, within our log's span. */
static bool expected(const struct audit_entry *e, const struct smg_audit_chain *other)
{
	struct json_object *j = e->rec.json;
	const char *out = audit_json_get_str(j, "outcome");
	uint8_t k[SMG_AUDIT_KEY_LEN];

	return out != NULL && strcmp(out, "refused") != 0 && other->n > 0 &&
	       audit_json_get_b64(j, "peer_key", k, sizeof(k)) &&
	       sodium_memcmp(k, other->signer, SMG_AUDIT_KEY_LEN) == 0 &&
	       e->rec.time_ms >= other->v[0].rec.time_ms;
}

static void one_way(const struct smg_audit_chain *from, const struct smg_audit_chain *to,
		    const struct smg_audit_verify_opts *o, int *np, size_t *pairs,
		    bool ours)
{
	for (size_t i = 0; i < from->n; i++) {
		const struct audit_entry *e = &from->v[i];
		const char *id = audit_json_get_str(e->rec.json, "id");
		const char *role = audit_json_get_str(e->rec.json, "role");
		const struct audit_entry *h;

		if (strcmp(e->rec.event, "migration") != 0 || id == NULL || role == NULL)
			continue;
		h = find_half(to, id, !strcmp(role, "source") ? "destination" : "source");
		if (h != NULL && ours) {
			struct pair p = {from, to, e, h, o, np};
			check_pair(&p);
			(*pairs)++;
		} else if (h == NULL && expected(e, to)) {
			audit_problem(o, np, fname(from, e), e->line, e->rec.seq,
				      "migration %s: %s log has no half of it (deleted?)",
				      id, ours ? "the peer's" : "our");
		}
	}
}

int smg_audit_cross_check(const struct smg_audit_chain *ours,
			  const struct smg_audit_chain *peer,
			  const struct smg_audit_verify_opts *o, size_t *pairs)
{
	int np = 0;

	*pairs = 0;
	if (!ours->has_signer || !peer->has_signer)
		return 0;
	one_way(ours, peer, o, &np, pairs, true);
	one_way(peer, ours, o, &np, pairs, false);
	return np;
}
