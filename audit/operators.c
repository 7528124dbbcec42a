/* operators: who may migrate what, per host (docs/audit.md):
 *
 *   admin NAME KEY                       trust anchor, written by root
 *   operator NAME KEY vms=GLOB[,GLOB] [from=SEL[,SEL]] [to=SEL[,SEL]] by=ADMIN sig=B64
 *   revoke NAME by=ADMIN sig=B64
 *
 * An operator or revoke line counts only with a valid signature by an admin
 * of the same file over its words (single spaces, up to and including
 * by=ADMIN), so whoever can append to the file cannot mint operators
 * without an admin's key. SEL is a host-name glob or a host label
 * key=value. Bounded like every parser: file, line, word and entry caps. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"
#include "transport/transport.h"

#define WORDS_MAX 16

struct oparser {
	struct smg_operators *ops;
	struct smg_lines in; /* the text, its line, the error */
};

static bool pattern_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= SMG_OP_PATTERN_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("._-*?=", *s) == NULL)
			return false;
	return true;
}

static int split(char *line, char **w, int *nw)
{
	*nw = smg_words_split(line, " \t\r", w, WORDS_MAX);
	return *nw < 0 ? SMG_ERR_TOO_LONG : SMG_OK;
}

static int parse_key(const char *s, uint8_t key[SMG_AUDIT_KEY_LEN])
{
	return audit_unb64(s, strlen(s), key, SMG_AUDIT_KEY_LEN);
}

static struct smg_operator *find_key(struct smg_operators *ops, const uint8_t *key)
{
	for (size_t i = 0; i < ops->n; i++)
		if (sodium_memcmp(ops->v[i].key, key, SMG_AUDIT_KEY_LEN) == 0)
			return &ops->v[i];
	return NULL;
}

static int add_entry(struct oparser *p, const char *name, const char *key,
		     enum smg_op_role role, struct smg_operator **out)
{
	struct smg_operators *ops = p->ops;
	struct smg_operator *e;
	uint8_t k[SMG_AUDIT_KEY_LEN];

