/* The subcommands' option parser and the options they share (cli/opts.h).
 * Each option's row says what it sets and how its value is checked; the
 * parse loop is the same for every command. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/opts.h"

/* getopt_long's value for a long option without a short form: its row
 * number past every char a short option could be. */
#define LONG_VAL_BASE 0x100
#define SHORTS_MAX    (2 * SMG_OPTS_MAX + 1)

#define IO_TIMEOUT_MIN_MS 100u
#define IO_TIMEOUT_MAX_MS 3600000u

#define CO_OFF(f) offsetof(struct smg_cli_common, f)

/* A name that becomes an interface name or a path prefix: no '/', fits. */
static int set_name(char *dst, size_t cap, const char *arg)
{
	if (arg[0] == '\0' || strlen(arg) >= cap || strchr(arg, '/') != NULL)
		return -1;
	memcpy(dst, arg, strlen(arg) + 1);
	return 0;
}

static int net_bridge(void *target, const char *arg)
{
	struct smg_cli_common *co = target;

	co->has_net = true;
	return set_name(co->net.bridge, sizeof(co->net.bridge), arg);
}

static int net_ns_prefix(void *target, const char *arg)
{
	struct smg_cli_common *co = target;

	co->has_net = true;
	return set_name(co->net.ns_prefix, sizeof(co->net.ns_prefix), arg);
}

#define STR(n, s, f)                                                              \
	{                                                                         \
		.name = n, .short_name = s, .kind = SMG_OPT_STR, .off = CO_OFF(f) \
	}
#define FLAG(n, s, f)                                                             \
	{                                                                         \
		.name = n, .short_name = s, .kind = SMG_OPT_SET, .off = CO_OFF(f) \
	}

static const struct smg_opt common[SMG_CO_N] = {
    [SMG_CO_TO] = STR("to", 't', to),
    [SMG_CO_PEER] = STR("peer", 0, peer),
    [SMG_CO_DOMAIN] = STR("domain", 'd', domain),
    [SMG_CO_JSON] = FLAG("json", 'j', json),
    [SMG_CO_STATE_DIR] = STR("state-dir", 's', dir),
    [SMG_CO_BACKEND] = STR("backend", 'B', backend),
    [SMG_CO_KEY] = STR("key", 'k', key),
    [SMG_CO_PEERS] = STR("peers", 'p', peers),
    [SMG_CO_NAME] = STR("name", 'n', name),
    [SMG_CO_POLICY] = STR("policy", 0, policy),
    [SMG_CO_TCTI] = STR("tcti", 0, tcti),
    [SMG_CO_TICKET] = STR("ticket", 0, ticket),
    [SMG_CO_OPERATORS] = STR("operators", 0, operators),
    [SMG_CO_DISK_SOCKET] = STR("disk-socket", 0, disk_socket),
    [SMG_CO_CHANNELS] = {.name = "channels",
			 .short_name = 'c',
			 .kind = SMG_OPT_UINT,
			 .off = CO_OFF(channels),
			 .min = 1,
			 .max = SMG_CHANNELS_MAX,
			 .bad = "--channels: 1..8, not '%s'"},
    [SMG_CO_IO_TIMEOUT] = {.name = "io-timeout",
			   .kind = SMG_OPT_MS,
			   .off = CO_OFF(io_timeout),
			   .min = IO_TIMEOUT_MIN_MS,
			   .max = IO_TIMEOUT_MAX_MS,
			   .bad = "--io-timeout: 100..3600000 ms, not '%s'"},
    [SMG_CO_NET_BRIDGE] = {.name = "net-bridge",
			   .kind = SMG_OPT_FN,
			   .fn = net_bridge,
			   .bad = "--net-bridge / --net-ns-prefix: bad name '%s'"},
    [SMG_CO_NET_NS_PREFIX] = {.name = "net-ns-prefix",
			      .kind = SMG_OPT_FN,
			      .fn = net_ns_prefix,
			      .bad = "--net-bridge / --net-ns-prefix: bad name '%s'"},
    [SMG_CO_CHECK_MEMORY] = FLAG("check-memory", 'C', check_memory),
    [SMG_CO_HELP] = {.name = "help", .short_name = 'h', .kind = SMG_OPT_HELP},
};

int smg_opts_usage(const struct smg_opt_spec *sp, const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find(sp->cmd), fmt, arg);
}

