/* `secmig resolve`: settle an in-doubt migration by asking the host that
 * took the COMMIT, and that host only (DESIGN §7). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/opts.h"

static const struct smg_opt_spec spec = {
    .cmd = "resolve",
    .common = SMG_CO(DOMAIN) | SMG_CO(TO) | SMG_CO(JSON) | SMG_CO_IDENTITY | SMG_CO_NET |
	      SMG_CO(HELP),
};

static int parse_args(int argc, char **argv, struct smg_cli_common *a)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->backend = "sim";
	if ((r = smg_opts_parse(&spec, argc, argv, a, NULL)) >= 0)
		return r;
	if (a->domain == NULL || !smg_domain_name_valid(a->domain))
		return smg_opts_usage(&spec, "resolve needs --domain NAME%s", "");
	a->dir = smg_cli_state_dir(a->dir);
	return -1;
}

static void report(const struct smg_cli_common *a, const char *id,
		   const struct smg_commit_peer *p, enum smg_resolve_outcome oc, int r,
		   int code)
{
	const char *outcome = oc == SMG_RESOLVED_RUNNING     ? "running_on_destination"
			      : oc == SMG_RESOLVED_DISCARDED ? "resumed_on_source"
							     : "in_doubt";
	const char *what =
	    oc == SMG_RESOLVED_RUNNING ? "destination runs the VM; source copy destroyed"
	    : oc == SMG_RESOLVED_DISCARDED ? "destination never ran it; source VM resumed"
					   : "still in doubt; nothing settled";

	if (a->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("result"));
		json_object_object_add(j, "role", json_object_new_string("resolve"));
		json_object_object_add(j, "outcome", json_object_new_string(outcome));
		json_object_object_add(j, "migration_id", json_object_new_string(id));
		json_object_object_add(j, "domain", json_object_new_string(a->domain));
		json_object_object_add(j, "peer", json_object_new_string(p->name));
		json_object_object_add(j, "exit_code", json_object_new_int(code));
		if (r != SMG_OK)
			json_object_object_add(j, "error",
					       json_object_new_string(smg_strerror(r)));
		printf("%s\n",
		       json_object_to_json_string_ext(
			   j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		printf("resolve %s (%s) with '%s': %s%s%s\n", a->domain, id, p->name,
		       what, r ? ": " : "", r ? smg_strerror(r) : "");
	}
	fflush(stdout);
}

/* Paused by a sender that died before COMMIT (a backend without leases):
 * it never ran anywhere else, so it resumes here without asking. */
static int resume_unpaused(struct smg_backend *be, const char *domain, const char *id)
{
	int r = be->ops->domain_settle(be, domain, false);

	printf("resolve %s (%s): paused before COMMIT by a sender that died; %s\n",
	       domain, id, r == SMG_OK ? "resumed here" : smg_strerror(r));
	return r == SMG_OK ? SMG_EXIT_OK : SMG_EXIT_BACKEND;
}

static int ask(const struct smg_cli_common *a, struct smg_backend *be, const char *id,
	       const struct smg_commit_peer *p, enum smg_resolve_outcome *oc)
{
	char host[SMG_CLI_HOST_MAX];
	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_session *s = NULL;
	uint16_t port;
	int r;

	if (smg_cli_parse_addr(a->to != NULL ? a->to : p->addr, host, sizeof(host),
			       &port) != SMG_OK) {
		fprintf(stderr,
			"secmig: bad destination address '%s' (give --to HOST:PORT)\n",
			a->to != NULL ? a->to : p->addr);
		return SMG_ERR_INVAL;
	}
	if ((r = smg_cli_ident_load(&ci, a->dir, a->key, a->peers, a->name)) != SMG_OK)
		return SMG_ERR_CONFIG;
	ci.so.channels = 1;
	ci.so.io_timeout_ms = a->io_timeout;
	ci.so.handshake_timeout_ms = a->io_timeout;
	/* Only the host that took the COMMIT may answer. */
	ci.so.expect_peer = p->name;
	if ((r = smg_cli_tpm_load(&tpm, a->policy, a->tcti, &ci.so)) != SMG_OK) {
		smg_cli_ident_free(&ci);
		return r;
	}
	if ((r = smg_session_connect(host, port, &ci.so, &s)) == SMG_OK) {
		r = smg_engine_resolve(s, be, a->domain, id, p, oc);
		if (r == SMG_OK)
			smg_session_close(s);
		else
			smg_session_free(s);
	} else if (smg_exit_from_err(r) == SMG_EXIT_AUTH) {
		smg_err("resolve: the host at %s:%u is not '%s' (the host that took the "
			"COMMIT); nothing settled: find where '%s' listens and pass --to",
			host, port, p->name, p->name);
	}
	smg_cli_tpm_free(&tpm);
	smg_cli_ident_free(&ci);
	return r;
}

