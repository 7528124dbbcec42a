/* The disk service's control protocol (docs/storage.md): pure parsers of a
 * request body (service side; the peer is a local root process, but a
 * confused or compromised one must not be able to do more than get ERR) and
 * of a reply body (client side). Table-driven: each verb names the exact
 * form of its arguments, and whether a payload may follow the line. */
#include <string.h>

#include "base/base.h"
#include "storage/storage.h"

enum arg {
	A_END = 0,
	A_NAME,	    /* a disk name */
	A_U64,	    /* a decimal number */
	A_MODE,	    /* waio | dbt */
	A_PHASE,    /* bulk | iter | final */
	A_OUTCOME,  /* resumed | aborted */
	A_WORKLOAD, /* read-hot | write-heavy | mixed | stop | trace:PATH */
	A_OPTNAME,  /* an optional trailing disk name */
};

struct verb_form {
	const char *name;
	enum arg args[4];
	bool payload;
};

static const struct verb_form forms[SMG_DSVC_VERB_MAX_] = {
    [SMG_DSVC_LIST] = {"LIST", {A_END}, false},
    [SMG_DSVC_INFO] = {"INFO", {A_NAME}, false},
    [SMG_DSVC_CREATE] = {"CREATE", {A_NAME, A_U64}, false},
    [SMG_DSVC_IMPORT] = {"IMPORT", {A_NAME}, false},
    [SMG_DSVC_DELETE] = {"DELETE", {A_NAME}, false},
    [SMG_DSVC_WORKLOAD] = {"WORKLOAD", {A_NAME, A_WORKLOAD}, false},
    [SMG_DSVC_SEND] = {"SEND", {A_NAME, A_MODE, A_U64}, false},
    [SMG_DSVC_NEXT] = {"NEXT", {A_PHASE}, false},
    [SMG_DSVC_PENDING] = {"PENDING", {A_END}, false},
    [SMG_DSVC_BUDGET] = {"BUDGET", {A_U64}, false},
    [SMG_DSVC_PAUSE] = {"PAUSE", {A_END}, false},
    [SMG_DSVC_ROOT] = {"ROOT", {A_END}, false},
    [SMG_DSVC_COMMIT] = {"COMMIT", {A_END}, false},
    [SMG_DSVC_RELEASE] = {"RELEASE", {A_END}, false},
    [SMG_DSVC_ABORT] = {"ABORT", {A_END}, false},
    [SMG_DSVC_RECV] = {"RECV", {A_NAME, A_U64, A_U64, A_U64}, false},
    [SMG_DSVC_APPLY] = {"APPLY", {A_END}, true},
    [SMG_DSVC_DIGEST] = {"DIGEST", {A_END}, false},
    [SMG_DSVC_CHECK] = {"CHECK", {A_END}, false},
    [SMG_DSVC_COMMITTED] = {"COMMITTED", {A_END}, false},
    [SMG_DSVC_RESUME] = {"RESUME", {A_OPTNAME}, false},
    [SMG_DSVC_DISCARD] = {"DISCARD", {A_END}, false},
    [SMG_DSVC_SETTLE] = {"SETTLE", {A_NAME, A_OUTCOME}, false},
};

const char *smg_dsvc_verb_name(enum smg_dsvc_verb v)
{
	return v > 0 && v < SMG_DSVC_VERB_MAX_ ? forms[v].name : "?";
}

bool smg_dsvc_name_valid(const char *name, size_t len)
{
	return smg_name_valid(name, len, SMG_DSVC_NAME_MAX);
}

static bool word_is(const char *w, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(w, lit, n) == 0;
}