/* Decimal milliseconds only: "1s" or "0x64" is a typo here, not a size. */
static int parse_ms(const char *arg, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (arg[0] < '0' || arg[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_choice(const struct smg_opt_choice *c, const char *arg, int *out)
{
	for (; c->word != NULL; c++)
		if (strcmp(c->word, arg) == 0) {
			*out = c->value;
			return 0;
		}
	return -1;
}

/* A number in o's range into its field (unsigned or uint64_t). */
static int set_number(const struct smg_opt *o, char *field, const char *arg)
{
	uint64_t v;
	int r = o->kind == SMG_OPT_MS ? parse_ms(arg, &v) : smg_parse_size(arg, &v);

	if (r != 0 || v < o->min || v > o->max)
		return -1;
	if (o->kind == SMG_OPT_U64)
		memcpy(field, &v, sizeof(v));
	else {
		unsigned u = (unsigned)v;
		memcpy(field, &u, sizeof(u));
	}
	return 0;
}

/* One option's value into the struct it belongs to: 0 or -1 (bad value). */
static int apply(const struct smg_opt *o, void *target, const char *arg)
{
	char *field = (char *)target + o->off;
	bool b = o->kind == SMG_OPT_SET;

	switch (o->kind) {
	case SMG_OPT_STR:
		memcpy(field, &arg, sizeof(arg));
		return 0;
	case SMG_OPT_SET:
	case SMG_OPT_CLEAR:
		memcpy(field, &b, sizeof(b));
		return 0;
	case SMG_OPT_UINT:
	case SMG_OPT_U64:
	case SMG_OPT_MS:
		return set_number(o, field, arg);
	case SMG_OPT_CHOICE: {
		int v;
		if (parse_choice(o->choices, arg, &v) != 0)
			return -1;
		memcpy(field, &v, sizeof(v));
		return 0;
	}
	case SMG_OPT_FN:
		return o->fn(target, arg);
	case SMG_OPT_HELP:
		break;
	}
	return -1;
}

/* The command's options in one list: rows[i] sets targets[i]. */
struct table {
	const struct smg_opt *rows[SMG_OPTS_MAX];
	void *targets[SMG_OPTS_MAX];
	size_t n;
	struct option longs[SMG_OPTS_MAX + 1];
	char shorts[SHORTS_MAX];
};

static void table_add(struct table *t, const struct smg_opt *o, void *target)
{
	bool arg =
	    o->kind != SMG_OPT_SET && o->kind != SMG_OPT_CLEAR && o->kind != SMG_OPT_HELP;
	size_t k = strlen(t->shorts);

	t->rows[t->n] = o;
	t->targets[t->n] = target;
	t->longs[t->n] = (struct option){
	    o->name, arg ? required_argument : no_argument, NULL,
	    o->short_name != 0 ? o->short_name : LONG_VAL_BASE + (int)t->n};
	if (o->short_name != 0) {
		t->shorts[k++] = o->short_name;
		if (arg)
			t->shorts[k++] = ':';
		t->shorts[k] = '\0';
	}
	t->n++;
}

static int table_build(struct table *t, const struct smg_opt_spec *sp,
		       struct smg_cli_common *co, void *self)
{
	size_t n = sp->n_own;

	for (unsigned i = 0; i < SMG_CO_N; i++)
		n += (sp->common >> i) & 1;
	if (n > SMG_OPTS_MAX) {
		smg_err("%s: %zu options, more than %u", sp->cmd, n, SMG_OPTS_MAX);
		return -1;
	}
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < SMG_CO_N; i++)
		if ((sp->common & (UINT64_C(1) << i)) != 0)
			table_add(t, &common[i], co);
	for (size_t i = 0; i < sp->n_own; i++)
		table_add(t, &sp->own[i], self);
	return 0;
}

/* The row getopt_long's value c stands for, or -1. */
static int table_row(const struct table *t, int c)
{
	if (c >= LONG_VAL_BASE && c < LONG_VAL_BASE + (int)t->n)
		return c - LONG_VAL_BASE;
	for (size_t i = 0; c > 0 && c < LONG_VAL_BASE && i < t->n; i++)
		if (t->rows[i]->short_name == c)
			return (int)i;
	return -1;
}

int smg_opts_parse(const struct smg_opt_spec *sp, int argc, char **argv,
		   struct smg_cli_common *co, void *self)
{
	struct table *t = malloc(sizeof(*t));
	int c, i, code = -1;

	if (t == NULL || table_build(t, sp, co, self) != 0) {
		free(t);
		return SMG_EXIT_FAIL;
	}
	/* A usage error names the offending word of this argv (a nested
	 * command's, like audit's, too). */
	smg_cli_set_args(argc, argv);
	/* 0, not 1: glibc then forgets where it was inside a cluster of
	 * short options of the argv it scanned before ("-Zj" stopped at Z). */
	optind = 0;
	while (code < 0 &&
	       (c = getopt_long(argc, argv, t->shorts, t->longs, NULL)) != -1) {
		const struct smg_opt *o;

		if ((i = table_row(t, c)) < 0) {
			code = smg_opts_usage(sp, "bad option%s", "");
			break;
		}
		o = t->rows[i];
		if (o->kind == SMG_OPT_HELP) {
			const struct smg_cmd *cmd = smg_cmd_find(sp->cmd);
			printf("%s", cmd != NULL ? cmd->usage : "");
			code = SMG_EXIT_OK;
		} else if (apply(o, t->targets[i], optarg) != 0) {
			code = smg_opts_usage(
			    sp, o->bad != NULL ? o->bad : "bad value '%s'", optarg);
		}
	}
	free(t);
	if (code < 0 && !sp->operands && optind < argc)
		code = smg_opts_usage(sp, "unexpected argument '%s'", argv[optind]);
	return code;
}

int smg_opts_send(const struct smg_opt_spec *sp, struct smg_cli_common *co,
		  struct smg_send_opts *so)
{
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;

	co->dir = smg_cli_state_dir(co->dir);
	so->domain = co->domain;
	so->backend = co->backend;
	so->disk_socket = co->disk_socket;
	so->check_memory = co->check_memory;
	so->net = co->has_net ? &co->net : NULL;
	if (co->to == NULL || co->domain == NULL)
		return smg_cli_usage_error(smg_cmd_find(sp->cmd),
					   "%s needs --to NAME[:PORT] (or --to "
					   "HOST[:PORT] --peer NAME) and --domain NAME",
					   sp->cmd);
	if (!smg_domain_name_valid(co->domain))
		return smg_opts_usage(sp, "--domain: 1..63 of [A-Za-z0-9._-], not '%s'",
				      co->domain);
	if (smg_cli_parse_addr(co->to, host, sizeof(host), &port) != SMG_OK)
		return smg_opts_usage(sp, "--to: NAME[:PORT] or HOST[:PORT], not '%s'",
				      co->to);
	return -1;
}