	if (!audit_name_ok(name, SMG_AUDIT_NAME_MAX))
		return smg_lines_err(
		    &p->in, "bad name '%.64s' ([A-Za-z0-9._-], at most %d bytes)", name,
		    SMG_AUDIT_NAME_MAX);
	if (parse_key(key, k) != SMG_OK)
		return smg_lines_err(&p->in, "'%s': the key is not 32 bytes of base64",
				     name);
	if (smg_operators_find(ops, name) != NULL)
		return smg_lines_err(&p->in, "'%s' enrolled twice", name);
	if (find_key(ops, k) != NULL)
		return smg_lines_err(
		    &p->in, "'%s': this key is already enrolled under another name",
		    name);
	if (ops->n >= SMG_OPERATORS_MAX)
		return smg_lines_err(&p->in, "more than %d entries", SMG_OPERATORS_MAX);
	if (ops->n % 16 == 0) {
		struct smg_operator *v = realloc(ops->v, (ops->n + 16) * sizeof(*v));
		if (v == NULL)
			return SMG_ERR_NOMEM;
		ops->v = v;
	}
	e = &ops->v[ops->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	memcpy(e->key, k, sizeof(k));
	e->role = role;
	e->line = p->in.line;
	*out = e;
	return SMG_OK;
}

/* by=ADMIN sig=B64 must end the line; the signature covers the words
 * before sig=, joined by single spaces. */
static int check_sig(struct oparser *p, char **w, int nw, char *by, size_t by_cap)
{
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	char msg[sizeof(SMG_OPERATOR_CTX) + SMG_OPERATORS_LINE_MAX];
	size_t off = sizeof(SMG_OPERATOR_CTX);
	const struct smg_operator *admin;

	if (nw < 3 || strncmp(w[nw - 2], "by=", 3) != 0 ||
	    strncmp(w[nw - 1], "sig=", 4) != 0)
		return smg_lines_err(&p->in,
				     "'%s' line must end with by=ADMIN sig=SIGNATURE "
				     "(from `secmig operator enrol`)",
				     w[0]);
	admin = smg_operators_find(p->ops, w[nw - 2] + 3);
	if (admin == NULL || admin->role != SMG_OP_ADMIN)
		return smg_lines_err(
		    &p->in, "signed by '%.64s', who is not an admin in this file",
		    w[nw - 2] + 3);
	if (audit_unb64(w[nw - 1] + 4, strlen(w[nw - 1] + 4), sig, sizeof(sig)) != SMG_OK)
		return smg_lines_err(&p->in, "sig= is not a base64 Ed25519 signature");
	memcpy(msg, SMG_OPERATOR_CTX, sizeof(SMG_OPERATOR_CTX));
	for (int i = 0; i < nw - 1; i++) {
		size_t l = strlen(w[i]);
		if (off + l + 1 > sizeof(msg))
			return smg_lines_err(&p->in, "line too long");
		memcpy(msg + off, w[i], l);
		off += l;
		if (i < nw - 2)
			msg[off++] = ' ';
	}
	if (crypto_sign_verify_detached(sig, (uint8_t *)msg, off, admin->key) != 0)
		return smg_lines_err(&p->in,
				     "signature by admin '%s' is invalid (edited line or "
				     "forged enrolment)",
				     admin->name);
	snprintf(by, by_cap, "%s", admin->name);
	return SMG_OK;
}

static int add_patterns(struct oparser *p, const char *list,
			char (*dst)[SMG_OP_PATTERN_MAX], size_t *n, const char *what)
{
	char buf[SMG_OPERATORS_LINE_MAX], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", list);
	for (t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (!pattern_ok(t))
			return smg_lines_err(&p->in, "%s: bad pattern '%.64s'", what, t);
		if (*n >= SMG_OP_PATTERNS_MAX)
			return smg_lines_err(&p->in, "%s: more than %d patterns", what,
					     SMG_OP_PATTERNS_MAX);
		snprintf(dst[(*n)++], SMG_OP_PATTERN_MAX, "%s", t);
	}
	if (*n == 0)
		return smg_lines_err(&p->in, "%s= lists no pattern", what);
	return SMG_OK;
}

static int operator_line(struct oparser *p, char **w, int nw)
{
	struct smg_operator *e;
	char by[SMG_AUDIT_NAME_MAX + 1];
	int r;

	if (nw < 5)
		return smg_lines_err(
		    &p->in, "usage: operator NAME KEY vms=GLOB[,..] [from=..] [to=..] "
			    "by=ADMIN sig=..");
	if ((r = check_sig(p, w, nw, by, sizeof(by))) != 0 ||
	    (r = add_entry(p, w[1], w[2], SMG_OP_OPERATOR, &e)) != 0)
		return r;
	snprintf(e->by, sizeof(e->by), "%s", by);
	for (int i = 3; i < nw - 2; i++) {
		if (!strncmp(w[i], "vms=", 4))
			r = add_patterns(p, w[i] + 4, e->vms, &e->nvms, "vms");
		else if (!strncmp(w[i], "from=", 5))
			r = add_patterns(p, w[i] + 5, e->from, &e->nfrom, "from");
		else if (!strncmp(w[i], "to=", 3))
			r = add_patterns(p, w[i] + 3, e->to, &e->nto, "to");
		else
			r = smg_lines_err(
			    &p->in, "unknown word '%.32s' (vms=, from=, to=)", w[i]);
		if (r != 0)
			return r;
	}
	if (e->nvms == 0)
		return smg_lines_err(
		    &p->in, "operator '%s' needs vms=GLOB (which VMs it may migrate)",
		    e->name);
	if (e->nfrom == 0)
		snprintf(e->from[e->nfrom++], SMG_OP_PATTERN_MAX, "*");
	if (e->nto == 0)
		snprintf(e->to[e->nto++], SMG_OP_PATTERN_MAX, "*");
	return SMG_OK;
}

static int revoke_line(struct oparser *p, char **w, int nw)
{
	struct smg_operator *e;
	char by[SMG_AUDIT_NAME_MAX + 1];
	int r;

	if (nw != 4)
		return smg_lines_err(&p->in, "usage: revoke NAME by=ADMIN sig=..");
	if ((r = check_sig(p, w, nw, by, sizeof(by))) != 0)
		return r;
	e = (struct smg_operator *)smg_operators_find(p->ops, w[1]);
	if (e == NULL || e->role != SMG_OP_OPERATOR)
		return smg_lines_err(&p->in,
				     "revoke: no operator '%.64s' above this line", w[1]);
	e->revoked_line = p->in.line;
	return SMG_OK;
}

/* Pass 1 takes the admins (so lines may be signed by an admin listed
 * further down); pass 2 the operators and revocations, in order. */
static int parse_pass(struct oparser *p, int pass)
{
	char line[SMG_OPERATORS_LINE_MAX + 1], *w[WORDS_MAX];
	int n, nw, r;

	p->in.off = 0;
	p->in.line = 0;
	while ((n = smg_lines_next(&p->in, line, SMG_OPERATORS_LINE_MAX)) != 0) {
		struct smg_operator *e;

		if (n == SMG_ERR_TOO_LONG)
			return smg_lines_err(&p->in, "line longer than %d bytes",
					     SMG_OPERATORS_LINE_MAX);
		if (n < 0)
			return smg_lines_err(&p->in, "NUL byte in line");
		if (split(line, w, &nw) != SMG_OK)
			return smg_lines_err(&p->in, "too many words (max %d)",
					     WORDS_MAX);
		if (nw == 0)
			continue;
		if (!strcmp(w[0], "admin")) {
			if (pass == 2)
				continue;
			if (nw != 3)
				return smg_lines_err(&p->in, "usage: admin NAME KEY");
			if ((r = add_entry(p, w[1], w[2], SMG_OP_ADMIN, &e)) != 0)
				return r;
		} else if (!strcmp(w[0], "operator") || !strcmp(w[0], "revoke")) {
			if (pass == 1)
				continue;
			r = !strcmp(w[0], "operator") ? operator_line(p, w, nw)
						      : revoke_line(p, w, nw);
			if (r != 0)
				return r;
		} else {
			return smg_lines_err(
			    &p->in, "unknown keyword '%.32s' (admin, operator, revoke)",
			    w[0]);
		}
	}
	return SMG_OK;
}

int smg_operators_parse(const char *text, size_t len, const char *name,
			struct smg_operators **out, char *err, size_t err_len)
{
	struct oparser p = {0};
	int r;

