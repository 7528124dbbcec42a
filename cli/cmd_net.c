/* secmig net: the VM NIC's identity on this host (prepare, up, down,
 * remove), the network clean-up announcement, fdb-wait and vif-name. The
 * test bed's capture, probe, udp-echo and proxy are smg-nettool, a test
 * binary (test/tools/). See docs/network.md. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/net.h"
#include "engine/engine.h"

void smg_net_emit(const char *json)
{
	printf("%s\n", json);
	fflush(stdout);
}

static void emit_cb(void *arg, const char *json)
{
	(void)arg;
	smg_net_emit(json);
}

static int parse_uint_opt(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return SMG_ERR_INVAL;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > max)
		return SMG_ERR_INVAL;
	*out = (unsigned)v;
	return SMG_OK;
}

static int copy_name(char *dst, size_t cap, const char *src)
{
	if (strlen(src) >= cap)
		return SMG_ERR_INVAL;
	memcpy(dst, src, strlen(src) + 1);
	return SMG_OK;
}

enum {
	OPT_NS = 256,
	OPT_VIF,
	OPT_BRIDGE,
	OPT_IFNAME,
	OPT_MAC,
	OPT_ADDR,
	OPT_ROUNDS,
	OPT_INITIAL,
	OPT_STEP,
	OPT_MAX,
	OPT_ANNOUNCE,
	OPT_PORT,
	OPT_TIMEOUT
};

static const struct option nic_opts[] = {
    {"ns", required_argument, NULL, OPT_NS},
    {"vif", required_argument, NULL, OPT_VIF},
    {"bridge", required_argument, NULL, OPT_BRIDGE},
    {"ifname", required_argument, NULL, OPT_IFNAME},
    {"mac", required_argument, NULL, OPT_MAC},
    {"addr", required_argument, NULL, OPT_ADDR},
    {"rounds", required_argument, NULL, OPT_ROUNDS},
    {"initial-ms", required_argument, NULL, OPT_INITIAL},
    {"step-ms", required_argument, NULL, OPT_STEP},
    {"max-ms", required_argument, NULL, OPT_MAX},
    {"announce", no_argument, NULL, OPT_ANNOUNCE},
    {"port", required_argument, NULL, OPT_PORT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

struct nic_args {
	struct smg_netid id;
	struct smg_announce_sched sched;
	bool have_mac, announce;
	const char *port;
	unsigned timeout_ms;
};

static int parse_nic_args(int argc, char **argv, struct nic_args *a)
{
	const struct smg_cmd *cmd = smg_cmd_find("net");
	static const struct smg_announce_sched def = SMG_ANNOUNCE_SCHED_DEFAULT;
	int c, bad = 0;

	memset(a, 0, sizeof(*a));
	a->sched = def;
	a->timeout_ms = 5000;
	snprintf(a->id.ifname, sizeof(a->id.ifname), "eth0");
	optind = 0; /* glibc: full re-initialisation */
	while ((c = getopt_long(argc, argv, "", nic_opts, NULL)) != -1) {
		switch (c) {
		case OPT_NS:
			bad = copy_name(a->id.vm_ns, sizeof(a->id.vm_ns), optarg);
			break;
		case OPT_VIF:
			bad = copy_name(a->id.vif, sizeof(a->id.vif), optarg);
			break;
		case OPT_BRIDGE:
			bad = copy_name(a->id.bridge, sizeof(a->id.bridge), optarg);
			break;
		case OPT_IFNAME:
			bad = copy_name(a->id.ifname, sizeof(a->id.ifname), optarg);
			break;
		case OPT_MAC:
			bad = smg_vnic_parse_mac(optarg, a->id.nic.mac);
			a->have_mac = true;
			break;
		case OPT_ADDR:
			bad = smg_vnic_add_addr(&a->id.nic, optarg);
			break;
		case OPT_ROUNDS:
			bad = parse_uint_opt(optarg, SMG_ANNOUNCE_ROUNDS_MAX,
					     &a->sched.rounds);
			break;
		case OPT_INITIAL:
			bad = parse_uint_opt(optarg, 60000, &a->sched.initial_ms);
			break;
		case OPT_STEP:
			bad = parse_uint_opt(optarg, 60000, &a->sched.step_ms);
			break;
		case OPT_MAX:
			bad = parse_uint_opt(optarg, 60000, &a->sched.max_ms);
			break;
		case OPT_ANNOUNCE:
			a->announce = true;
			break;
		case OPT_PORT:
			a->port = optarg;
			break;
		case OPT_TIMEOUT:
			bad = parse_uint_opt(optarg, 3600000, &a->timeout_ms);
			break;
		default:
			return smg_cli_usage_error(cmd, "bad option");
		}
		if (bad != 0)
			return smg_cli_usage_error(cmd, "bad value '%s' for --%s", optarg,
						   nic_opts[c - OPT_NS].name);
	}
	if (optind < argc)
		return smg_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return SMG_EXIT_OK;
}

/* A name netid refuses is the operator's typo: a usage error, not code 1. */
static int nic_exit(int r)
{
	return r == SMG_ERR_INVAL ? SMG_EXIT_USAGE : smg_exit_from_err(r);
}

