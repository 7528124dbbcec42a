/* `secmig send`: migrate a domain to a receiver. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/net.h"

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("send"), fmt, arg);
}

static int parse_rule(const char *s, enum smg_stop_rule *r)
{
	if (strcmp(s, "downtime") == 0)
		*r = SMG_RULE_DOWNTIME;
	else if (strcmp(s, "xen") == 0)
		*r = SMG_RULE_XEN;
	else if (strcmp(s, "stop-and-copy") == 0)
		*r = SMG_RULE_STOP_AND_COPY;
	else
		return -1;
	return 0;
}

int smg_cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"domain", required_argument, NULL, 'd'},
	    {"max-downtime", required_argument, NULL, 'D'},
	    {"bandwidth", required_argument, NULL, 'b'},
	    {"channels", required_argument, NULL, 'c'},
	    {"no-auto-converge", no_argument, NULL, 'A'},
	    {"json", no_argument, NULL, 'j'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'B'},
	    {"key", required_argument, NULL, 'k'},
	    {"peers", required_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'n'},
	    {"rule", required_argument, NULL, 'r'},
	    {"max-rounds", required_argument, NULL, 'R'},
	    {"storage-mode", required_argument, NULL, 1000},
	    {"disk-socket", required_argument, NULL, 1001},
	    {"disk-workload", required_argument, NULL, 1002},
	    {"check-memory", no_argument, NULL, 'C'},
	    {"policy", required_argument, NULL, 1100},
	    {"tcti", required_argument, NULL, 1101},
	    {"ticket", required_argument, NULL, 1200},
	    {"operators", required_argument, NULL, 1201},
	    {"help", no_argument, NULL, 'h'},
	    SMG_CLI_NET_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct smg_send_opts so = {.backend = "sim", .auto_converge = true};
	struct smg_netid_host net;
	unsigned io_timeout = 0;
	const char *to = NULL, *dir = NULL, *key = NULL, *peers = NULL, *name = NULL;
	const char *policy = NULL, *tcti = NULL, *ticket = NULL, *operators = NULL;
	uint8_t tk[SMG_TICKET_MAX];
	unsigned channels = 2;
	bool json = false;
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;
	uint64_t v;
	int c;

	memset(&net, 0, sizeof(net));

	optind = 1;
	while ((c = getopt_long(argc, argv, "t:d:D:b:c:Ajs:B:k:p:n:r:R:Ch", opts,
				NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'd':
			so.domain = optarg;
			break;
		case 'D':
			if (smg_parse_size(optarg, &v) != 0 || v == 0 || v > 3600000)
				return usage(
				    "--max-downtime: milliseconds, 1..3600000, not '%s'",
				    optarg);
			so.max_downtime_ms = (unsigned)v;
			break;
		case 'b':
			if (smg_parse_size(optarg, &v) != 0 || v == 0)
				return usage("--bandwidth: bytes/s like 100M, not '%s'",
					     optarg);
			so.bandwidth = v;
			break;
		case 'c':
			if (smg_parse_size(optarg, &v) != 0 || v == 0 ||
			    v > SMG_CHANNELS_MAX)
				return usage("--channels: 1..8, not '%s'", optarg);
			channels = (unsigned)v;
			break;
		case 'A':
			so.auto_converge = false;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			dir = optarg;
			break;
		case 'B':
			so.backend = optarg;
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
		case 'r':
			if (parse_rule(optarg, &so.rule) != 0)
				return usage(
				    "--rule: downtime, xen or stop-and-copy, not '%s'",
				    optarg);
			break;
		case 'R':
			if (smg_parse_size(optarg, &v) != 0 || v == 0 || v > 1000)
				return usage("--max-rounds: 1..1000, not '%s'", optarg);
			so.max_rounds = (unsigned)v;
			break;
		case SMG_CLI_OPT_NET_BRIDGE:
		case SMG_CLI_OPT_NET_NS_PREFIX:
			if (smg_cli_net_opt(c, optarg, &net) != 0)
				return usage(
				    "--net-bridge / --net-ns-prefix: bad name '%s'",
				    optarg);
			so.net = &net;
			break;
		case SMG_CLI_OPT_IO_TIMEOUT:
			if (smg_cli_io_timeout(optarg, &io_timeout) != 0)
				return usage("--io-timeout: 100..3600000 ms, not '%s'",
					     optarg);
			break;
		case 1000:
			if (strcmp(optarg, "waio") == 0)
				so.storage_mode = SMG_STG_MODE_WAIO;
			else if (strcmp(optarg, "dbt") == 0)
				so.storage_mode = SMG_STG_MODE_DBT;
			else
				return usage("--storage-mode: waio or dbt, not '%s'",
					     optarg);
			break;
		case 1001:
			so.disk_socket = optarg;
			break;
		case 1002:
			so.disk_workload = optarg;
			break;
		case 'C':
			so.check_memory = true;
			break;
		case 1100:
			policy = optarg;
			break;
		case 1101:
			tcti = optarg;
			break;
		case 1200:
			ticket = optarg;
			break;
		case 1201:
			operators = optarg;
			break;
		case 'h':
			printf("%s", smg_cmd_find("send")->usage);
			return SMG_EXIT_OK;
		default:
			return usage("bad option%s", "");
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (to == NULL || so.domain == NULL)
		return usage("send needs --to HOST[:PORT] and --domain NAME%s", "");
	if (smg_cli_parse_addr(to, host, sizeof(host), &port) != SMG_OK)
		return usage("--to: HOST[:PORT], not '%s'", to);
	dir = smg_cli_state_dir(dir);
	so.bopts.state_dir = dir;
	so.peer = to;

	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_cli_out out;
	struct smg_mig_stats st;
	struct smg_session *s = NULL;
	int r, code;

	smg_cli_out_init(&out, stdout, json, "send");
	memset(&st, 0, sizeof(st));
	if ((r = smg_cli_ident_load(&ci, dir, key, peers, name)) != SMG_OK) {
		st.err = r;
		code = SMG_EXIT_CONFIG;
		smg_cli_result(&out, &st, code);
		return code;
	}
	ci.so.channels = channels;
	ci.so.io_timeout_ms = io_timeout;
	ci.so.handshake_timeout_ms = io_timeout;
	if ((r = smg_cli_tpm_load(&tpm, policy, tcti, &ci.so)) != SMG_OK) {
		st.err = r;
		code = smg_exit_from_err(r);
		smg_cli_result(&out, &st, code);
		smg_cli_ident_free(&ci);
		return code;
	}
	so.policy = tpm.policy;
	if ((ticket != NULL && (r = smg_cli_ticket_read(ticket, tk, sizeof(tk),
							&so.ticket_len)) != SMG_OK) ||
	    (r = smg_cli_audit_open(&so.audit, dir, operators, &ci, &tpm, policy)) !=
		SMG_OK) {
		st.err = r;
		code = SMG_EXIT_CONFIG;
		smg_cli_result(&out, &st, code);
		smg_cli_tpm_free(&tpm);
		smg_cli_ident_free(&ci);
		return code;
	}
	so.ticket = tk;
	out.auth = tpm.tpm_mode ? "tpm" : "software";
	so.event = smg_cli_event;
	so.event_arg = &out;
	uint64_t t0 = smg_now_ns();
	r = smg_session_connect(host, port, &ci.so, &s);
	out.handshake_ms = (double)(smg_now_ns() - t0) / 1e6;
	if (r != SMG_OK) {
		smg_err("%s with %s: %s; the VM was not touched",
			r == SMG_ERR_ATTEST || r == SMG_ERR_TPM ? "attestation failed"
								: "cannot connect",
			to, smg_strerror(r));
		st.err = r;
	} else {
		r = smg_engine_send(s, &so, &st);
		if (r == SMG_OK)
			smg_session_close(s);
		else
			smg_session_free(s);
	}
	code = smg_exit_from_err(r);
	smg_cli_result(&out, &st, code);
	smg_audit_close(so.audit);
	smg_cli_tpm_free(&tpm);
	smg_cli_ident_free(&ci);
	return code;
}
