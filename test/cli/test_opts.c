/* The option parser (cli/opts.c), table-driven: each kind of row, its
 * bounds, short forms, a command's own options next to the common ones,
 * operands, --help, and what a bad or unknown option exits with. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "cli/cli.h"
#include "cli/opts.h"

struct own {
	unsigned rounds, ms;
	uint64_t rate;
	int mode;
	bool quiet, on;
	const char *label;
	unsigned fn_calls;
};

static int even(void *target, const char *arg)
{
	struct own *o = target;

	o->fn_calls++;
	return strlen(arg) % 2 == 0 ? 0 : -1;
}

static const struct smg_opt_choice modes[] = {{"one", 1}, {"two", 2}, {NULL, 0}};

#define OFF(f) offsetof(struct own, f)
static const struct smg_opt own_rows[] = {
    {.name = "rounds",
     .short_name = 'R',
     .kind = SMG_OPT_UINT,
     .off = OFF(rounds),
     .min = 2,
     .max = 10,
     .bad = "--rounds: 2..10, not '%s'"},
    {.name = "ms",
     .kind = SMG_OPT_MS,
     .off = OFF(ms),
     .min = 100,
     .max = 1000,
     .bad = "--ms: 100..1000, not '%s'"},
    {.name = "rate",
     .kind = SMG_OPT_U64,
     .off = OFF(rate),
     .min = 1,
     .max = UINT64_MAX,
     .bad = "--rate: bytes/s, not '%s'"},
    {.name = "mode",
     .kind = SMG_OPT_CHOICE,
     .off = OFF(mode),
     .choices = modes,
     .bad = "--mode: one or two, not '%s'"},
    {.name = "quiet", .short_name = 'q', .kind = SMG_OPT_SET, .off = OFF(quiet)},
    {.name = "off", .kind = SMG_OPT_CLEAR, .off = OFF(on)},
    {.name = "label", .kind = SMG_OPT_STR, .off = OFF(label)},
    {.name = "even", .kind = SMG_OPT_FN, .fn = even, .bad = "--even: '%s'"},
};

/* "status" for the usage errors and --help: a real command's text. */
static const struct smg_opt_spec spec = {
    .cmd = "status",
    .common = SMG_CO(TO) | SMG_CO(JSON) | SMG_CO(STATE_DIR) | SMG_CO(CHANNELS) |
	      SMG_CO(IO_TIMEOUT) | SMG_CO(NET_BRIDGE) | SMG_CO(HELP),
    .own = own_rows,
    .n_own = SMG_ARRAY_LEN(own_rows),
};

#define ARGS_MAX 8

struct tcase {
	const char *args[ARGS_MAX]; /* after the command name */
	int code;		    /* -1: parsed, go on */
	const char *field;	    /* which field to look at, if parsed */
	uint64_t want;
};

