/* One option parser for the subcommands (cli/opts.c): the options the
 * migration commands share are defined once, in the common table, and set
 * fields of struct smg_cli_common; a command names the common options it
 * takes and adds its own, which set fields of its own struct. getopt_long
 * does the scanning, so the config file's --key=value entries and the
 * did-you-mean of a usage error (cli/dispatch.c) work for every command. */
#ifndef SMG_CLI_OPTS_H
#define SMG_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define SMG_OPTS_MAX		 48 /* options of one command, common ones included */
#define SMG_OPTS_MAX_DOWNTIME_MS 3600000u /* send, tune: --max-downtime */

/* How an option's argument becomes the value of its field. A value that
 * does not parse is a usage error with the option's own message. */
enum smg_opt_kind {
	SMG_OPT_STR,	/* const char *: the argument */
	SMG_OPT_SET,	/* bool: true; no argument */
	SMG_OPT_CLEAR,	/* bool: false; no argument */
	SMG_OPT_UINT,	/* unsigned: a size (smg_parse_size), min..max */
	SMG_OPT_U64,	/* uint64_t: a size (smg_parse_size), min..max */
	SMG_OPT_MS,	/* unsigned: decimal milliseconds, min..max */
	SMG_OPT_CHOICE, /* int: the value of the word among choices */
	SMG_OPT_FN,	/* fn(struct, arg) decides; it returns 0 or -1 */
	SMG_OPT_HELP,	/* print the command's usage, exit 0 */
};

struct smg_opt_choice {
	const char *word;
	int value;
};

struct smg_opt {
	const char *name; /* the long option, without its dashes */
	char short_name;  /* -x as well, or 0 */
	enum smg_opt_kind kind;
	size_t off; /* the field it sets (offsetof) */
	uint64_t min, max;
	const struct smg_opt_choice *choices; /* {NULL, 0}-terminated */
	int (*fn)(void *target, const char *arg);
	const char *bad; /* the usage error for a bad value: one %s, the value */
};

/* The options the migration commands share. */
struct smg_cli_common {
	const char *to, *peer, *domain, *dir, *backend, *key, *peers, *name;
	const char *policy, *tcti, *ticket, *operators, *disk_socket;
	unsigned channels, io_timeout;
	bool json, check_memory, has_net;
	struct smg_netid_host net; /* --net-bridge, --net-ns-prefix */
};

/* The common table's rows; a command takes a set of them. */
enum smg_copt {
	SMG_CO_TO,
	SMG_CO_PEER,
	SMG_CO_DOMAIN,
	SMG_CO_JSON,
	SMG_CO_STATE_DIR,
	SMG_CO_BACKEND,
	SMG_CO_KEY,
	SMG_CO_PEERS,
	SMG_CO_NAME,
	SMG_CO_POLICY,
	SMG_CO_TCTI,
	SMG_CO_TICKET,
	SMG_CO_OPERATORS,
	SMG_CO_DISK_SOCKET,
	SMG_CO_CHANNELS,
	SMG_CO_IO_TIMEOUT,
	SMG_CO_NET_BRIDGE,
	SMG_CO_NET_NS_PREFIX,
	SMG_CO_CHECK_MEMORY,
	SMG_CO_HELP,
	SMG_CO_N
};
#define SMG_CO(x) (UINT64_C(1) << SMG_CO_##x)
/* Where a host's identity and files come from. */
#define SMG_CO_IDENTITY                                                      \
	(SMG_CO(STATE_DIR) | SMG_CO(BACKEND) | SMG_CO(KEY) | SMG_CO(PEERS) | \
	 SMG_CO(NAME) | SMG_CO(POLICY) | SMG_CO(TCTI))
#define SMG_CO_NET (SMG_CO(NET_BRIDGE) | SMG_CO(NET_NS_PREFIX) | SMG_CO(IO_TIMEOUT))

/* A command's options: the common ones it takes, its own. */
struct smg_opt_spec {
	const char *cmd; /* its name in smg_cmds: usage errors, --help */
	uint64_t common; /* SMG_CO(...) | ... */
	const struct smg_opt *own;
	size_t n_own;
	bool operands; /* takes arguments after its options (else refused) */
};

/* Parse argv[1..] (optind is reset): common options into *co, the
 * command's own into *self. Returns -1 to go on, with optind at the first
 * operand, else the exit code (a usage error printed, or 0 after --help).
 * Defaults are the caller's: fields no option names are left alone. */
int smg_opts_parse(const struct smg_opt_spec *sp, int argc, char **argv,
		   struct smg_cli_common *co, void *self);
/* The usage error of the command sp: exit 2. */
int smg_opts_usage(const struct smg_opt_spec *sp, const char *fmt, const char *arg);
/* send and precheck: --to and --domain given and well-formed, the state
 * directory resolved (smg_cli_state_dir), and the common options that go
 * into so. -1 to go on, else the exit code. */
int smg_opts_send(const struct smg_opt_spec *sp, struct smg_cli_common *co,
		  struct smg_send_opts *so);

#endif
