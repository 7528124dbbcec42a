/* `secmig sim`: run a sim host and manage its domains. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "simhost/simhost.h"

#define DEFAULT_DIR "/var/lib/secmig"

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("sim"), fmt, arg);
}

#define SIM_START_WAIT_MS 3000

static int host_call(const char *where, const char *req, const void *payload, size_t plen,
		     bool print)
{
	char *reply = malloc(SMG_SIM_MSG_MAX);
	int fd, r;

	if (reply == NULL)
		return SMG_EXIT_FAIL;
	/* A host started a moment ago (`secmig sim host &` on the line before)
	 * may not have bound its socket yet: give it a few seconds. */
	for (int i = 0; i < SIM_START_WAIT_MS / 50; i++) {
		if ((r = smg_sim_client_connect(where, &fd)) == SMG_OK ||
		    r != SMG_ERR_SYS ||
		    (smg_err_errno() != ENOENT && smg_err_errno() != ECONNREFUSED))
			break;
		usleep(50000);
	}
	if (r != SMG_OK) {
		fprintf(stderr,
			"secmig: no sim host at %s: %s (start one with "
			"'secmig sim host --state-dir DIR')\n",
			where,
			r == SMG_ERR_SYS ? strerror(smg_err_errno()) : smg_strerror(r));
		free(reply);
		return SMG_EXIT_BACKEND;
	}
	r = smg_sim_client_call(fd, req, payload, plen, reply, SMG_SIM_MSG_MAX, NULL);
	close(fd);
	if (r != SMG_OK) {
		fprintf(stderr, "secmig: sim %s: %s\n", req,
			reply[0] ? reply : smg_strerror(r));
		free(reply);
		return r == SMG_ERR_INTEGRITY ? SMG_EXIT_INTEGRITY
		       : r == SMG_ERR_CONFIG  ? SMG_EXIT_CONFIG
					      : SMG_EXIT_BACKEND;
	}
	if (print)
		fputs(reply, stdout);
	free(reply);
	return SMG_EXIT_OK;
}

static int do_create(const char *where, const char *path)
{
	struct smg_sim_config cfg;
	char err[256], *text;
	size_t len;
	int rc;

	if (smg_sim_config_load(path, &text, &len, &cfg, err, sizeof(err)) != SMG_OK) {
		fprintf(stderr, "secmig: %s: %s\n", path, err);
		return SMG_EXIT_CONFIG;
	}
	rc = host_call(where, "CREATE", text, len, false);
	if (rc == SMG_EXIT_OK)
		printf("created %s (%llu MiB, %u vCPUs)\n", cfg.name,
		       (unsigned long long)(cfg.mem_bytes >> 20), cfg.vcpus);
	free(text);
	return rc;
}

int smg_cmd_sim(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *where = getenv("SECMIG_STATE_DIR");
	char req[SMG_DOMAIN_NAME_MAX + 16];
	const char *sub;
	int c;

	if (where == NULL)
		where = DEFAULT_DIR;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+d:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
		case 's':
			where = optarg;
			break;
		case 'h':
			printf("%s", smg_cmd_find("sim")->usage);
			return SMG_EXIT_OK;
		default:
			return usage("bad option%s", "");
		}
	}
	if (optind >= argc)
		return usage("sim needs a subcommand%s", "");
	sub = argv[optind++];
	/* Options may also follow the subcommand. */
	while ((c = getopt_long(argc, argv, "d:s:", opts, NULL)) != -1) {
		if (c != 'd' && c != 's')
			return usage("bad option%s", "");
		where = optarg;
	}
	int left = argc - optind;
	if (strcmp(sub, "host") == 0) {
		if (left != 0)
			return usage("sim host takes no arguments%s", "");
		int r = smg_sim_host_run(where);
		if (r != SMG_OK)
			fprintf(stderr, "secmig: sim host %s: %s\n", where,
				r == SMG_ERR_SYS ? strerror(smg_err_errno())
						 : smg_strerror(r));
		return r == SMG_OK ? SMG_EXIT_OK : SMG_EXIT_BACKEND;
	}
	if (strcmp(sub, "list") == 0) {
		if (left != 0)
			return usage("sim list takes no arguments%s", "");
		return host_call(where, "LIST", NULL, 0, true);
	}
	if (left != 1)
		return usage("sim %s needs one argument", sub);
	if (strcmp(sub, "create") == 0)
		return do_create(where, argv[optind]);
	if (strcmp(sub, "vtpm") == 0) {
		if (strlen(argv[optind]) >= SMG_DOMAIN_NAME_MAX ||
		    strchr(argv[optind], ' ') != NULL)
			return usage("bad domain name '%s'", argv[optind]);
		snprintf(req, sizeof(req), "VTPM %s", argv[optind]);
		return host_call(where, req, NULL, 0, true);
	}
	if (strcmp(sub, "verify") == 0 || strcmp(sub, "destroy") == 0 ||
	    strcmp(sub, "pause") == 0 || strcmp(sub, "unpause") == 0) {
		if (strlen(argv[optind]) >= SMG_DOMAIN_NAME_MAX ||
		    strchr(argv[optind], ' ') != NULL)
			return usage("bad domain name '%s'", argv[optind]);
		snprintf(req, sizeof(req), "%s %s",
			 sub[0] == 'v'	 ? "VERIFY"
			 : sub[0] == 'd' ? "DESTROY"
			 : sub[0] == 'p' ? "PAUSE"
					 : "UNPAUSE",
			 argv[optind]);
		int rc = host_call(where, req, NULL, 0, sub[0] == 'v');
		if (rc == SMG_EXIT_OK && sub[0] == 'v')
			printf("\n%s: verified\n", argv[optind]);
		return rc;
	}
	return usage("unknown sim subcommand '%s'", sub);
}
