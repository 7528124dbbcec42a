/* verify: reads one host's log files (oldest first) and checks, record by
 * record, what an auditor relies on: every line parses, is signed by the
 * host's one key, counts up by one and links to the hash of the record
 * before; the log starts with an open record (or a rotation that links
 * back); its end is not behind the signed head. Each problem is reported
 * with the file, line and record number. The evidence inside migration
 * records (manifest and receipt signatures) is checked too (evidence
 * checks live in crosscheck.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"

#define LOG_FILE_MAX (4u * SMG_AUDIT_ROTATE_BYTES)

void audit_problem(const struct smg_audit_verify_opts *o, int *count, const char *file,
		   unsigned line, uint64_t seq, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	(*count)++;
	if (o != NULL && o->report != NULL)
		o->report(o->arg, file, line, seq, what);
}

static int push(struct smg_audit_chain *c, struct audit_entry *e)
{
	if (c->n % 64 == 0) {
		struct audit_entry *v = realloc(c->v, (c->n + 64) * sizeof(*v));
		if (v == NULL)
			return SMG_ERR_NOMEM;
		c->v = v;
	}
	c->v[c->n++] = *e;
	return SMG_OK;
}

/* seq and prev against the record before (if any). false: the record is
 * out of order, so the chain goes on from the record before it (a moved
 * record is then reported once, not again at its successor). */
static bool check_link(struct smg_audit_chain *c, const struct smg_audit_verify_opts *o,
		       int *np, const struct audit_entry *e, bool first_of_file)
{
	const struct smg_audit_record *r = &e->rec;
	const char *f = c->files[e->file];
	uint8_t zero[SMG_AUDIT_DIGEST_LEN] = {0};

	if (!c->have_prev) {
		if (!strcmp(r->event, "open")) {
			if (r->seq != 1 ||
			    sodium_memcmp(r->prev, zero, sizeof(zero)) != 0)
				audit_problem(o, np, f, e->line, r->seq,
					      "open record is not record 1 with an empty "
					      "link");
		} else if (strcmp(r->event, "rotate") != 0) {
			audit_problem(o, np, f, e->line, r->seq,
				      "the log does not begin with an open or rotate "
				      "record (its beginning was cut off)");
		}
		return true;
	}
	if (r->seq <= c->prev_seq) {
		audit_problem(o, np, f, e->line, r->seq,
			      "out of order after record %llu (reordered or spliced "
			      "record)",
			      (unsigned long long)c->prev_seq);
		return false;
	}
	if (r->seq != c->prev_seq + 1) {
		audit_problem(
		    o, np, f, e->line, r->seq,
		    "records %llu..%llu are missing before it (deleted or moved)",
		    (unsigned long long)c->prev_seq + 1, (unsigned long long)r->seq - 1);
	} else if (sodium_memcmp(r->prev, c->prev_hash, SMG_AUDIT_DIGEST_LEN) != 0) {
		audit_problem(o, np, f, e->line, r->seq,
			      "does not link to record %llu (altered, reordered or "
			      "spliced chain)",
			      (unsigned long long)c->prev_seq);
	}
	if (!strcmp(r->event, "open"))
		audit_problem(o, np, f, e->line, r->seq,
			      "a second open record inside the chain (spliced logs?)");
	if (!strcmp(r->event, "rotate") && !first_of_file)
		audit_problem(o, np, f, e->line, r->seq,
			      "a rotate record in the middle of a file");
	return true;
}

static void check_record(struct smg_audit_chain *c, const struct smg_audit_verify_opts *o,
			 int *np, struct audit_entry *e, bool first_of_file)
{
	const struct smg_audit_record *r = &e->rec;
	const char *f = c->files[e->file];

	if (!r->sig_ok)
		audit_problem(o, np, f, e->line, r->seq,
			      "signature invalid (record altered after it was written)");
	if (!c->has_signer) {
		memcpy(c->signer, o != NULL && o->pin != NULL ? o->pin : r->signer,
		       SMG_AUDIT_KEY_LEN);
		c->has_signer = true;
		snprintf(c->host, sizeof(c->host), "%s", r->host);
	}
	if (sodium_memcmp(r->signer, c->signer, SMG_AUDIT_KEY_LEN) != 0) {
		/* a foreign record: its place in our chain means nothing */
		audit_problem(o, np, f, e->line, r->seq,
			      "signed by another key than the host's (spliced in)");
		return;
	}
	if (!strcmp(r->event, "head"))
		audit_problem(o, np, f, e->line, r->seq, "a head record inside the log");
	if (!check_link(c, o, np, e, first_of_file))
		return;
	audit_check_evidence(c, o, np, e);
	c->have_prev = true;
	c->prev_seq = r->seq;
	memcpy(c->prev_hash, r->hash, SMG_AUDIT_DIGEST_LEN);
}

