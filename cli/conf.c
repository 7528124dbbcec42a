/* conf: /etc/secmig/secmig.conf, the per-host config file (secmig.conf(5)).
 * Its lines are the commands' long options without the dashes:
 *
 *   state-dir /var/lib/secmig   # top level: every command that takes it
 *   [recv]                      # lines for `secmig recv` only, to the next [..]
 *   listen 0.0.0.0:4849
 *   once                        # a bare key: a flag without a value
 *
 * The file only feeds options: each entry becomes --key=value ahead of the
 * command line's own arguments, so a flag given there wins (getopt keeps
 * the last). The parser is a pure function of the bytes (fuzz/fuzz_conf.c);
 * what a value means is the command's own parser's business, which
 * `secmig config check` runs on every entry. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/conf.h"

/* Top-level keys and the commands that take them: the host's identity,
 * files and state directory, shared by the migration commands. */
static const struct {
	const char *key, *cmds;
} common[] = {
    {"state-dir", "send recv resolve status cancel tune disk sim qemu precheck"},
    {"key", "send recv resolve precheck"},
    {"peers", "send recv resolve precheck"},
    {"name", "send recv resolve precheck"},
    {"policy", "send recv resolve precheck"},
    {"tcti", "send recv resolve precheck"},
    {"operators", "send recv"},
    {"defs", "recv disk"},
};

const char *smg_conf_common(const char *key)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(common); i++)
		if (strcmp(common[i].key, key) == 0)
			return common[i].cmds;
	return NULL;
}

static bool word_in(const char *w, const char *list)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static bool key_ok(const char *k, size_t n, size_t max)
{
	if (n == 0 || n > max || k[0] < 'a' || k[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') ||
		      k[i] == '-'))
			return false;
	return true;
}

static int cerr(char *err, size_t n, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cerr(char *err, size_t n, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int w = snprintf(err, n, "line %u: ", line);

	if (w > 0 && (size_t)w < n) {
		va_start(ap, fmt);
		vsnprintf(err + w, n - (size_t)w, fmt, ap);
		va_end(ap);
	}
	return SMG_ERR_CONFIG;
}

/* One line (NUL-terminated, no newline) into c. */
static int parse_line(struct smg_conf *c, char *s, unsigned line, char *section,
		      char *err, size_t err_len)
{
	struct smg_conf_entry *e;
	char *v, *end;
	size_t kn;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return SMG_OK;
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return cerr(err, err_len, line, "control character");
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*s == '[') {
		size_t n = (size_t)(end - s);
		if (n < 3 || end[-1] != ']' ||
		    !key_ok(s + 1, n - 2, SMG_CONF_SECTION_MAX - 1))
			return cerr(err, err_len, line,
				    "bad section '%.40s' (want [command])", s);
		memcpy(section, s + 1, n - 2);
		section[n - 2] = '\0';
		return SMG_OK;
	}
	kn = strcspn(s, " \t");
	if (!key_ok(s, kn, SMG_CONF_KEY_MAX))
		return cerr(err, err_len, line,
			    "bad key '%.40s' (an option's name: [a-z0-9-], up to %d)", s,
			    SMG_CONF_KEY_MAX);
	v = s + kn;
	while (*v == ' ' || *v == '\t')
		*v++ = '\0';
	if (strlen(v) > SMG_CONF_VALUE_MAX)
		return cerr(err, err_len, line, "value longer than %d bytes",
			    SMG_CONF_VALUE_MAX);
	if (c->n >= SMG_CONF_ENTRIES_MAX)
		return cerr(err, err_len, line, "more than %d entries",
			    SMG_CONF_ENTRIES_MAX);
	e = &c->v[c->n++];
	e->line = line;
	snprintf(e->section, sizeof(e->section), "%s", section);
	memcpy(e->key, s, kn); /* kn <= SMG_CONF_KEY_MAX: key_ok */
	e->key[kn] = '\0';
	e->has_value = *v != '\0';
	snprintf(e->value, sizeof(e->value), "%s", v);
	if (section[0] == '\0' && smg_conf_common(e->key) == NULL)
		return cerr(err, err_len, line,
			    "'%s' belongs in a [command] section (top level: state-dir, "
			    "key, peers, name, policy, tcti, operators, defs)",
			    e->key);
	return SMG_OK;
}

