/* policy: the per-host policy file — who we are (name, TCTI, the PCRs our
 * key is bound to, our labels), whether TPM mode is required, and the
 * enrolled peers with their TPM keys, golden PCRs, labels and the domains
 * they may send us. Line-oriented like sshd_config; every error names its
 * line. The format is in docs/attestation.md. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/internal.h"
#include "base/base.h"

#define POLICY_TOKENS_MAX 40

struct parser {
	struct smg_policy *p;
	struct smg_policy_peer *peer; /* current block, NULL at top level */
	struct smg_lines in;	      /* the text, its line, the error */
};

static bool name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("._-", *s) == NULL &&
		    (extra == NULL || strchr(extra, *s) == NULL))
			return false;
	return true;
}

static bool label_ok(const char *s)
{
	char k[SMG_POLICY_LABEL_MAX];
	const char *eq = strchr(s, '=');

	if (eq == NULL || strlen(s) >= SMG_POLICY_LABEL_MAX || eq == s)
		return false;
	memcpy(k, s, (size_t)(eq - s));
	k[eq - s] = '\0';
	return name_ok(k, SMG_POLICY_LABEL_MAX, NULL) &&
	       name_ok(eq + 1, SMG_POLICY_LABEL_MAX, NULL);
}

int smg_pcr_mask_parse(const char *s, uint32_t *mask)
{
	uint32_t m = 0;

	*mask = 0;
	while (*s) {
		char *end;
		unsigned long a, b;

		if (!isdigit((unsigned char)*s))
			return SMG_ERR_INVAL;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return SMG_ERR_INVAL;
			b = strtoul(end + 1, &end, 10);
		}
		if (a >= SMG_PCR_COUNT || b >= SMG_PCR_COUNT || a > b)
			return SMG_ERR_INVAL;
		for (unsigned long i = a; i <= b; i++)
			m |= 1u << i;
		if (*end == ',')
			end++;
		else if (*end != '\0')
			return SMG_ERR_INVAL;
		s = end;
	}
	if (m == 0)
		return SMG_ERR_INVAL;
	*mask = m;
	return SMG_OK;
}

static int add_label(struct parser *ps, char (*labels)[SMG_POLICY_LABEL_MAX], size_t *n,
		     const char *v)
{
	if (!label_ok(v))
		return smg_lines_err(
		    &ps->in, "bad label '%.64s' (want key=value, [A-Za-z0-9._-])", v);
	if (*n >= SMG_POLICY_LABELS_MAX)
		return smg_lines_err(&ps->in, "more than %d labels",
				     SMG_POLICY_LABELS_MAX);
	snprintf(labels[(*n)++], SMG_POLICY_LABEL_MAX, "%s", v);
	return SMG_OK;
}

static int top_keyword(struct parser *ps, char **tok, int ntok)
{
	struct smg_policy *p = ps->p;
	const char *k = tok[0];

	if (ps->peer != NULL &&
	    (!strcmp(k, "host") || !strcmp(k, "tcti") || !strcmp(k, "pcrs") ||
	     !strcmp(k, "mode") || !strcmp(k, "tickets") || !strcmp(k, "defs")))
		return smg_lines_err(&ps->in, "'%s' belongs before the first peer block",
				     k);
	if (!strcmp(k, "host")) {
		if (ntok != 2 || !name_ok(tok[1], SMG_POLICY_NAME_MAX, NULL))
			return smg_lines_err(
			    &ps->in, "usage: host NAME ([A-Za-z0-9._-], < %d bytes)",
			    SMG_POLICY_NAME_MAX);
		snprintf(p->host, sizeof(p->host), "%s", tok[1]);
	} else if (!strcmp(k, "tcti")) {
		if (ntok != 2 || strlen(tok[1]) >= sizeof(p->tcti))
			return smg_lines_err(
			    &ps->in, "usage: tcti STRING (e.g. device:/dev/tpmrm0)");
		snprintf(p->tcti, sizeof(p->tcti), "%s", tok[1]);
	} else if (!strcmp(k, "pcrs")) {
		if (ntok != 2 || smg_pcr_mask_parse(tok[1], &p->pcr_mask) != 0)
			return smg_lines_err(&ps->in,
					     "usage: pcrs LIST (e.g. 0-3,7; PCRs 0..23)");
	} else if (!strcmp(k, "mode")) {
		if (ntok != 2 || (strcmp(tok[1], "tpm") && strcmp(tok[1], "software")))
			return smg_lines_err(&ps->in, "usage: mode tpm|software");
		p->software_mode = !strcmp(tok[1], "software");
	} else if (!strcmp(k, "tickets")) {
		if (ntok != 2 ||
		    (strcmp(tok[1], "required") && strcmp(tok[1], "optional")))
			return smg_lines_err(&ps->in, "usage: tickets required|optional");
		p->require_ticket = !strcmp(tok[1], "required");
	} else if (!strcmp(k, "defs")) {
		if (ntok != 2 || tok[1][0] != '/' || strlen(tok[1]) >= sizeof(p->defs))
			return smg_lines_err(
			    &ps->in, "usage: defs /ABSOLUTE/PATH (host definitions, "
				     "docs/hostdef.md)");
		snprintf(p->defs, sizeof(p->defs), "%s", tok[1]);
	} else {
		return 1; /* not a top-level keyword */
	}
	return SMG_OK;
}