static int parse_u64(const char *w, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	/* At most 20 digits, no sign, no leading zeros but "0": one spelling
	 * per number, so nothing hides in a second one. */
	if (n == 0 || n > 20 || (n > 1 && w[0] == '0'))
		return SMG_ERR_PROTO;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(w[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return SMG_ERR_PROTO;
		v = v * 10 + d;
	}
	*out = v;
	return SMG_OK;
}

static int parse_workload(const char *w, size_t n, struct smg_dsvc_req *out)
{
	static const char *const kinds[] = {"read-hot", "write-heavy", "mixed", "stop"};

	for (size_t i = 0; i < SMG_ARRAY_LEN(kinds); i++)
		if (word_is(w, n, kinds[i]))
			goto ok;
	/* trace:PATH names a file the operator (root) chose on this host. */
	if (n <= 6 || memcmp(w, "trace:", 6) != 0 || w[6] != '/')
		return SMG_ERR_PROTO;
ok:
	memcpy(out->word, w, n);
	out->word[n] = '\0';
	return SMG_OK;
}

static int parse_arg(enum arg a, const char *w, size_t n, unsigned *nums,
		     struct smg_dsvc_req *out)
{
	switch (a) {
	case A_NAME:
	case A_OPTNAME:
		if (!smg_dsvc_name_valid(w, n))
			return SMG_ERR_PROTO;
		memcpy(out->name, w, n);
		out->name[n] = '\0';
		return SMG_OK;
	case A_U64:
		if (*nums >= SMG_ARRAY_LEN(out->num))
			return SMG_ERR_INTERNAL;
		return parse_u64(w, n, &out->num[(*nums)++]);
	case A_MODE:
		if (!word_is(w, n, "waio") && !word_is(w, n, "dbt"))
			return SMG_ERR_PROTO;
		break;
	case A_PHASE:
		if (!word_is(w, n, "bulk") && !word_is(w, n, "iter") &&
		    !word_is(w, n, "final"))
			return SMG_ERR_PROTO;
		break;
	case A_OUTCOME:
		if (!word_is(w, n, "resumed") && !word_is(w, n, "aborted"))
			return SMG_ERR_PROTO;
		break;
	case A_WORKLOAD:
		return parse_workload(w, n, out);
	case A_END:
		return SMG_ERR_PROTO;
	}
	memcpy(out->word, w, n);
	out->word[n] = '\0';
	return SMG_OK;
}

/* The line's words: printable ASCII separated by single spaces. */
static int split(const char *line, size_t len, const char **w, size_t *wl, unsigned max,
		 unsigned *nw)
{
	size_t i = 0;

	*nw = 0;
	while (i < len) {
		size_t s = i;

		while (i < len && line[i] != ' ') {
			if (line[i] < 0x21 || line[i] > 0x7e)
				return SMG_ERR_PROTO;
			i++;
		}
		/* An empty word: a leading, doubled or trailing space. */
		if (i == s || *nw == max)
			return SMG_ERR_PROTO;
		w[*nw] = line + s;
		wl[(*nw)++] = i - s;
		if (i < len && ++i == len)
			return SMG_ERR_PROTO;
	}
	return SMG_OK;
}

int smg_dsvc_parse_request(const uint8_t *body, size_t len, struct smg_dsvc_req *out)
{
	const char *line = (const char *)body, *w[6];
	const uint8_t *nl;
	size_t wl[6], llen;
	unsigned nw, nums = 0, i;
	const struct verb_form *f = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_DSVC_MSG_MAX)
		return SMG_ERR_TOO_LONG;
	/* The line ends within SMG_DSVC_LINE_MAX bytes or the request is
	 * refused before anything else is read. */
	nl = memchr(body, '\n', len < SMG_DSVC_LINE_MAX ? len : SMG_DSVC_LINE_MAX);
	if (nl == NULL)
		return len < SMG_DSVC_LINE_MAX ? SMG_ERR_TRUNCATED : SMG_ERR_TOO_LONG;
	llen = (size_t)(nl - body);
	if ((r = split(line, llen, w, wl, SMG_ARRAY_LEN(w), &nw)) != 0 || nw == 0)
		return r ? r : SMG_ERR_PROTO;
	for (i = 1; i < SMG_DSVC_VERB_MAX_ && f == NULL; i++)
		if (word_is(w[0], wl[0], forms[i].name))
			f = &forms[i];
	if (f == NULL)
		return SMG_ERR_UNKNOWN_TYPE;
	out->verb = (enum smg_dsvc_verb)(f - forms);
	for (i = 0; i < SMG_ARRAY_LEN(f->args) && f->args[i] != A_END; i++) {
		if (1 + i >= nw) {
			if (f->args[i] == A_OPTNAME)
				break;
			return SMG_ERR_PROTO; /* too few arguments */
		}
		if ((r = parse_arg(f->args[i], w[1 + i], wl[1 + i], &nums, out)) != 0)
			return r;
	}
	if (nw > 1 + i)
		return SMG_ERR_PROTO; /* too many arguments */
	out->payload = nl + 1;
	out->payload_len = len - llen - 1;
	/* Bytes after the line where the verb takes none: a request that says
	 * one thing and carries another. */
	if (!f->payload && out->payload_len != 0)
		return SMG_ERR_TRAILING;
	if (f->payload &&
	    (out->payload_len == 0 || out->payload_len > SMG_DSVC_FRAME_MAX))
		return SMG_ERR_PROTO;
	return SMG_OK;
}