int smg_cmd_resolve(int argc, char **argv)
{
	struct smg_cli_common a;
	struct smg_backend_opts bo = {0};
	struct smg_backend *be = NULL;
	struct smg_commit_peer p;
	enum smg_resolve_outcome oc = 0;
	char id[128], tok[SMG_COMMIT_PEER_MAX + 2];
	unsigned nnics;
	int r, code;

	if ((code = parse_args(argc, argv, &a)) >= 0)
		return code;
	bo.state_dir = a.dir;
	if ((r = smg_backend_open(a.backend, &bo, &be)) != SMG_OK)
		return SMG_EXIT_BACKEND;
	if ((r = be->ops->domain_pending(be, a.domain, id, sizeof(id), tok,
					 sizeof(tok))) != SMG_OK) {
		if (be->ops->paused_pending != NULL &&
		    be->ops->paused_pending(be, a.domain, id, sizeof(id), tok,
					    sizeof(tok)) == SMG_OK)
			code = resume_unpaused(be, a.domain, id);
		else
			fprintf(stderr, "secmig: '%s' has no in-doubt migration here\n",
				a.domain);
		smg_backend_close(be);
		return code >= 0 ? code : SMG_EXIT_BACKEND;
	}
	if (smg_commit_peer_parse(tok, strlen(tok), &p) != SMG_OK) {
		fprintf(
		    stderr,
		    "secmig: the COMMIT record of '%s' does not name the destination's "
		    "key; it cannot be resolved safely\n",
		    a.domain);
		smg_backend_close(be);
		return SMG_EXIT_CONFIG;
	}
	r = ask(&a, be, id, &p, &oc);
	/* network: the VM's NICs follow the settled outcome. */
	if (r == SMG_OK && a.has_net &&
	    smg_netid_settle(&a.net, a.domain, oc == SMG_RESOLVED_DISCARDED, &nnics) !=
		SMG_OK)
		smg_warn("resolve: the VM's NICs on this host could not be settled");
	/* storage: the disks held handed-over follow it too (docs/storage.md). */
	unsigned ndisks;
	if (r == SMG_OK &&
	    smg_engine_disks_settle(a.dir, a.domain, oc == SMG_RESOLVED_RUNNING,
				    &ndisks) != SMG_OK)
		smg_warn("resolve: the VM's disks on this host could not all be settled "
			 "('secmig disk settle')");
	/* A forged or unsigned answer settles nothing: exit 7, still in doubt. */
	code = r == SMG_OK				 ? SMG_EXIT_OK
	       : r == SMG_ERR_INVAL			 ? SMG_EXIT_USAGE
	       : r == SMG_ERR_INTEGRITY			 ? SMG_EXIT_INTEGRITY
	       : smg_exit_from_err(r) == SMG_EXIT_AUTH	 ? SMG_EXIT_AUTH
	       : smg_exit_from_err(r) == SMG_EXIT_ATTEST ? SMG_EXIT_ATTEST
	       : r == SMG_ERR_CONFIG			 ? SMG_EXIT_CONFIG
							 : SMG_EXIT_IN_DOUBT;
	report(&a, id, &p, oc, r, code);
	smg_backend_close(be);
	return code;
}
