/* secmig keygen [--force] PATH: a software-mode identity key pair. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "cli/cli.h"
#include "transport/transport.h"

/* The key's directory, created 0700 if missing (the first step of the
 * README works on a fresh host); an existing one is left as it is. */
static int make_parent(const char *path)
{
	char dir[1024];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return SMG_ERR_TOO_LONG;
	strcpy(dir, path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return SMG_OK;
	*slash = '\0';
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		goto fail;
	return SMG_OK;
fail:
	fprintf(stderr, "secmig: cannot create %s: %s\n", dir, strerror(errno));
	return smg_err_sys(errno);
}

int smg_cmd_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct smg_cmd *cmd = smg_cmd_find("keygen");
	char pub[SMG_PUBKEY_TEXT_LEN];
	bool force = false;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			printf("%s", cmd->usage);
			return SMG_EXIT_OK;
		default:
			return smg_cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind != argc - 1)
		return smg_cli_usage_error(cmd, "keygen takes exactly one PATH");
	if ((r = make_parent(argv[optind])) != SMG_OK)
		return SMG_EXIT_CONFIG;
	r = smg_identity_generate(argv[optind], force, pub, sizeof(pub));
	if (r == SMG_ERR_EXISTS) {
		fprintf(
		    stderr,
		    "secmig: %s or %s.pub already exists; use --force to replace it\n",
		    argv[optind], argv[optind]);
		return SMG_EXIT_CONFIG;
	}
	if (r != 0) {
		fprintf(stderr, "secmig: cannot write key %s: %s\n", argv[optind],
			smg_strerror(r));
		return SMG_EXIT_CONFIG; /* a key file that cannot be written */
	}
	printf("%s\n", pub);
	return SMG_EXIT_OK;
}
