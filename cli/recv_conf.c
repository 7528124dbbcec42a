/* recv_conf: what `secmig recv` reads from files (peers, policy and its TPM,
 * host definitions, audit context with its operators), loaded as one
 * immutable snapshot. SIGHUP loads a new snapshot beside the running one;
 * a migration keeps the snapshot it started with (a reference), a new one
 * takes the newest. A snapshot that does not load leaves the running one in
 * place. The identity key and the command-line flags are not reloaded. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/migrate.h"
#include "cli/recv_conf.h"

static int load_peers(const struct smg_recv_files *f, struct smg_peers **out)
{
	char pp[512];
	const char *path = f->peers;
	int r;

	if (path == NULL) {
		snprintf(pp, sizeof(pp), "%s/peers", f->dir);
		path = pp;
	}
	if ((r = smg_peers_load(path, out)) != SMG_OK)
		fprintf(stderr, "secmig recv: peers file %s: %s\n", path,
			smg_strerror(r));
	return r;
}

static int load_defs(struct smg_recv_conf *c, const struct smg_recv_files *f)
{
	const char *defs = f->defs;
	char err[512];

	if (defs == NULL && c->tpm.policy != NULL && c->tpm.policy->defs[0] != '\0')
		defs = c->tpm.policy->defs;
	if (defs == NULL) {
		fprintf(stderr, "secmig recv: no host definitions: --defs FILE or "
				"'defs FILE' in the policy (docs/hostdef.md)\n");
		return SMG_ERR_CONFIG;
	}
	if (smg_hostdef_load(defs, &c->defs, err, sizeof(err)) != SMG_OK) {
		fprintf(stderr, "secmig recv: %s\n", err);
		return SMG_ERR_CONFIG;
	}
	return SMG_OK;
}

int smg_recv_conf_load(const struct smg_recv_files *f, struct smg_identity *id,
		       const struct smg_session_opts *base, struct smg_recv_conf **out)
{
	struct smg_recv_conf *c;
	struct smg_cli_ident ci;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SMG_ERR_NOMEM;
	c->refs = 1;
	c->so = *base;
	c->so.identity = id;
	c->so.name = f->name;
	if ((r = load_peers(f, &c->peers)) != SMG_OK)
		goto fail;
	c->so.peers = c->peers;
	if ((r = smg_cli_tpm_load(&c->tpm, f->policy, f->tcti, &c->so)) != SMG_OK)
		goto fail;
	if ((r = load_defs(c, f)) != SMG_OK)
		goto fail;
	/* The audit context names this host and the policy whose hash goes
	 * into each record: one per snapshot (appends lock the log, so two
	 * snapshots' migrations chain correctly). */
	memset(&ci, 0, sizeof(ci));
	ci.id = id;
	ci.so = c->so;
	if ((r = smg_cli_audit_open(&c->audit, f->dir, f->operators, &ci, &c->tpm,
				    f->policy)) != SMG_OK)
		goto fail;
	c->so.on_refused = smg_audit_on_refused; /* suspicious activity */
	c->so.refused_arg = c->audit;
	*out = c;
	return SMG_OK;
fail:
	smg_recv_conf_free(c);
	return r == SMG_ERR_TPM ? r : SMG_ERR_CONFIG;
}

void smg_recv_conf_free(struct smg_recv_conf *c)
{
	if (c == NULL)
		return;
	smg_audit_close(c->audit);
	smg_hostdef_free(c->defs);
	smg_cli_tpm_free(&c->tpm);
	smg_peers_free(c->peers);
	free(c);
}

bool smg_recv_conf_enrols(const struct smg_recv_conf *c, const char *name,
			  const uint8_t key[SMG_PUBKEY_LEN])
{
	const struct smg_peer *p = smg_peers_find(c->peers, name);

	return p != NULL && sodium_memcmp(p->pubkey, key, SMG_PUBKEY_LEN) == 0;
}