static int peer_start(struct parser *ps, char **tok, int ntok)
{
	struct smg_policy *p = ps->p;
	struct smg_policy_peer *np;

	if (ntok != 2 || !name_ok(tok[1], SMG_POLICY_NAME_MAX, NULL))
		return smg_lines_err(&ps->in,
				     "usage: peer NAME ([A-Za-z0-9._-], < %d bytes)",
				     SMG_POLICY_NAME_MAX);
	if (smg_policy_find_peer(p, tok[1]) != NULL)
		return smg_lines_err(&ps->in, "peer '%s' enrolled twice", tok[1]);
	if (p->npeers >= SMG_POLICY_PEERS_MAX)
		return smg_lines_err(&ps->in, "more than %d peers", SMG_POLICY_PEERS_MAX);
	np = realloc(p->peers, (p->npeers + 1) * sizeof(*np));
	if (np == NULL)
		return SMG_ERR_NOMEM;
	p->peers = np;
	ps->peer = &np[p->npeers++];
	memset(ps->peer, 0, sizeof(*ps->peer));
	snprintf(ps->peer->name, sizeof(ps->peer->name), "%s", tok[1]);
	ps->peer->line = ps->in.line;
	return SMG_OK;
}

static int peer_keyword(struct parser *ps, char **tok, int ntok)
{
	struct smg_policy_peer *pe = ps->peer;
	const char *k = tok[0];
	uint64_t idx;
	static const char *const known[] = {"ecdh", "ak", "pcr", "label", "send"};
	bool is_known = false;

	for (size_t i = 0; i < SMG_ARRAY_LEN(known); i++)
		is_known |= !strcmp(k, known[i]);
	if (!is_known)
		return smg_lines_err(&ps->in, "unknown keyword '%.32s'", k);
	if (pe == NULL)
		return smg_lines_err(
		    &ps->in, "'%s' outside a peer block (start one with: peer NAME)", k);
	if (!strcmp(k, "ecdh") || !strcmp(k, "ak")) {
		uint8_t *dst = !strcmp(k, "ecdh") ? pe->ecdh_pub : pe->ak_pub;
		if (ntok != 2 ||
		    smg_hex_decode(tok[1], strlen(tok[1]), dst, SMG_P256_POINT_LEN) !=
			0 ||
		    dst[0] != 0x04)
			return smg_lines_err(
			    &ps->in,
			    "usage: %s HEX (uncompressed P-256 point, 130 hex digits)",
			    k);
		/* reject points off the curve now, not at handshake time */
		EVP_PKEY *key = attest_p256_from_point(dst);
		if (key == NULL)
			return smg_lines_err(&ps->in, "%s: not a point on P-256", k);
		EVP_PKEY_free(key);
		if (!strcmp(k, "ecdh"))
			pe->has_ecdh = true;
		else
			pe->has_ak = true;
	} else if (!strcmp(k, "pcr")) {
		if (ntok != 3 || !isdigit((unsigned char)tok[1][0]))
			return smg_lines_err(
			    &ps->in, "usage: pcr INDEX HEX (golden SHA-256 value)");
		if (smg_parse_uint(tok[1], SMG_PCR_COUNT - 1, &idx) != SMG_OK)
			return smg_lines_err(
			    &ps->in, "PCR index '%.8s' out of range 0..23", tok[1]);
		if (pe->pcr_mask & (1u << idx))
			return smg_lines_err(&ps->in,
					     "golden value for PCR %u given twice",
					     (unsigned)idx);
		if (smg_hex_decode(tok[2], strlen(tok[2]), pe->golden[idx],
				   SMG_PCR_LEN) != 0)
			return smg_lines_err(&ps->in,
					     "PCR %u: want 64 hex digits (SHA-256)",
					     (unsigned)idx);
		pe->pcr_mask |= 1u << idx;
	} else if (!strcmp(k, "label")) {
		for (int i = 1; i < ntok; i++) {
			int r = add_label(ps, pe->labels, &pe->nlabels, tok[i]);
			if (r != 0)
				return r;
		}
	} else if (!strcmp(k, "send")) {
		if (ntok < 2)
			return smg_lines_err(&ps->in, "usage: send DOMAIN-GLOB...");
		for (int i = 1; i < ntok; i++) {
			if (!name_ok(tok[i], SMG_POLICY_DOMAIN_MAX, "*?"))
				return smg_lines_err(
				    &ps->in, "bad domain pattern '%.64s'", tok[i]);
			if (pe->ndomains >= SMG_POLICY_DOMAINS_MAX)
				return smg_lines_err(&ps->in,
						     "more than %d domain patterns",
						     SMG_POLICY_DOMAINS_MAX);
			snprintf(pe->domains[pe->ndomains++], SMG_POLICY_DOMAIN_MAX, "%s",
				 tok[i]);
		}
		pe->may_send = true;
	} else {
		return smg_lines_err(&ps->in, "unknown keyword '%.32s'", k);
	}
	return SMG_OK;
}