static const struct tcase cases[] = {
    {{"--rounds", "2"}, -1, "rounds", 2},
    {{"--rounds=10"}, -1, "rounds", 10},
    {{"-R", "7"}, -1, "rounds", 7},
    {{"--rounds", "1"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--rounds", "11"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--rounds", "x"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--rounds", "3", "--rounds", "4"}, -1, "rounds", 4}, /* the last wins */
    {{"--ms", "100"}, -1, "ms", 100},
    {{"--ms", "99"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--ms", "1k"}, SMG_EXIT_USAGE, NULL, 0}, /* no size suffix for ms */
    {{"--ms", "0x100"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--ms", "-200"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--rate", "1M"}, -1, "rate", 1 << 20},
    {{"--rate", "0"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--mode", "two"}, -1, "mode", 2},
    {{"--mode", "three"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--quiet"}, -1, "quiet", 1},
    {{"-q"}, -1, "quiet", 1},
    {{"--off"}, -1, "on", 0},
    {{"--label", "x"}, -1, "label", 'x'},
    {{"--even", "ab"}, -1, "fn_calls", 1},
    {{"--even", "abc"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--to", "h:1"}, -1, "to", 'h'},
    {{"-t", "h"}, -1, "to", 'h'},
    {{"--json"}, -1, "json", 1},
    {{"-j", "-s", "d"}, -1, "dir", 'd'},
    {{"--channels", "8"}, -1, "channels", 8},
    {{"--channels", "9"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--io-timeout", "3600000"}, -1, "io_timeout", 3600000},
    {{"--io-timeout", "3600001"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--net-bridge", "br0"}, -1, "has_net", 1},
    {{"--net-bridge", "a/b"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--peer", "x"}, SMG_EXIT_USAGE, NULL, 0}, /* common, not taken here */
    {{"-d", "x"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--bogus"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--json=yes"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--label"}, SMG_EXIT_USAGE, NULL, 0}, /* requires an argument */
    {{"operand"}, SMG_EXIT_USAGE, NULL, 0},
    {{"--help"}, SMG_EXIT_OK, NULL, 0},
    {{"-h", "--bogus"}, SMG_EXIT_OK, NULL, 0},
    {{"--bogus", "-h"}, SMG_EXIT_USAGE, NULL, 0},
};

static uint64_t field(const struct smg_cli_common *co, const struct own *o,
		      const char *name)
{
	if (strcmp(name, "rounds") == 0)
		return o->rounds;
	if (strcmp(name, "ms") == 0)
		return o->ms;
	if (strcmp(name, "rate") == 0)
		return o->rate;
	if (strcmp(name, "mode") == 0)
		return (uint64_t)o->mode;
	if (strcmp(name, "quiet") == 0)
		return o->quiet;
	if (strcmp(name, "on") == 0)
		return o->on;
	if (strcmp(name, "label") == 0)
		return o->label != NULL ? (uint8_t)o->label[0] : 0;
	if (strcmp(name, "fn_calls") == 0)
		return o->fn_calls;
	if (strcmp(name, "to") == 0)
		return co->to != NULL ? (uint8_t)co->to[0] : 0;
	if (strcmp(name, "json") == 0)
		return co->json;
	if (strcmp(name, "dir") == 0)
		return co->dir != NULL ? (uint8_t)co->dir[0] : 0;
	if (strcmp(name, "channels") == 0)
		return co->channels;
	if (strcmp(name, "io_timeout") == 0)
		return co->io_timeout;
	if (strcmp(name, "has_net") == 0)
		return co->has_net;
	return UINT64_MAX;
}

static int parse(const struct smg_opt_spec *sp, const char *const *args,
		 struct smg_cli_common *co, struct own *o)
{
	char *argv[ARGS_MAX + 2] = {(char *)"test"};
	int argc = 1;

	for (; argc <= ARGS_MAX && args[argc - 1] != NULL; argc++)
		argv[argc] = (char *)args[argc - 1];
	memset(co, 0, sizeof(*co));
	memset(o, 0, sizeof(*o));
	o->on = true;
	return smg_opts_parse(sp, argc, argv, co, o);
}

static void run_cases(void)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		const struct tcase *c = &cases[i];
		struct smg_cli_common co;
		struct own o;
		int code = parse(&spec, c->args, &co, &o);

		if (code != c->code)
			fprintf(stderr, "case %zu (%s ...): exit %d, want %d\n", i,
				c->args[0], code, c->code);
		CHECK_EQ(code, c->code);
		if (code < 0 && c->field != NULL)
			CHECK_EQ(field(&co, &o, c->field), c->want);
	}
}

/* A command with operands keeps them for itself; optind points there. */
static void operands(void)
{
	struct smg_opt_spec sp = spec;
	const char *args[ARGS_MAX] = {"--quiet", "id1", "id2"};
	struct smg_cli_common co;
	struct own o;

	sp.operands = true;
	CHECK_EQ(parse(&sp, args, &co, &o), -1);
	CHECK(o.quiet);
	CHECK_EQ(optind, 2);
}

/* More rows than a command may have: refused, not truncated; as many
 * as it may have: all of them in getopt's tables. */
static void too_many(void)
{
	static struct smg_opt rows[SMG_OPTS_MAX + 1];
	struct smg_opt_spec sp = {
	    .cmd = "status", .own = rows, .n_own = SMG_OPTS_MAX + 1};
	const char *args[ARGS_MAX] = {NULL};
	struct smg_cli_common co;
	struct own o;

	for (size_t i = 0; i <= SMG_OPTS_MAX; i++)
		rows[i] = (struct smg_opt){.name = "x", .kind = SMG_OPT_SET};
	CHECK_EQ(parse(&sp, args, &co, &o), SMG_EXIT_FAIL);
	sp.n_own = SMG_OPTS_MAX;
	CHECK_EQ(parse(&sp, args, &co, &o), -1);
}

/* A parse that stopped inside a cluster of short options ("-Zj": an
 * error at Z) leaves getopt pointing into that argv; the next parse (config
 * check runs one per entry) must not read the rest of it. */
static void fresh_state(void)
{
	const char *first[ARGS_MAX] = {"-Zj"};
	const char *next[ARGS_MAX] = {NULL};
	struct smg_cli_common co;
	struct own o;

	CHECK_EQ(parse(&spec, first, &co, &o), SMG_EXIT_USAGE);
	CHECK_EQ(parse(&spec, next, &co, &o), -1);
	CHECK(!co.json);
}

int main(void)
{
	opterr = 0; /* as the dispatcher: the usage error says it once */
	run_cases();
	operands();
	too_many();
	fresh_state();
	return check_result("test_cli_opts");
}
