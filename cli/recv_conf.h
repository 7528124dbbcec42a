/* What `secmig recv` reads from files, as reloadable snapshots
 * (cli/recv_conf.c). */
#ifndef SMG_CLI_RECV_CONF_H
#define SMG_CLI_RECV_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "cli/host_tpm.h"
#include "transport/transport.h"

/* Where the files are (flags; fixed for the process's life). */
struct smg_recv_files {
	const char *dir;       /* state directory: DIR/peers, DIR/audit */
	const char *peers;     /* NULL: DIR/peers */
	const char *policy;    /* NULL: none (--insecure-software-mode) */
	const char *tcti;      /* NULL: the policy's */
	const char *defs;      /* NULL: the policy's 'defs' line */
	const char *operators; /* NULL: DIR/operators */
	const char *name;      /* --name; NULL: the policy's host, else hostname */
};

struct smg_audit;

/* One immutable snapshot; its owner counts references (refs) under its own
 * lock and frees it with smg_recv_conf_free when the last one goes. */
struct smg_recv_conf {
	unsigned refs;
	unsigned generation; /* 1 at start, +1 per successful reload */
	struct smg_peers *peers;
	struct smg_cli_tpm tpm;
	struct smg_hostdef *defs;
	struct smg_audit *audit;
	struct smg_session_opts
	    so; /* base + identity, peers, name, TPM ext, audit hook */
};

/* Load every file; on failure the reason is printed to stderr and an
 * smg_err returned (SMG_ERR_CONFIG, or SMG_ERR_TPM when the TPM does not
 * open). base: the flags' session options (channels, timeouts). */
int smg_recv_conf_load(const struct smg_recv_files *f, struct smg_identity *id,
		       const struct smg_session_opts *base, struct smg_recv_conf **out);
void smg_recv_conf_free(struct smg_recv_conf *c);
/* Whether the snapshot enrols peer `name` with this key. */
bool smg_recv_conf_enrols(const struct smg_recv_conf *c, const char *name,
			  const uint8_t key[SMG_PUBKEY_LEN]);

#endif