static int parse_line(struct parser *ps, char *line)
{
	char *tok[POLICY_TOKENS_MAX];
	int ntok, r;

	if ((ntok = smg_words_split(line, " \t\r", tok, POLICY_TOKENS_MAX)) < 0)
		return smg_lines_err(&ps->in, "too many words (max %d)",
				     POLICY_TOKENS_MAX);
	if (ntok == 0)
		return SMG_OK;
	if (!strcmp(tok[0], "peer"))
		return peer_start(ps, tok, ntok);
	if ((r = top_keyword(ps, tok, ntok)) <= 0)
		return r;
	if (!strcmp(tok[0], "label") && ps->peer == NULL) {
		for (int i = 1; i < ntok; i++)
			if ((r = add_label(ps, ps->p->labels, &ps->p->nlabels, tok[i])) !=
			    0)
				return r;
		return SMG_OK;
	}
	return peer_keyword(ps, tok, ntok);
}

/* Whole-file rules, checked once every line is in. */
static int validate(struct parser *ps)
{
	struct smg_policy *p = ps->p;

	for (size_t i = 0; i < p->npeers; i++) {
		struct smg_policy_peer *pe = &p->peers[i];
		bool any = pe->has_ecdh || pe->has_ak || pe->pcr_mask != 0;

		ps->in.line = pe->line;
		if (any && !(pe->has_ecdh && pe->has_ak && pe->pcr_mask != 0))
			return smg_lines_err(
			    &ps->in,
			    "peer '%s': TPM enrolment needs ecdh, ak and pcr lines",
			    pe->name);
		if (!p->software_mode && !pe->has_ecdh)
			return smg_lines_err(
			    &ps->in,
			    "peer '%s' has no TPM keys but mode is tpm (enrol it with "
			    "the output of `secmig tpm-enroll` on that host, or opt in "
			    "with: mode software)",
			    pe->name);
	}
	return SMG_OK;
}

