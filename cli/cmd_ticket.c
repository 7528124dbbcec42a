/* `secmig ticket sign|show`: an operator's signed permission for one
 * migration (docs/audit.md), carried by `send --ticket FILE`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "transport/transport.h"

#define TICKET_LIFE_DEFAULT 3600 /* seconds */

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("ticket"), fmt, arg);
}

int smg_cli_parse_time(const char *s, uint64_t now, uint64_t *out)
{
	struct tm tm;
	char *end;
	unsigned long long v;

	if (s[0] == '+' || s[0] == '-') {
		uint64_t mul = 1;
		v = strtoull(s + 1, &end, 10);
		if (end == s + 1)
			return SMG_ERR_INVAL;
		if (*end == 'm')
			mul = 60;
		else if (*end == 'h')
			mul = 3600;
		else if (*end == 'd')
			mul = 86400;
		else if (*end != 's' && *end != '\0')
			return SMG_ERR_INVAL;
		if (*end != '\0' && end[1] != '\0')
			return SMG_ERR_INVAL;
		if (v > 100ull * 365 * 86400 / mul)
			return SMG_ERR_INVAL;
		v *= mul;
		if (s[0] == '-' && v > now)
			return SMG_ERR_INVAL;
		*out = s[0] == '+' ? now + v : now - v;
		return SMG_OK;
	}
	if (s[0] == '@') {
		v = strtoull(s + 1, &end, 10);
		if (end == s + 1 || *end != '\0')
			return SMG_ERR_INVAL;
		*out = v;
		return SMG_OK;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return SMG_ERR_INVAL;
	*out = (uint64_t)timegm(&tm);
	return SMG_OK;
}

int smg_cli_ticket_read(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
	char text[SMG_TICKET_TEXT_MAX + 1];
	FILE *f = fopen(path, "r");
	size_t n;
	int r;

	*len = 0;
	if (f == NULL) {
		fprintf(stderr, "secmig: ticket %s: cannot open it\n", path);
		return SMG_ERR_CONFIG;
	}
	n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (n > SMG_TICKET_TEXT_MAX ||
	    (r = smg_ticket_dearmor(text, n, buf, cap, len)) != SMG_OK) {
		fprintf(stderr,
			"secmig: %s is not a secmig ticket (secmig ticket sign)\n", path);
		return SMG_ERR_CONFIG;
	}
	return SMG_OK;
}

static void iso(uint64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int sign(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"operator", required_argument, NULL, 'o'},
	    {"vm", required_argument, NULL, 'v'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"not-after", required_argument, NULL, 'n'},
	    {"out", required_argument, NULL, 'O'},
	    {NULL, 0, NULL, 0},
	};
	struct smg_ticket t;
	struct smg_identity *id = NULL;
	const char *key = NULL, *out = NULL, *not_after = "+1h";
	uint8_t buf[SMG_TICKET_MAX];
	char text[SMG_TICKET_TEXT_MAX], a[32], b[32];
	size_t len;
	int c, r;

	memset(&t, 0, sizeof(t));
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:o:v:f:t:n:O:", opts, NULL)) != -1) {
		char *dst = c == 'o'   ? t.operator_name
			    : c == 'v' ? t.vm
			    : c == 'f' ? t.from
			    : c == 't' ? t.to
				       : NULL;
		if (dst != NULL) {
			if (strlen(optarg) > SMG_AUDIT_NAME_MAX)
				return usage("name too long: '%s'", optarg);
			memcpy(dst, optarg, strlen(optarg) + 1);
		} else if (c == 'k') {
			key = optarg;
		} else if (c == 'n') {
			not_after = optarg;
		} else if (c == 'O') {
			out = optarg;
		} else {
			return usage("bad option%s", "");
		}
	}
	if (key == NULL || !t.operator_name[0] || !t.vm[0] || !t.from[0] || !t.to[0])
		return usage(
		    "ticket sign needs --key, --operator, --vm, --from and --to%s", "");
	t.issued = (uint64_t)time(NULL);
	if (smg_cli_parse_time(not_after, t.issued, &t.not_after) != SMG_OK)
		return usage("--not-after: +30m, +2h, +1d, @UNIXTIME or "
			     "YYYY-MM-DDTHH:MM:SSZ, not '%s'",
			     not_after);
	if (t.not_after <= t.issued)
		fprintf(stderr, "secmig: warning: this ticket is already expired\n");
	if ((r = smg_identity_load(key, &id)) != SMG_OK) {
		fprintf(stderr, "secmig: operator key %s: %s\n", key, smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	r = smg_ticket_sign(&t, id, buf, sizeof(buf), &len);
	smg_identity_free(id);
	if (r != SMG_OK)
		return usage("names must be 1-64 of [A-Za-z0-9._-]%s", "");
	iso(t.issued, a, sizeof(a));
	iso(t.not_after, b, sizeof(b));
	r = snprintf(text, sizeof(text),
		     "# secmig ticket: operator %s may migrate %s from %s to %s, once,\n"
		     "# issued %s, valid until %s\n",
		     t.operator_name, t.vm, t.from, t.to, a, b);
	if (smg_ticket_armor(buf, len, text + r, sizeof(text) - (size_t)r) != SMG_OK)
		return SMG_EXIT_FAIL;
	if (out == NULL) {
		fputs(text, stdout);
		return SMG_EXIT_OK;
	}
	FILE *f = fopen(out, "wx");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "secmig: cannot write %s (exists?)\n", out);
		return SMG_EXIT_CONFIG;
	}
	return SMG_EXIT_OK;
}

static int show(int argc, char **argv)
{
	uint8_t buf[SMG_TICKET_MAX], d[SMG_AUDIT_DIGEST_LEN];
	char a[32], b[32], hex[2 * SMG_AUDIT_DIGEST_LEN + 1];
	struct smg_ticket t;
	size_t len;

	if (argc != 2)
		return usage("ticket show takes one FILE%s", "");
	if (smg_cli_ticket_read(argv[1], buf, sizeof(buf), &len) != SMG_OK)
		return SMG_EXIT_CONFIG;
	if (smg_ticket_decode(buf, len, &t) != SMG_OK) {
		fprintf(stderr, "secmig: %s: malformed ticket\n", argv[1]);
		return SMG_EXIT_CONFIG;
	}
	smg_ticket_digest(buf, len, d);
	smg_hex_encode(d, sizeof(d), hex);
	iso(t.issued, a, sizeof(a));
	iso(t.not_after, b, sizeof(b));
	printf("operator %s\nvm %s\nfrom %s\nto %s\nissued %s\nnot-after %s\ndigest %s\n",
	       t.operator_name, t.vm, t.from, t.to, a, b, hex);
	return SMG_EXIT_OK;
}

int smg_cmd_ticket(int argc, char **argv)
{
	if (argc < 2)
		return usage("ticket needs sign or show%s", "");
	if (!strcmp(argv[1], "sign"))
		return sign(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return show(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("%s", smg_cmd_find("ticket")->usage);
		return SMG_EXIT_OK;
	}
	return usage("unknown subcommand '%s'", argv[1]);
}
