/* `secmig resolve`: settle an in-doubt migration by asking the destination. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/net.h"

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("resolve"), fmt, arg);
}

int smg_cmd_resolve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"domain", required_argument, NULL, 'd'},
	    {"to", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'B'},
	    {"key", required_argument, NULL, 'k'},
	    {"peers", required_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'n'},
	    SMG_CLI_NET_OPTIONS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *domain = NULL, *to = NULL, *dir = NULL, *key = NULL, *peers = NULL;
	const char *name = NULL, *backend = "sim";
	char id[128], peer[256], host[SMG_CLI_HOST_MAX];
	struct smg_backend_opts bo = {0};
	struct smg_backend *be = NULL;
	struct smg_session *s = NULL;
	struct smg_cli_ident ci;
	enum smg_resolve_outcome oc = 0;
	bool json = false;
	uint16_t port;
	int c, r;
	struct smg_netid_host net;
	bool have_net = false;
	unsigned nnics, io_timeout = 0;

	memset(&net, 0, sizeof(net));

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:t:js:B:k:p:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			domain = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			dir = optarg;
			break;
		case 'B':
			backend = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'p':
			peers = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case SMG_CLI_OPT_NET_BRIDGE:
		case SMG_CLI_OPT_NET_NS_PREFIX:
			if (smg_cli_net_opt(c, optarg, &net) != 0)
				return usage(
				    "--net-bridge / --net-ns-prefix: bad name '%s'",
				    optarg);
			have_net = true;
			break;
		case SMG_CLI_OPT_IO_TIMEOUT:
			if (smg_cli_io_timeout(optarg, &io_timeout) != 0)
				return usage("--io-timeout: 100..3600000 ms, not '%s'",
					     optarg);
			break;
		case 'h':
			printf("%s", smg_cmd_find("resolve")->usage);
			return SMG_EXIT_OK;
		default:
			return usage("bad option%s", "");
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (domain == NULL)
		return usage("resolve needs --domain NAME%s", "");
	dir = smg_cli_state_dir(dir);
	bo.state_dir = dir;
	if ((r = smg_backend_open(backend, &bo, &be)) != SMG_OK)
		return SMG_EXIT_BACKEND;
	if ((r = be->ops->domain_pending(be, domain, id, sizeof(id), peer,
					 sizeof(peer))) != SMG_OK) {
		fprintf(stderr, "secmig: '%s' has no in-doubt migration here\n", domain);
		smg_backend_close(be);
		return SMG_EXIT_BACKEND;
	}
	if (to == NULL)
		to = peer;
	if (smg_cli_parse_addr(to, host, sizeof(host), &port) != SMG_OK) {
		smg_backend_close(be);
		return usage("bad destination address '%s' (give --to HOST:PORT)", to);
	}
	if (smg_cli_ident_load(&ci, dir, key, peers, name) != SMG_OK) {
		smg_backend_close(be);
		return SMG_EXIT_CONFIG;
	}
	ci.so.channels = 1;
	ci.so.io_timeout_ms = io_timeout;
	ci.so.handshake_timeout_ms = io_timeout;
	if ((r = smg_session_connect(host, port, &ci.so, &s)) == SMG_OK) {
		r = smg_engine_resolve(s, be, domain, id, &oc);
		if (r == SMG_OK)
			smg_session_close(s);
		else
			smg_session_free(s);
	}
	/* network: the VM's NICs follow the settled outcome. */
	if (r == SMG_OK && have_net &&
	    smg_netid_settle(&net, domain, oc == SMG_RESOLVED_DISCARDED, &nnics) !=
		SMG_OK)
		smg_warn("resolve: the VM's NICs on this host could not be settled");
	/* storage: the disks held handed-over follow it too (docs/storage.md). */
	unsigned ndisks;
	if (r == SMG_OK &&
	    smg_engine_disks_settle(dir, domain, oc == SMG_RESOLVED_RUNNING, &ndisks) !=
		SMG_OK)
		smg_warn("resolve: the VM's disks on this host could not all be settled "
			 "('secmig disk settle')");
	/* A forged or unsigned answer settles nothing: exit 7, still in doubt. */
	int code = r == SMG_OK		    ? SMG_EXIT_OK
		   : r == SMG_ERR_INTEGRITY ? SMG_EXIT_INTEGRITY
					    : SMG_EXIT_IN_DOUBT;
	const char *what =
	    oc == SMG_RESOLVED_RUNNING ? "destination runs the VM; source copy destroyed"
	    : oc == SMG_RESOLVED_DISCARDED ? "destination discarded it; source VM resumed"
					   : "still in doubt";
	if (json)
		printf("{\"event\":\"result\",\"outcome\":\"%s\",\"migration_id\":\"%s\","
		       "\"domain\":\"%s\",\"exit_code\":%d%s%s%s}\n",
		       oc == SMG_RESOLVED_RUNNING     ? "running_on_destination"
		       : oc == SMG_RESOLVED_DISCARDED ? "resumed_on_source"
						      : "in_doubt",
		       id, domain, code, r ? ",\"error\":\"" : "",
		       r ? smg_strerror(r) : "", r ? "\"" : "");
	else
		printf("resolve %s (%s): %s%s%s\n", domain, id, what, r ? ": " : "",
		       r ? smg_strerror(r) : "");
	smg_cli_ident_free(&ci);
	smg_backend_close(be);
	return code;
}
