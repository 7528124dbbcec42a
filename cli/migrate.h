/* Helpers the migration subcommands (send, recv, resolve, demo) share:
 * addresses, identities, the progress line and the --json event stream. */
#ifndef SMG_CLI_MIGRATE_H
#define SMG_CLI_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "transport/transport.h"

#define SMG_CLI_HOST_MAX    256
#define SMG_CLI_DEFAULT_DIR "/var/lib/secmig"

/* HOST[:PORT], [V6]:PORT; port defaults to SMG_DEFAULT_PORT. */
int smg_cli_parse_addr(const char *s, char *host, size_t hlen, uint16_t *port);
/* Sizes with K/M/G suffixes ("50M"); bytes. */
const char *smg_cli_state_dir(const char *opt);

/* Identity, peers and session options from --key/--peers/--name. */
struct smg_cli_ident {
	struct smg_identity *id;
	struct smg_peers *peers;
	struct smg_session_opts so;
};
int smg_cli_ident_load(struct smg_cli_ident *ci, const char *dir, const char *key,
		       const char *peers, const char *name);
void smg_cli_ident_free(struct smg_cli_ident *ci);

/* This host's audit context (audit/): the log in DIR/audit, operators
 * from `operators` (NULL: DIR/operators if present), and with tpm the
 * policy (hashed into records; its tickets knob) and the AK for receipts.
 * SMG_ERR_CONFIG for a bad operators file. */
struct smg_audit;
struct smg_cli_tpm;
int smg_cli_audit_open(struct smg_audit **out, const char *dir, const char *operators,
		       const struct smg_cli_ident *ci, const struct smg_cli_tpm *tpm,
		       const char *policy_path);
/* "+30m", "-1h", "+2d", "@UNIX", "YYYY-MM-DDTHH:MM:SSZ" -> unix seconds. */
int smg_cli_parse_time(const char *s, uint64_t now, uint64_t *out);
/* Read an armoured ticket file (`secmig ticket sign`) into buf. */
int smg_cli_ticket_read(const char *path, uint8_t *buf, size_t cap, size_t *len);

/* Event output: JSON lines on out, or a live progress line on a tty. */
struct smg_cli_out {
	FILE *f;
	bool json, tty;
	const char *role; /* "send", "recv" */
	unsigned line_len;
	double handshake_ms; /* session set-up incl. attestation; <0: not measured */
	const char *auth;    /* "tpm" or "software": how sessions authenticate */
};
void smg_cli_out_init(struct smg_cli_out *o, FILE *f, bool json, const char *role);
void smg_cli_event(void *arg, const struct smg_event *ev);
/* The last line: {"event":"result", ...} or a human summary. */
void smg_cli_result(struct smg_cli_out *o, const struct smg_mig_stats *st, int code);

#endif