	*out = NULL;
	smg_lines_init(&p.in, text, len, name != NULL ? name : "operators", err, err_len);
	if (sodium_init() < 0)
		return SMG_ERR_CRYPTO;
	if ((p.ops = calloc(1, sizeof(*p.ops))) == NULL)
		return SMG_ERR_NOMEM;
	if (len > SMG_OPERATORS_FILE_MAX)
		r = smg_lines_err(&p.in, "file larger than %d bytes",
				  SMG_OPERATORS_FILE_MAX);
	else if ((r = parse_pass(&p, 1)) == 0)
		r = parse_pass(&p, 2);
	if (r != 0) {
		smg_operators_free(p.ops);
		return r;
	}
	*out = p.ops;
	return SMG_OK;
}

int smg_operators_load(const char *path, struct smg_operators **out, char *err,
		       size_t err_len)
{
	char *buf;
	size_t len;
	int r;

	*out = NULL;
	if ((r = audit_read_file(path, SMG_OPERATORS_FILE_MAX, &buf, &len)) != SMG_OK) {
		snprintf(err, err_len, "%s: %s", path,
			 r == SMG_ERR_TOO_LONG ? "file too large" : smg_strerror(r));
		return r == SMG_ERR_NOT_FOUND ? r : SMG_ERR_CONFIG;
	}
	r = smg_operators_parse(buf, len, path, out, err, err_len);
	free(buf);
	return r;
}

void smg_operators_free(struct smg_operators *ops)
{
	if (ops == NULL)
		return;
	free(ops->v);
	free(ops);
}

const struct smg_operator *smg_operators_find(const struct smg_operators *ops,
					      const char *name)
{
	if (ops == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < ops->n; i++)
		if (!strcmp(ops->v[i].name, name))
			return &ops->v[i];
	return NULL;
}

int smg_operator_sign_line(const struct smg_identity *admin, const char *admin_name,
			   const char *unsigned_line, char *out, size_t cap)
{
	char line[SMG_OPERATORS_LINE_MAX + 1], *w[WORDS_MAX];
	char msg[sizeof(SMG_OPERATOR_CTX) + SMG_OPERATORS_LINE_MAX + 1];
	char b64[sodium_base64_ENCODED_LEN(SMG_AUDIT_SIG_LEN,
					   sodium_base64_VARIANT_ORIGINAL)];
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	size_t off = 0;
	int nw, k, r;

	if (strlen(unsigned_line) > SMG_OPERATORS_LINE_MAX - 200 ||
	    !audit_name_ok(admin_name, SMG_AUDIT_NAME_MAX))
		return SMG_ERR_INVAL;
	snprintf(line, sizeof(line), "%s", unsigned_line);
	if (split(line, w, &nw) != SMG_OK || nw > WORDS_MAX - 2)
		return SMG_ERR_INVAL;
	for (int i = 0; i < nw; i++) {
		k = snprintf(out + off, cap - off, "%s ", w[i]);
		if (k < 0 || (size_t)k >= cap - off)
			return SMG_ERR_NOSPACE;
		off += (size_t)k;
	}
	k = snprintf(out + off, cap - off, "by=%s", admin_name);
	if (k < 0 || (size_t)k >= cap - off)
		return SMG_ERR_NOSPACE;
	off += (size_t)k;
	memcpy(msg, SMG_OPERATOR_CTX, sizeof(SMG_OPERATOR_CTX));
	memcpy(msg + sizeof(SMG_OPERATOR_CTX), out, off);
	if ((r = smg_identity_sign(admin, msg, sizeof(SMG_OPERATOR_CTX) + off, sig)) != 0)
		return r;
	audit_b64(sig, sizeof(sig), b64, sizeof(b64));
	k = snprintf(out + off, cap - off, " sig=%s", b64);
	return k < 0 || (size_t)k >= cap - off ? SMG_ERR_NOSPACE : SMG_OK;
}
