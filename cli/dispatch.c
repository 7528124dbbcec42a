/* Subcommand dispatch from the table in commands.c. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/conf.h"

/* Commands that take options from the config file (secmig.conf(5)). */
#define CONF_COMMANDS "send recv resolve status cancel tune disk sim qemu precheck"

static bool takes_conf(const char *cmd)
{
	static const char list[] = CONF_COMMANDS;
	size_t n = strlen(cmd);

	for (const char *p = list; (p = strstr(p, cmd)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* The arguments of the command running, for a usage error's "did you
 * mean" (getopt leaves the offending one at optind - 1). */
static char **cur_argv;
static int cur_argc;

#define NEAR_MAX 64 /* longest word compared */

void smg_cli_set_args(int argc, char **argv)
{
	cur_argc = argc;
	cur_argv = argv;
}

/* Edit distance of a and b (both shorter than NEAR_MAX), a swap of two
 * neighbours counting as one edit (optimal string alignment). */
static unsigned distance(const char *a, size_t na, const char *b, size_t nb)
{
	static unsigned d[NEAR_MAX + 1][NEAR_MAX + 1];

	if (na >= NEAR_MAX || nb >= NEAR_MAX)
		return NEAR_MAX;
	for (size_t i = 0; i <= na; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= nb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= na; i++)
		for (size_t j = 1; j <= nb; j++) {
			unsigned best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[na][nb];
}

/* The nearest of the candidates to word, if near: a typo (at most 2 edits,
 * fewer for short words) or a unique-looking prefix. */
struct near {
	const char *best;
	size_t len;
	unsigned d;
};

static void near_try(struct near *n, const char *word, const char *cand, size_t cl)
{
	size_t wl = strlen(word);
	unsigned d = distance(word, wl, cand, cl);

	if (wl >= 3 && cl > wl && strncmp(word, cand, wl) == 0)
		d = 1; /* a prefix */
	if (d <= (wl <= 3 ? 1u : 2u) && (n->best == NULL || d < n->d)) {
		n->best = cand;
		n->len = cl;
		n->d = d;
	}
}

/* Every --flag named in a command's usage text is a candidate. */
static void near_flag(struct near *n, const char *usage, const char *flag)
{
	for (const char *p = usage; (p = strstr(p, "--")) != NULL;) {
		size_t l = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
		if (l > 2)
			near_try(n, flag, p, l);
		p += l;
	}
}

/* "bad option": say which, as getopt saw it, and the nearest flag. */
static void bad_option(const struct smg_cmd *cmd, char *msg, size_t n)
{
	char flag[NEAR_MAX];
	struct near nr = {0};
	const char *arg;

	if (cur_argv == NULL || optind < 1 || optind > cur_argc)
		return;
	arg = cur_argv[optind - 1];
	if (arg[0] != '-')
		return; /* a nested command's own argv: not ours to name */
	if (optopt != 0 && strncmp(arg, "--", 2) == 0) {
		snprintf(msg, n, "option '%.*s' requires an argument", NEAR_MAX, arg);
		return;
	}
	if (optopt != 0 && optopt != '?') {
		snprintf(msg, n, "unknown option '-%c'", optopt);
		return;
	}
	snprintf(flag, sizeof(flag), "%.*s", (int)strcspn(arg, "="), arg);
	if (cmd != NULL)
		near_flag(&nr, cmd->usage, flag);
	if (nr.best != NULL)
		snprintf(msg, n, "unrecognized option '%.*s'; did you mean '%.*s'?",
			 NEAR_MAX, arg, (int)nr.len, nr.best);
	else
		snprintf(msg, n, "unrecognized option '%.*s'", NEAR_MAX, arg);
}

static void unknown_command(const char *name, char *msg, size_t n)
{
	struct near nr = {0};

	for (const struct smg_cmd *c = smg_cmds; c->name != NULL; c++)
		near_try(&nr, name, c->name, strlen(c->name));
	if (nr.best != NULL)
		snprintf(msg, n, "unknown command '%.*s'; did you mean '%s'?", NEAR_MAX,
			 name, nr.best);
	else
		snprintf(msg, n, "unknown command '%.*s'", NEAR_MAX, name);
}

/* Run c with the config file's options ahead of its own arguments. */
static int run_with_conf(const struct smg_cmd *c, const char *flag, int argc, char **argv)
{
	const char *path = takes_conf(c->name) ? smg_conf_path(flag) : NULL;
	struct smg_conf *conf;
	char **v;
	int n, rc;

	cur_argc = argc;
	cur_argv = argv;
	/* init and config check take the file itself: --config names it */
	if (flag != NULL && !takes_conf(c->name))
		setenv("SECMIG_CONFIG", flag, 1);
	if (path == NULL)
		return c->run(argc, argv);
	if (smg_conf_load(path, &conf) != SMG_OK)
		return SMG_EXIT_CONFIG;
	if (smg_conf_argv(conf, c->name, argc, argv, &n, &v) != SMG_OK) {
		smg_conf_free(conf);
		return SMG_EXIT_FAIL;
	}
	smg_conf_free(conf);
	cur_argc = n;
	cur_argv = v;
	rc = c->run(n, v);
	cur_argv = NULL;
	smg_conf_argv_free(n, v);
	return rc;
}

static void print_overview(FILE *f)
{
	fprintf(f,
		"usage: secmig [--verbose|--quiet] [--log-json] [--config FILE] COMMAND "
		"[ARGS]\n\n"
		"Secure live migration of virtual machines.\n\ncommands:\n");
	for (const struct smg_cmd *c = smg_cmds; c->name != NULL; c++)
		fprintf(f, "  %-12s %s\n", c->name, c->summary);
	fprintf(f, "\nRun 'secmig help COMMAND' for a command's options.\n");
}

const struct smg_cmd *smg_cmd_find(const char *name)
{
	for (const struct smg_cmd *c = smg_cmds; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* One line saying what is wrong, one saying where help is: never the
 * whole usage text (that is `secmig help COMMAND`). */
int smg_cli_usage_error(const struct smg_cmd *cmd, const char *fmt, ...)
{
	char msg[512];
	const char *tail;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* "bad option", "proxy: bad option", "unknown option": getopt's '?' */
	tail = strstr(msg, "bad option") != NULL ? strstr(msg, "bad option") : msg;
	if (strcmp(tail, "bad option") == 0 || strcmp(msg, "unknown option") == 0)
		bad_option(cmd, msg + (tail - msg), sizeof(msg) - (size_t)(tail - msg));
	fprintf(stderr, "secmig: %s\n", msg);
	if (cmd != NULL)
		fprintf(stderr, "Try 'secmig help %s' (or 'secmig %s --help').\n",
			cmd->name, cmd->name);
	else
		fprintf(stderr, "Run 'secmig help' for the list of commands.\n");
	return SMG_EXIT_USAGE;
}

int smg_cmd_help(int argc, char **argv)
{
	const struct smg_cmd *c;

	if (argc < 2) {
		print_overview(stdout);
		return SMG_EXIT_OK;
	}
	if (argc > 2)
		return smg_cli_usage_error(smg_cmd_find("help"),
					   "help takes one command name");
	if ((c = smg_cmd_find(argv[1])) == NULL) {
		char msg[256];
		unknown_command(argv[1], msg, sizeof(msg));
		return smg_cli_usage_error(NULL, "%s", msg);
	}
	printf("%s", c->usage);
	return SMG_EXIT_OK;
}

int smg_cli_main(int argc, char **argv)
{
	const struct smg_cmd *c;
	const char *conf = NULL;
	int i = 1;

	opterr = 0; /* smg_cli_usage_error says it, once, with a hint */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			print_overview(stdout);
			return SMG_EXIT_OK;
		} else if (strcmp(argv[i], "--verbose") == 0 ||
			   strcmp(argv[i], "-v") == 0) {
			smg_log_set_level(SMG_LOG_DEBUG);
		} else if (strcmp(argv[i], "--quiet") == 0 ||
			   strcmp(argv[i], "-q") == 0) {
			smg_log_set_level(SMG_LOG_ERROR);
		} else if (strcmp(argv[i], "--log-json") == 0) {
			smg_log_set_json(true);
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			conf = argv[i] + 9;
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			conf = argv[++i];
		} else if (strcmp(argv[i], "--version") == 0) {
			return smg_cmd_version(1, argv);
		} else {
			return smg_cli_usage_error(NULL,
						   "unknown option '%s' (global options: "
						   "--verbose, --quiet, --log-json, "
						   "--config FILE, --version)",
						   argv[i]);
		}
	}
	if (i >= argc)
		return smg_cli_usage_error(NULL, "no command given");
	if ((c = smg_cmd_find(argv[i])) == NULL) {
		char msg[256];
		unknown_command(argv[i], msg, sizeof(msg));
		return smg_cli_usage_error(NULL, "%s", msg);
	}
	/* Every command answers --help the same way (before its config is
	 * read: help works with a broken file). */
	for (int k = i + 1; k < argc && strcmp(argv[k], "--") != 0; k++)
		if (strcmp(argv[k], "--help") == 0) {
			printf("%s", c->usage);
			return SMG_EXIT_OK;
		}
	/* Subcommands parse their own options with getopt_long from argv[0]. */
	return run_with_conf(c, conf, argc - i, argv + i);
}
