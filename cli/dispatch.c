/* Subcommand dispatch from the table in commands.c. */
#include <stdarg.h>
#include <stdio.h>
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

/* Run c with the config file's options ahead of its own arguments. */
static int run_with_conf(const struct smg_cmd *c, const char *flag, int argc, char **argv)
{
	const char *path = takes_conf(c->name) ? smg_conf_path(flag) : NULL;
	struct smg_conf *conf;
	char **v;
	int n, rc;

	if (path == NULL)
		return c->run(argc, argv);
	if (smg_conf_load(path, &conf) != SMG_OK)
		return SMG_EXIT_CONFIG;
	if (smg_conf_argv(conf, c->name, argc, argv, &n, &v) != SMG_OK) {
		smg_conf_free(conf);
		return SMG_EXIT_FAIL;
	}
	smg_conf_free(conf);
	rc = c->run(n, v);
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

int smg_cli_usage_error(const struct smg_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "secmig: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (cmd != NULL)
		fprintf(stderr, "%s", cmd->usage);
	else
		print_overview(stderr);
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
	if ((c = smg_cmd_find(argv[1])) == NULL)
		return smg_cli_usage_error(NULL, "unknown command '%s'", argv[1]);
	printf("%s", c->usage);
	return SMG_EXIT_OK;
}

int smg_cli_main(int argc, char **argv)
{
	const struct smg_cmd *c;
	const char *conf = NULL;
	int i = 1;

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
			return smg_cli_usage_error(NULL, "unknown option '%s'", argv[i]);
		}
	}
	if (i >= argc)
		return smg_cli_usage_error(NULL, "no command given");
	if ((c = smg_cmd_find(argv[i])) == NULL)
		return smg_cli_usage_error(NULL, "unknown command '%s'", argv[i]);
	/* Subcommands parse their own options with getopt_long from argv[0]. */
	return run_with_conf(c, conf, argc - i, argv + i);
}
