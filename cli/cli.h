/* The secmig command line: subcommand table, exit codes (the README's table
 * holds the same numbers), and the helpers subcommands share. */
#ifndef SMG_CLI_H
#define SMG_CLI_H

#include <stdio.h>

/* Stable, documented exit codes (README "Exit codes"). Every failure before
 * COMMIT leaves the source VM running; only SMG_EXIT_IN_DOUBT does not. */
enum smg_exit {
	SMG_EXIT_OK = 0,
	SMG_EXIT_FAIL = 1,	    /* internal or unclassified failure */
	SMG_EXIT_USAGE = 2,	    /* bad command line */
	SMG_EXIT_AUTH = 3,	    /* peer authentication failed */
	SMG_EXIT_ATTEST = 4,	    /* TPM / attestation evidence rejected */
	SMG_EXIT_POLICY = 5,	    /* ACL or placement denied */
	SMG_EXIT_NETWORK = 6,	    /* link or peer failure; source VM running */
	SMG_EXIT_INTEGRITY = 7,	    /* manifest mismatch; source VM running */
	SMG_EXIT_NOT_CONVERGED = 8, /* pre-copy aborted; source VM running */
	SMG_EXIT_IN_DOUBT = 9,	    /* link lost after COMMIT; run resolve */
	SMG_EXIT_PROTOCOL = 10,	    /* peer broke the protocol; source running */
	SMG_EXIT_CONFIG = 11,	    /* bad configuration or key file */
	SMG_EXIT_BACKEND = 12,	    /* hypervisor backend failed or missing */
	SMG_EXIT_CANCELLED = 13,    /* cancelled before COMMIT; source VM running */
	SMG_EXIT_CAPACITY = 14,	    /* no room on the destination; source running */
	SMG_EXIT_EXISTS = 15,	    /* domain name taken on the destination */
};

/* Map an smg_err to the exit code an operator sees. */
int smg_exit_from_err(int err);
const char *smg_exit_name(int code);

struct smg_cmd {
	const char *name;
	const char *summary;
	const char *usage; /* full help text for `secmig help NAME` */
	int (*run)(int argc, char **argv);
};

extern const struct smg_cmd smg_cmds[];
const struct smg_cmd *smg_cmd_find(const char *name);
int smg_cli_main(int argc, char **argv);
/* Print "usage: ..." for cmd to stderr and return SMG_EXIT_USAGE. */
int smg_cli_usage_error(const struct smg_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int smg_cmd_version(int argc, char **argv);
int smg_cmd_help(int argc, char **argv);
int smg_cmd_net(int argc, char **argv);
int smg_cmd_tpm_enroll(int argc, char **argv);
int smg_cmd_config(int argc, char **argv);
int smg_cmd_sim(int argc, char **argv);
int smg_cmd_qemu(int argc, char **argv);
int smg_cmd_disk(int argc, char **argv);
int smg_cmd_send(int argc, char **argv);
int smg_cmd_recv(int argc, char **argv);
int smg_cmd_resolve(int argc, char **argv);
int smg_cmd_demo(int argc, char **argv);
int smg_cmd_keygen(int argc, char **argv);
int smg_cmd_status(int argc, char **argv);
int smg_cmd_metrics(int argc, char **argv);
int smg_cmd_cancel(int argc, char **argv);
int smg_cmd_tune(int argc, char **argv);
int smg_cmd_audit(int argc, char **argv);
int smg_cmd_ticket(int argc, char **argv);
int smg_cmd_operator(int argc, char **argv);

#endif