static int need(const char *what, bool ok)
{
	if (ok)
		return SMG_EXIT_OK;
	return smg_cli_usage_error(smg_cmd_find("net"), "%s is required", what);
}

static int emit_time(const char *event, const struct nic_args *a)
{
	char ev[256];

	snprintf(ev, sizeof(ev),
		 "{\"event\":\"%s\",\"ns\":\"%s\",\"vif\":\"%s\",\"t_mono_us\":%llu}",
		 event, a->id.vm_ns, a->id.vif,
		 (unsigned long long)(smg_now_ns() / 1000));
	smg_net_emit(ev);
	return SMG_EXIT_OK;
}

static int do_announce(const struct nic_args *a)
{
	struct smg_announce_target t = {a->id.vm_ns, a->id.ifname, &a->id.nic};

	return smg_exit_from_err(smg_announce_run(&t, 1, &a->sched, emit_cb, NULL));
}

static int net_nic(int argc, char **argv)
{
	struct nic_args a;
	const char *verb = argc > 1 ? argv[1] : "";
	int rc;

	if ((rc = parse_nic_args(argc - 1, argv + 1, &a)) != 0)
		return rc;
	if ((rc = need("--ns", a.id.vm_ns[0] != '\0')) != 0)
		return rc;
	if (strcmp(verb, "prepare") == 0) {
		if ((rc = need("--vif, --bridge and --mac",
			       a.id.vif[0] && a.id.bridge[0] && a.have_mac)) != 0)
			return rc;
		return nic_exit(smg_netid_prepare(&a.id));
	}
	if ((rc = need("--vif", a.id.vif[0] != '\0')) != 0)
		return rc;
	if (strcmp(verb, "up") == 0) {
		if ((rc = nic_exit(smg_netid_set_link(&a.id, true))) != 0)
			return rc;
		emit_time("nic_up", &a);
		if (!a.announce)
			return SMG_EXIT_OK;
		if ((rc = need("--mac (with --announce)", a.have_mac)) != 0)
			return rc;
		return do_announce(&a);
	}
	if (strcmp(verb, "down") == 0) {
		if ((rc = nic_exit(smg_netid_set_link(&a.id, false))) != 0)
			return rc;
		return emit_time("nic_down", &a);
	}
	if (strcmp(verb, "remove") == 0)
		return nic_exit(smg_netid_remove(&a.id));
	return smg_cli_usage_error(smg_cmd_find("net"), "unknown 'net nic' verb '%s'",
				   verb);
}

static int net_announce(int argc, char **argv)
{
	struct nic_args a;
	int rc;

	if ((rc = parse_nic_args(argc, argv, &a)) != 0)
		return rc;
	if ((rc = need("--mac", a.have_mac)) != 0)
		return rc;
	return do_announce(&a);
}

static int net_fdb_wait(int argc, char **argv)
{
	struct nic_args a;
	uint64_t when;
	char ev[160];
	int rc, r;

	if ((rc = parse_nic_args(argc, argv, &a)) != 0)
		return rc;
	if ((rc = need("--bridge, --port and --mac",
		       a.id.bridge[0] && a.port && a.have_mac)) != 0)
		return rc;
	if ((r = smg_netid_watch_fdb(a.id.bridge, a.port, a.id.nic.mac, a.timeout_ms,
				     &when)) != 0) {
		smg_err("net: fdb on %s never pointed at %s: %s", a.id.bridge, a.port,
			smg_strerror(r));
		return smg_exit_from_err(r);
	}
	snprintf(ev, sizeof(ev),
		 "{\"event\":\"fdb_moved\",\"port\":\"%s\",\"t_mono_us\":%llu}", a.port,
		 (unsigned long long)(when / 1000));
	smg_net_emit(ev);
	return SMG_EXIT_OK;
}

/* secmig net vif-name DOMAIN [INDEX]: the host-side vif name secmig uses
 * for a domain's NIC (what a hotplug script must create). */
static int net_vif_name(int argc, char **argv)
{
	char vif[SMG_NETID_IFNAME_MAX];
	unsigned long idx = argc == 3 ? strtoul(argv[2], NULL, 10) : 0;

	if (argc < 2 || argc > 3 || idx > 9 || !smg_name_ok(argv[1], SMG_DOMAIN_NAME_MAX))
		return smg_cli_usage_error(smg_cmd_find("net"),
					   "usage: net vif-name DOMAIN [INDEX 0..9]");
	smg_netid_vif_name(argv[1], (unsigned)idx, vif);
	printf("%s\n", vif);
	return SMG_EXIT_OK;
}

int smg_cmd_net(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int, char **);
	} subs[] = {
	    {"nic", net_nic},
	    {"announce", net_announce},
	    {"fdb-wait", net_fdb_wait},
	    {"vif-name", net_vif_name},
	};

	if (argc < 2)
		return smg_cli_usage_error(smg_cmd_find("net"),
					   "no net subcommand given");
	for (size_t i = 0; i < SMG_ARRAY_LEN(subs); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].run(argc - 1, argv + 1);
	return smg_cli_usage_error(smg_cmd_find("net"), "unknown net subcommand '%s'",
				   argv[1]);
}