static int parse_err_code(const char *w, size_t n, int *err)
{
	uint64_t v;

	if (n < 2 || w[0] != '-' || parse_u64(w + 1, n - 1, &v) != 0 ||
	    v >= (uint64_t)-SMG_ERR_MAX_ || v == 0)
		return SMG_ERR_PROTO;
	*err = -(int)v;
	return SMG_OK;
}

int smg_dsvc_parse_reply(const uint8_t *body, size_t len, struct smg_dsvc_reply *out)
{
	const char *line = (const char *)body, *w[2 + SMG_DSVC_FIELDS_MAX];
	size_t wl[2 + SMG_DSVC_FIELDS_MAX], llen;
	const uint8_t *nl;
	unsigned nw = 0;

	memset(out, 0, sizeof(*out));
	if (len > SMG_DSVC_MSG_MAX)
		return SMG_ERR_TOO_LONG;
	nl = memchr(body, '\n', len < SMG_DSVC_LINE_MAX ? len : SMG_DSVC_LINE_MAX);
	if (nl == NULL)
		return SMG_ERR_PROTO;
	llen = (size_t)(nl - body);
	out->payload = nl + 1;
	out->payload_len = len - llen - 1;
	if (llen >= 4 && memcmp(line, "ERR ", 4) == 0) {
		const char *sp = memchr(line + 4, ' ', llen - 4);
		size_t cl = sp ? (size_t)(sp - line - 4) : llen - 4;

		if (parse_err_code(line + 4, cl, &out->err) != 0)
			return SMG_ERR_PROTO;
		out->text = sp ? sp + 1 : line + llen;
		out->text_len = sp ? llen - 4 - cl - 1 : 0;
		for (size_t i = 0; i < out->text_len; i++)
			if (out->text[i] < 0x20 || out->text[i] > 0x7e)
				return SMG_ERR_PROTO;
		return SMG_OK;
	}
	if (split(line, llen, w, wl, SMG_ARRAY_LEN(w), &nw) != 0 || nw == 0 ||
	    !word_is(w[0], wl[0], "OK") || nw - 1 > SMG_DSVC_FIELDS_MAX)
		return SMG_ERR_PROTO;
	for (unsigned i = 1; i < nw; i++) {
		if (wl[i] >= sizeof(out->fields[0]))
			return SMG_ERR_PROTO;
		memcpy(out->fields[i - 1], w[i], wl[i]);
		out->fields[i - 1][wl[i]] = '\0';
	}
	out->nfields = nw - 1;
	out->text = (const char *)out->payload;
	out->text_len = out->payload_len;
	return SMG_OK;
}
