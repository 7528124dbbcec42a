/* secmig config check FILE: validate a host's policy/config file and report
 * every error with its line number, before a daemon trips over it. */
#include <stdio.h>
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/conf.h"

int smg_cmd_config(int argc, char **argv)
{
	const struct smg_cmd *cmd = smg_cmd_find("config");
	struct smg_policy *pol = NULL;
	char err[512];
	size_t senders = 0;

	if (argc == 4 && strcmp(argv[1], "check") == 0 &&
	    strcmp(argv[2], "--defs") == 0) {
		struct smg_hostdef *d = NULL;
		if (smg_hostdef_load(argv[3], &d, err, sizeof(err)) != 0) {
			fprintf(stderr, "secmig: %s\n", err);
			return SMG_EXIT_CONFIG;
		}
		printf("%s: ok: storage %s, %u bridge(s), %u vm definition(s)\n", argv[3],
		       d->storage, d->n_bridges, d->n_vms);
		smg_hostdef_free(d);
		return SMG_EXIT_OK;
	}
	if (argc < 2 || argc > 4 || strcmp(argv[1], "check") != 0)
		return smg_cli_usage_error(cmd, "expected: config check [FILE.conf | "
						"--policy FILE | --defs FILE]");
	/* The per-host config file: no FILE (the one secmig reads) or *.conf. */
	if (argc == 2)
		return smg_cli_conf_check(smg_conf_path(NULL));
	if (argc == 3 && strlen(argv[2]) > 5 &&
	    strcmp(argv[2] + strlen(argv[2]) - 5, ".conf") == 0)
		return smg_cli_conf_check(argv[2]);
	if (argc == 4 && strcmp(argv[2], "--policy") == 0)
		argv++;
	else if (argc != 3)
		return smg_cli_usage_error(cmd, "expected: config check [FILE.conf | "
						"--policy FILE | --defs FILE]");
	if (smg_policy_load(argv[2], &pol, err, sizeof(err)) != 0) {
		fprintf(stderr, "secmig: %s\n", err);
		return SMG_EXIT_CONFIG;
	}
	for (size_t i = 0; i < pol->npeers; i++)
		senders += pol->peers[i].may_send;
	printf("%s: ok: host %s, mode %s, pcrs 0x%06x, %zu peer(s), %zu may send here\n",
	       argv[2], pol->host, pol->software_mode ? "software (opt-in)" : "tpm",
	       pol->pcr_mask, pol->npeers, senders);
	smg_policy_free(pol);
	return SMG_EXIT_OK;
}
