/* Line-oriented configuration text: the line reader, word splitter and
 * error prefix that the policy, host definitions, operators and domain
 * config parsers share. Each parser keeps its own grammar and its own
 * wording for a long line or a NUL byte. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"

void smg_lines_init(struct smg_lines *l, const char *text, size_t len, const char *name,
		    char *err, size_t err_len)
{
	*l = (struct smg_lines){
	    .text = text, .len = len, .name = name, .err = err, .err_len = err_len};
	if (err != NULL && err_len > 0)
		err[0] = '\0';
}

int smg_lines_next(struct smg_lines *l, char *buf, size_t max)
{
	const char *nl;
	size_t n;

	if (l->off >= l->len)
		return 0;
	nl = memchr(l->text + l->off, '\n', l->len - l->off);
	n = nl != NULL ? (size_t)(nl - (l->text + l->off)) : l->len - l->off;
	l->line++;
	if (n > max)
		return SMG_ERR_TOO_LONG;
	memcpy(buf, l->text + l->off, n);
	buf[n] = '\0';
	l->off += n + (nl != NULL);
	if (strlen(buf) != n)
		return SMG_ERR_INVAL;
	buf[strcspn(buf, "#")] = '\0';
	return 1;
}

int smg_lines_err(struct smg_lines *l, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (l->err == NULL || l->err_len == 0)
		return SMG_ERR_CONFIG;
	if (l->name != NULL)
		n = snprintf(l->err, l->err_len, "%s:%u: ", l->name, l->line);
	else if (l->line > 0)
		n = snprintf(l->err, l->err_len, "line %u: ", l->line);
	if (n < 0 || (size_t)n >= l->err_len)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(l->err + n, l->err_len - (size_t)n, fmt, ap);
	va_end(ap);
	return SMG_ERR_CONFIG;
}

int smg_words_split(char *s, const char *seps, char **w, int max)
{
	char *save = NULL;
	int n = 0;

	for (char *t = strtok_r(s, seps, &save); t != NULL;
	     t = strtok_r(NULL, seps, &save)) {
		if (n == max)
			return -1;
		w[n++] = t;
	}
	return n;
}

char *smg_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int smg_key_value(char *s, char **k, char **v)
{
	char *eq = strchr(s, '=');

	if (eq == NULL)
		return SMG_ERR_INVAL;
	*eq = '\0';
	*k = smg_trim(s);
	*v = smg_trim(eq + 1);
	return SMG_OK;
}