int smg_conf_parse(const char *text, size_t len, struct smg_conf **out, char *err,
		   size_t err_len)
{
	char buf[SMG_CONF_LINE_MAX + 1], section[SMG_CONF_SECTION_MAX] = "";
	struct smg_conf *c;
	unsigned line = 0;
	size_t i = 0;
	int r = SMG_OK;

	*out = NULL;
	if (err_len > 0)
		err[0] = '\0';
	if (len > SMG_CONF_FILE_MAX)
		return cerr(err, err_len, 0, "file longer than %d bytes",
			    SMG_CONF_FILE_MAX);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SMG_ERR_NOMEM;
	while (i < len && r == SMG_OK) {
		size_t n = 0;

		line++;
		for (; i < len && text[i] != '\n' && r == SMG_OK; i++) {
			if (text[i] == '\0')
				r = cerr(err, err_len, line, "NUL byte");
			else if (n >= SMG_CONF_LINE_MAX)
				r = cerr(err, err_len, line, "line longer than %d bytes",
					 SMG_CONF_LINE_MAX);
			else
				buf[n++] = text[i];
		}
		if (r != SMG_OK)
			break;
		i++; /* the newline */
		if (n > 0 && buf[n - 1] == '\r')
			n--;
		buf[n] = '\0';
		r = parse_line(c, buf, line, section, err, err_len);
	}
	if (r != SMG_OK) {
		free(c);
		return r;
	}
	*out = c;
	return SMG_OK;
}

void smg_conf_free(struct smg_conf *c)
{
	free(c);
}

const char *smg_conf_path(const char *flag)
{
	const char *env = getenv("SECMIG_CONFIG");

	if (flag != NULL)
		return flag;
	if (env != NULL)
		return env[0] != '\0' ? env : NULL;
	return access(SMG_CONF_DEFAULT, F_OK) == 0 ? SMG_CONF_DEFAULT : NULL;
}

int smg_conf_load(const char *path, struct smg_conf **out)
{
	char err[512], *text = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = smg_file_read_private(path, SMG_CONF_FILE_MAX, &text, &len, err,
				       sizeof(err))) != SMG_OK) {
		fprintf(stderr, "secmig: %s\n", err[0] != '\0' ? err : smg_strerror(r));
		return r == SMG_ERR_PERM ? r : SMG_ERR_CONFIG;
	}
	r = smg_conf_parse(text, len, out, err, sizeof(err));
	if (r != SMG_OK)
		fprintf(stderr, "secmig: %s:%s\n", path, err + 5); /* "line N: .." */
	free(text);
	return r;
}

static bool applies(const struct smg_conf_entry *e, const char *cmd)
{
	if (e->section[0] != '\0')
		return strcmp(e->section, cmd) == 0;
	return word_in(cmd, smg_conf_common(e->key));
}

/* How many arguments after argv[0] the last smg_conf_argv took from the
 * file (one process runs one command). */
static int conf_args;

int smg_conf_args(void)
{
	return conf_args;
}

int smg_conf_argv(const struct smg_conf *c, const char *cmd, int argc, char **argv,
		  int *out_argc, char ***out_argv)
{
	char **v;
	int n = 0;

	*out_argc = 0;
	*out_argv = NULL;
	if ((v = calloc((size_t)argc + c->n + 1, sizeof(*v))) == NULL)
		return SMG_ERR_NOMEM;
	if ((v[n++] = strdup(argv[0])) == NULL)
		goto fail;
	for (unsigned i = 0; i < c->n; i++) {
		const struct smg_conf_entry *e = &c->v[i];
		char buf[SMG_CONF_KEY_MAX + SMG_CONF_VALUE_MAX + 4];

		if (!applies(e, cmd))
			continue;
		snprintf(buf, sizeof(buf), "--%s%s%s", e->key, e->has_value ? "=" : "",
			 e->value);
		if ((v[n++] = strdup(buf)) == NULL)
			goto fail;
	}
	conf_args = n - 1;
	for (int i = 1; i < argc; i++)
		if ((v[n++] = strdup(argv[i])) == NULL)
			goto fail;
	*out_argc = n;
	*out_argv = v;
	return SMG_OK;
fail:
	smg_conf_argv_free(n, v);
	return SMG_ERR_NOMEM;
}

void smg_conf_argv_free(int argc, char **argv)
{
	if (argv == NULL)
		return;
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}
