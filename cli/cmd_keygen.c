/* secmig keygen [--force] PATH: a software-mode identity key pair. */
#include <getopt.h>
#include <stdio.h>

#include "base/base.h"
#include "cli/cli.h"
#include "transport/transport.h"

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
		return smg_exit_from_err(r) == SMG_EXIT_FAIL ? SMG_EXIT_CONFIG
							     : smg_exit_from_err(r);
	}
	printf("%s\n", pub);
	return SMG_EXIT_OK;
}