static int load_file(struct smg_audit_chain *c, const struct smg_audit_verify_opts *o,
		     int *np, size_t fi)
{
	const char *f = c->files[fi];
	char *buf;
	size_t len, off = 0;
	unsigned line = 0;
	int r;

	if ((r = audit_read_file(f, LOG_FILE_MAX, &buf, &len)) != SMG_OK) {
		audit_problem(o, np, f, 0, 0, "cannot read: %s", smg_strerror(r));
		return r == SMG_ERR_NOMEM ? r : SMG_OK;
	}
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		struct audit_entry e = {.file = fi, .line = ++line};

		if (nl == NULL) {
			audit_problem(o, np, f, line, c->prev_seq + 1,
				      "incomplete record at the end (log truncated "
				      "mid-record)");
			break;
		}
		if (smg_audit_record_parse(buf + off, n, &e.rec) != SMG_OK) {
			audit_problem(o, np, f, line, c->prev_seq + 1,
				      "unreadable record (not a signed audit record)");
			/* keep the chain going from the bytes that are there */
			c->have_prev = true;
			c->prev_seq++;
			crypto_generichash_state st;
			crypto_generichash_init(&st, NULL, 0, SMG_AUDIT_DIGEST_LEN);
			crypto_generichash_update(&st,
						  (const uint8_t *)SMG_AUDIT_CHAIN_CTX,
						  sizeof(SMG_AUDIT_CHAIN_CTX));
			crypto_generichash_update(&st, (const uint8_t *)buf + off, n);
			crypto_generichash_final(&st, c->prev_hash, SMG_AUDIT_DIGEST_LEN);
		} else {
			check_record(c, o, np, &e, line == 1);
			if ((r = push(c, &e)) != SMG_OK) {
				smg_audit_record_free(&e.rec);
				free(buf);
				return r;
			}
		}
		off += n + 1;
	}
	if (len == 0)
		audit_problem(o, np, f, 0, 0, "empty log file");
	free(buf);
	return SMG_OK;
}

static void check_head(struct smg_audit_chain *c, const struct smg_audit_verify_opts *o,
		       int *np)
{
	struct smg_audit_record h;
	char *buf;
	size_t len;
	const char *last = c->nfiles > 0 ? c->files[c->nfiles - 1] : o->head;
	unsigned lline = c->n > 0 ? c->v[c->n - 1].line : 0;

	if (audit_read_file(o->head, SMG_AUDIT_RECORD_MAX + 1, &buf, &len) != SMG_OK) {
		audit_problem(o, np, o->head, 0, 0,
			      "no head: cannot tell whether the log was truncated");
		return;
	}
	if (len == 0 || buf[len - 1] != '\n' ||
	    smg_audit_record_parse(buf, len - 1, &h) != SMG_OK) {
		audit_problem(o, np, o->head, 1, 0, "the head is unreadable");
		free(buf);
		return;
	}
	free(buf);
	if (!h.sig_ok || strcmp(h.event, "head") != 0 ||
	    (c->has_signer && sodium_memcmp(h.signer, c->signer, SMG_AUDIT_KEY_LEN) != 0))
		audit_problem(o, np, o->head, 1, h.seq,
			      "the head is not signed by the host's key");
	else if (h.seq > c->prev_seq)
		audit_problem(o, np, last, lline + 1, c->prev_seq + 1,
			      "the log ends at record %llu but its head names record "
			      "%llu: records %llu..%llu are missing (truncated)",
			      (unsigned long long)c->prev_seq, (unsigned long long)h.seq,
			      (unsigned long long)c->prev_seq + 1,
			      (unsigned long long)h.seq);
	else if (h.seq == c->prev_seq &&
		 sodium_memcmp(h.prev, c->prev_hash, SMG_AUDIT_DIGEST_LEN) != 0)
		audit_problem(o, np, last, lline, h.seq,
			      "the last record is not the one the head names (replaced)");
	smg_audit_record_free(&h);
}

int smg_audit_chain_load(const char *const *files, size_t n,
			 const struct smg_audit_verify_opts *o,
			 struct smg_audit_chain **out)
{
	struct smg_audit_chain *c;
	int np = 0, r = SMG_OK;

	*out = NULL;
	if (sodium_init() < 0)
		return SMG_ERR_CRYPTO;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->files = calloc(n + 1, sizeof(char *))) == NULL) {
		free(c);
		return SMG_ERR_NOMEM;
	}
	for (size_t i = 0; i < n && r == SMG_OK; i++) {
		if ((c->files[i] = strdup(files[i])) == NULL)
			r = SMG_ERR_NOMEM;
		c->nfiles = i + 1;
		if (r == SMG_OK)
			r = load_file(c, o, &np, i);
	}
	if (r == SMG_OK && o != NULL && o->head != NULL)
		check_head(c, o, &np);
	if (r != SMG_OK) {
		smg_audit_chain_free(c);
		return r;
	}
	c->problems = np;
	*out = c;
	return np;
}

void smg_audit_chain_free(struct smg_audit_chain *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		smg_audit_record_free(&c->v[i].rec);
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	free(c->files);
	free(c->v);
	free(c);
}

size_t smg_audit_chain_records(const struct smg_audit_chain *c)
{
	return c->n;
}

const uint8_t *smg_audit_chain_signer(const struct smg_audit_chain *c)
{
	return c->has_signer ? c->signer : NULL;
}