int smg_policy_parse(const char *text, size_t len, const char *name,
		     struct smg_policy **out, char *err, size_t err_len)
{
	struct parser ps = {0};
	char line[SMG_POLICY_LINE_MAX + 1];
	int n, r = SMG_OK;

	*out = NULL;
	smg_lines_init(&ps.in, text, len, name != NULL ? name : "policy", err, err_len);
	if ((ps.p = calloc(1, sizeof(*ps.p))) == NULL)
		return SMG_ERR_NOMEM;
	ps.p->pcr_mask = SMG_PCR_MASK_DEFAULT;
	if (len > SMG_POLICY_FILE_MAX) {
		r = smg_lines_err(&ps.in, "file larger than %d bytes",
				  SMG_POLICY_FILE_MAX);
		goto out;
	}
	while ((n = smg_lines_next(&ps.in, line, SMG_POLICY_LINE_MAX)) > 0)
		if ((r = parse_line(&ps, line)) != 0)
			goto out;
	if (n < 0) {
		r = n == SMG_ERR_TOO_LONG
			? smg_lines_err(&ps.in, "line longer than %d bytes",
					SMG_POLICY_LINE_MAX)
			: smg_lines_err(&ps.in, "NUL byte in line");
		goto out;
	}
	if (ps.p->host[0] == '\0') {
		r = smg_lines_err(
		    &ps.in, "missing 'host NAME' (this host's name as peers enrol it)");
		goto out;
	}
	if ((r = validate(&ps)) != 0)
		goto out;
	*out = ps.p;
	return SMG_OK;
out:
	smg_policy_free(ps.p);
	return r;
}

int smg_policy_load(const char *path, struct smg_policy **out, char *err, size_t err_len)
{
	char *buf = NULL;
	size_t got = 0;
	int r;

	*out = NULL;
	/* A policy someone else can write decides who may migrate here. */
	if ((r = smg_file_read_private(path, SMG_POLICY_FILE_MAX, &buf, &got, err,
				       err_len)) != SMG_OK)
		return r == SMG_ERR_PERM ? r : SMG_ERR_CONFIG;
	r = smg_policy_parse(buf, got, path, out, err, err_len);
	free(buf);
	if (r == 0 && (*out)->software_mode)
		smg_warn(
		    "policy: %s opts into software-key mode: sessions are not bound to a "
		    "TPM and no attestation evidence is exchanged",
		    path);
	return r;
}

void smg_policy_free(struct smg_policy *p)
{
	if (p == NULL)
		return;
	free(p->peers);
	free(p);
}

const struct smg_policy_peer *smg_policy_find_peer(const struct smg_policy *p,
						   const char *name)
{
	if (p == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < p->npeers; i++)
		if (!strcmp(p->peers[i].name, name))
			return &p->peers[i];
	return NULL;
}

int smg_policy_format_peer(const char *name, const struct smg_tpm_keys *k,
			   const char *const *labels, size_t nlabels, char *out,
			   size_t cap)
{
	char hex[2 * SMG_P256_POINT_LEN + 1];
	size_t off = 0;
	int n;

#define EMIT(...)                                                \
	do {                                                     \
		n = snprintf(out + off, cap - off, __VA_ARGS__); \
		if (n < 0 || (size_t)n >= cap - off)             \
			return SMG_ERR_NOSPACE;                  \
		off += (size_t)n;                                \
	} while (0)
	EMIT("peer %s\n", name);
	smg_hex_encode(k->ecdh_pub, SMG_P256_POINT_LEN, hex);
	EMIT("  ecdh %s\n", hex);
	smg_hex_encode(k->ak_pub, SMG_P256_POINT_LEN, hex);
	EMIT("  ak %s\n", hex);
	for (unsigned i = 0; i < SMG_PCR_COUNT; i++) {
		if (!(k->pcr_mask & (1u << i)))
			continue;
		smg_hex_encode(k->pcr[i], SMG_PCR_LEN, hex);
		EMIT("  pcr %u %s\n", i, hex);
	}
	for (size_t i = 0; i < nlabels; i++)
		EMIT("  label %s\n", labels[i]);
#undef EMIT
	return SMG_OK;
}
