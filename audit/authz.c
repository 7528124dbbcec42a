/* authz: may this ticket start this migration here? Checked on both hosts
 * at plan time, in a fixed order so the refusal names exactly what was
 * wrong: decodes, operator enrolled with that key, signature, not revoked,
 * role, the ticket's own scope (VM, source, destination), the operator's
 * enrolled scope, then time. The replay cache (replay.c) comes last. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"

static int deny(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int deny(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return SMG_ERR_POLICY;
}

/* A selector is a host label "key=value" or a host-name glob. */
static bool host_matches(const char (*sel)[SMG_OP_PATTERN_MAX], size_t nsel,
			 const char *host, const char *const *labels, size_t nlabels)
{
	for (size_t i = 0; i < nsel; i++) {
		if (strchr(sel[i], '=') == NULL) {
			if (fnmatch(sel[i], host, 0) == 0)
				return true;
			continue;
		}
		for (size_t j = 0; j < nlabels; j++)
			if (!strcmp(sel[i], labels[j]))
				return true;
	}
	return false;
}

static bool vm_matches(const struct smg_operator *op, const char *vm)
{
	for (size_t i = 0; i < op->nvms; i++)
		if (fnmatch(op->vms[i], vm, 0) == 0)
			return true;
	return false;
}

static int check_scope(const struct smg_operator *op, const struct smg_ticket *t,
		       const struct smg_ticket_scope *sc, char *why, size_t why_len)
{
	if (strcmp(t->vm, sc->domain) != 0)
		return deny(why, why_len, "ticket: it is for VM '%s', not '%s'", t->vm,
			    sc->domain);
	if (strcmp(t->from, sc->src) != 0 || strcmp(t->to, sc->dst) != 0)
		return deny(why, why_len,
			    "ticket: it is for %s -> %s, this migration is %s -> %s",
			    t->from, t->to, sc->src, sc->dst);
	if (!vm_matches(op, t->vm))
		return deny(why, why_len,
			    "ticket: operator '%s' may not migrate VM '%s' (operators "
			    "line %u)",
			    op->name, t->vm, op->line);
	if (!host_matches((const char(*)[SMG_OP_PATTERN_MAX])op->from, op->nfrom, sc->src,
			  sc->src_labels, sc->n_src_labels))
		return deny(why, why_len,
			    "ticket: operator '%s' may not migrate from host '%s' "
			    "(operators line %u)",
			    op->name, sc->src, op->line);
	if (!host_matches((const char(*)[SMG_OP_PATTERN_MAX])op->to, op->nto, sc->dst,
			  sc->dst_labels, sc->n_dst_labels))
		return deny(why, why_len,
			    "ticket: operator '%s' may not migrate to host '%s' "
			    "(operators line %u)",
			    op->name, sc->dst, op->line);
	return SMG_OK;
}

static int check_time(const struct smg_ticket *t, uint64_t now, char *why, size_t why_len)
{
	if (now > t->not_after)
		return deny(why, why_len, "ticket: expired %llu s ago",
			    (unsigned long long)(now - t->not_after));
	if (t->issued > now + SMG_TICKET_SKEW)
		return deny(why, why_len, "ticket: issued in the future (%llu s ahead)",
			    (unsigned long long)(t->issued - now));
	if (t->not_after < t->issued || t->not_after - t->issued > SMG_TICKET_LIFE_MAX)
		return deny(why, why_len,
			    "ticket: valid for longer than the %llu s allowed",
			    (unsigned long long)SMG_TICKET_LIFE_MAX);
	return SMG_OK;
}

int smg_ticket_authorize(const struct smg_operators *ops, const uint8_t *buf, size_t len,
			 const struct smg_ticket_scope *sc, struct smg_ticket *out,
			 char *why, size_t why_len)
{
	const struct smg_operator *op;
	char dummy[8];
	int r;

	if (why == NULL || why_len == 0) {
		why = dummy;
		why_len = sizeof(dummy);
	}
	why[0] = '\0';
	if ((r = smg_ticket_decode(buf, len, out)) != SMG_OK)
		return deny(why, why_len, "ticket: malformed (%s)", smg_strerror(r));
	if ((op = smg_operators_find(ops, out->operator_name)) == NULL)
		return deny(why, why_len,
			    "ticket: operator '%s' is not enrolled on this host",
			    out->operator_name);
	if (sodium_memcmp(op->key, out->key, SMG_AUDIT_KEY_LEN) != 0)
		return deny(
		    why, why_len,
		    "ticket: signed with a key that is not operator '%s''s enrolled "
		    "key (forged?)",
		    op->name);
	if (!smg_ticket_sig_ok(buf, len, out, op->key))
		return deny(why, why_len,
			    "ticket: signature invalid (forged or altered ticket)");
	if (op->revoked_line != 0)
		return deny(why, why_len,
			    "ticket: operator '%s' is revoked (operators line %u)",
			    op->name, op->revoked_line);
	if (op->role != SMG_OP_OPERATOR)
		return deny(
		    why, why_len,
		    "ticket: '%s' has role admin, which enrols operators but may not "
		    "migrate",
		    op->name);
	if ((r = check_scope(op, out, sc, why, why_len)) != SMG_OK)
		return r;
	return check_time(out, sc->now, why, why_len);
}
