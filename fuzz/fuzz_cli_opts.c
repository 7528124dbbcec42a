/* libFuzzer harness: the subcommands' option parser (cli/opts.c,
 * smg_opts_parse) over an argv of operator or script input. The input is
 * the words after the command name, NUL-separated (at most WORDS_MAX); the
 * spec takes every common option and a row of every kind. Each input runs
 * twice in a row, as `secmig config check` runs one parse after another.
 * Oracles: a parse that goes on leaves every field within its row's
 * bounds, every string pointing into this argv, a net name without '/',
 * and optind within argv; a parse that stops says 0 or 2. */
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "transport/transport.h"

#define WORDS_MAX 16
#define INPUT_MAX 4096

struct own {
	unsigned n;
	uint64_t rate;
	int pick;
	bool flag, on;
	const char *s;
};

static int fn_short(void *target, const char *arg)
{
	(void)target;
	return strlen(arg) <= 4 ? 0 : -1;
}

static const struct smg_opt_choice picks[] = {{"a", 1}, {"b", 2}, {NULL, 0}};

static const struct smg_opt rows[] = {
    {.name = "n",
     .short_name = 'N',
     .kind = SMG_OPT_UINT,
     .off = offsetof(struct own, n),
     .min = 3,
     .max = 9,
     .bad = "%s"},
    {.name = "rate",
     .kind = SMG_OPT_U64,
     .off = offsetof(struct own, rate),
     .min = 1,
     .max = UINT64_MAX - 1,
     .bad = "%s"},
    {.name = "pick",
     .short_name = 'P',
     .kind = SMG_OPT_CHOICE,
     .off = offsetof(struct own, pick),
     .choices = picks,
     .bad = "%s"},
    {.name = "flag",
     .short_name = 'F',
     .kind = SMG_OPT_SET,
     .off = offsetof(struct own, flag)},
    {.name = "off", .kind = SMG_OPT_CLEAR, .off = offsetof(struct own, on)},
    {.name = "s", .short_name = 'S', .kind = SMG_OPT_STR, .off = offsetof(struct own, s)},
    {.name = "fn", .kind = SMG_OPT_FN, .fn = fn_short, .bad = "%s"},
};

static const struct smg_opt_spec spec = {
    .cmd = "status",
    .common = (UINT64_C(1) << SMG_CO_N) - 1,
    .own = rows,
    .n_own = SMG_ARRAY_LEN(rows),
};

static bool in_argv(const char *p, char **argv, int argc)
{
	if (p == NULL)
		return true;
	for (int i = 0; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static void check(const struct smg_cli_common *co, const struct own *o, char **argv,
		  int argc)
{
	const char *const strs[] = {co->to,	     co->peer, co->domain, co->dir,
				    co->backend,     co->key,  co->peers,  co->name,
				    co->policy,	     co->tcti, co->ticket, co->operators,
				    co->disk_socket, o->s};

	for (size_t i = 0; i < SMG_ARRAY_LEN(strs); i++)
		if (!in_argv(strs[i], argv, argc))
			abort();
	if (co->channels > SMG_CHANNELS_MAX ||
	    (co->io_timeout != 0 && (co->io_timeout < 100 || co->io_timeout > 3600000)))
		abort();
	if (strchr(co->net.bridge, '/') != NULL || strchr(co->net.ns_prefix, '/') != NULL)
		abort();
	if ((o->n != 0 && (o->n < 3 || o->n > 9)) || o->rate == UINT64_MAX ||
	    (o->pick != 0 && o->pick != 1 && o->pick != 2))
		abort();
	if (optind < 1 || optind > argc)
		abort();
}

static void one(char **argv, int argc)
{
	struct smg_cli_common co;
	struct own o;
	int r;

	memset(&co, 0, sizeof(co));
	memset(&o, 0, sizeof(o));
	r = smg_opts_parse(&spec, argc, argv, &co, &o);
	if (r < 0)
		check(&co, &o, argv, argc);
	else if (r != SMG_EXIT_OK && r != SMG_EXIT_USAGE)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[WORDS_MAX + 2];
	char *buf;
	int argc = 0;

	if (size > INPUT_MAX || (buf = malloc(size + 8)) == NULL)
		return 0;
	memcpy(buf, "status", 7); /* argv[0], its NUL included */
	memcpy(buf + 7, data, size);
	buf[size + 7] = '\0'; /* the last word ends, NUL or not */
	for (size_t i = 0; i < size + 7 && argc <= WORDS_MAX; i += strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	argv[argc] = NULL;
	opterr = 0;
	one(argv, argc);
	one(argv, argc);
	smg_cli_set_args(0, NULL);
	free(buf);
	return 0;
}
