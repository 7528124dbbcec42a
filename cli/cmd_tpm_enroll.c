/* secmig tpm-enroll: create (once) this host's TPM-resident ECDH key and
 * attestation key, and print the block a peer's policy file enrols. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/attest.h"
#include "base/base.h"
#include "cli/cli.h"

#define ENROLL_OUT_MAX 8192

struct enroll_args {
	const char *tcti, *name, *config;
	uint32_t pcr_mask;
	bool have_pcrs, force;
	const char *labels[SMG_POLICY_LABELS_MAX];
	size_t nlabels;
};

static int parse_args(int argc, char **argv, struct enroll_args *a)
{
	static const struct option opts[] = {
	    {"tcti", required_argument, NULL, 't'},
	    {"pcrs", required_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'n'},
	    {"config", required_argument, NULL, 'c'},
	    {"label", required_argument, NULL, 'l'},
	    {"force", no_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0},
	};
	const struct smg_cmd *cmd = smg_cmd_find("tpm-enroll");
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "t:p:n:c:l:f", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			a->tcti = optarg;
			break;
		case 'p':
			if (smg_pcr_mask_parse(optarg, &a->pcr_mask) != 0)
				return smg_cli_usage_error(cmd, "bad PCR list '%s'",
							   optarg);
			a->have_pcrs = true;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'l':
			if (a->nlabels == SMG_POLICY_LABELS_MAX ||
			    strchr(optarg, '=') == NULL)
				return smg_cli_usage_error(cmd, "bad label '%s'", optarg);
			a->labels[a->nlabels++] = optarg;
			break;
		case 'f':
			a->force = true;
			break;
		default:
			return smg_cli_usage_error(cmd, "bad option");
		}
	}
	if (optind != argc)
		return smg_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return SMG_EXIT_OK;
}

int smg_cmd_tpm_enroll(int argc, char **argv)
{
	struct enroll_args a = {.pcr_mask = SMG_PCR_MASK_DEFAULT};
	struct smg_policy *pol = NULL;
	struct smg_tpm *tpm = NULL;
	struct smg_tpm_keys k;
	char host[SMG_POLICY_NAME_MAX] = "", err[512], *out = NULL;
	int rc, r;

	if ((rc = parse_args(argc, argv, &a)) != SMG_EXIT_OK)
		return rc;
	if (a.config != NULL) {
		if (smg_policy_load(a.config, &pol, err, sizeof(err)) != 0) {
			fprintf(stderr, "secmig: %s\n", err);
			return SMG_EXIT_CONFIG;
		}
		if (a.tcti == NULL && pol->tcti[0])
			a.tcti = pol->tcti;
		if (!a.have_pcrs)
			a.pcr_mask = pol->pcr_mask;
		if (a.name == NULL)
			a.name = pol->host;
		for (size_t i = 0; i < pol->nlabels && a.nlabels < SMG_POLICY_LABELS_MAX;
		     i++)
			a.labels[a.nlabels++] = pol->labels[i];
	}
	if (a.tcti == NULL) {
		smg_policy_free(pol);
		return smg_cli_usage_error(
		    smg_cmd_find("tpm-enroll"),
		    "no TCTI: give --tcti or a --config with a tcti line");
	}
	if (a.name == NULL) {
		gethostname(host, sizeof(host) - 1);
		a.name = host;
	}
	if ((r = smg_tpm_open(a.tcti, &tpm)) != 0 ||
	    (r = smg_tpm_enroll(tpm, a.pcr_mask, a.force, &k)) != 0) {
		fprintf(stderr, "secmig: tpm-enroll: %s\n", smg_strerror(r));
		rc = smg_exit_from_err(r);
		goto out;
	}
	if ((out = malloc(ENROLL_OUT_MAX)) == NULL ||
	    smg_policy_format_peer(a.name, &k, a.labels, a.nlabels, out,
				   ENROLL_OUT_MAX) != 0) {
		rc = SMG_EXIT_FAIL;
		goto out;
	}
	printf("# %s keys of %s (ECDH 0x%08x, AK 0x%08x); add this block to each peer's "
	       "policy file\n%s",
	       k.created ? "new" : "existing", a.name, SMG_TPM_HANDLE_ECDH,
	       SMG_TPM_HANDLE_AK, out);
	if (!k.pcrs_match) {
		fprintf(
		    stderr,
		    "secmig: tpm-enroll: the PCRs changed since these keys were created: "
		    "the "
		    "TPM will refuse the ECDH key. If the new state is trusted, run "
		    "`secmig tpm-enroll --force` and re-enrol this host at its peers.\n");
		rc = SMG_EXIT_ATTEST;
		goto out;
	}
	rc = SMG_EXIT_OK;
out:
	free(out);
	smg_tpm_close(tpm);
	smg_policy_free(pol);
	return rc;
}
