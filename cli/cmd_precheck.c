/* `secmig precheck`: would `secmig send` with the same options succeed?
 * Runs what send runs up to the plan (this host's backend and domain, the
 * authenticated handshake with attestation, this host's policy and ticket)
 * and has the destination check the plan without acting on it
 * (engine/precheck.c). The VM is looked at, never paused or copied; no
 * ticket is used up and nothing is reserved there. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/opts.h"

struct pre_args {
	struct smg_cli_common co;
	struct smg_send_opts so;
	uint8_t tk[SMG_TICKET_MAX];
};

struct pre_run {
	struct pre_args a;
	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_cli_dest dest;
	struct smg_mig_stats st;
	struct smg_send *m;
	struct smg_precheck pc;
};

static const struct smg_opt_spec spec = {
    .cmd = "precheck",
    .common = SMG_CO(TO) | SMG_CO(PEER) | SMG_CO(DOMAIN) | SMG_CO(JSON) |
	      SMG_CO_IDENTITY | SMG_CO(TICKET) | SMG_CO(OPERATORS) | SMG_CO(DISK_SOCKET) |
	      SMG_CO(IO_TIMEOUT) | SMG_CO(HELP),
};

static int parse_args(int argc, char **argv, struct pre_args *a)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->co.backend = "sim";
	if ((r = smg_opts_parse(&spec, argc, argv, &a->co, a)) >= 0)
		return r;
	return smg_opts_send(&spec, &a->co, &a->so);
}

static void add(struct smg_precheck *pc, const char *name, int err, const char *detail)
{
	struct smg_precheck_item *it;

	if (pc->n >= SMG_PRECHECK_ITEMS_MAX)
		return;
	it = &pc->v[pc->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->ok = err == SMG_OK;
	it->err = err;
	snprintf(it->detail, sizeof(it->detail), "%s", detail != NULL ? detail : "");
}

/* The verdicts, one line each (or one JSON object), and the exit code:
 * the first failing check's, as `secmig send` would exit. */
static int report(struct pre_run *x, int err)
{
	int code = smg_exit_from_err(err);
	const struct smg_precheck *pc = &x->pc;
	const char *first = NULL;

	for (unsigned i = 0; i < pc->n && first == NULL; i++)
		if (!pc->v[i].ok)
			first = pc->v[i].name;
	if (x->a.co.json) {
		json_object *j = json_object_new_object(), *arr = json_object_new_array();
		json_object_object_add(j, "event", json_object_new_string("precheck"));
		json_object_object_add(j, "domain",
				       json_object_new_string(x->a.so.domain));
		json_object_object_add(j, "peer", json_object_new_string(x->dest.peer));
		json_object_object_add(j, "ok", json_object_new_boolean(code == 0));
		json_object_object_add(j, "exit", json_object_new_int(code));
		json_object_object_add(j, "exit_name",
				       json_object_new_string(smg_exit_name(code)));
		for (unsigned i = 0; i < pc->n; i++) {
			json_object *c = json_object_new_object();
			json_object_object_add(c, "check",
					       json_object_new_string(pc->v[i].name));
			json_object_object_add(c, "where",
					       json_object_new_string(pc->v[i].remote
									  ? "destination"
									  : "source"));
			json_object_object_add(c, "ok",
					       json_object_new_boolean(pc->v[i].ok));
			if (!pc->v[i].ok)
				json_object_object_add(
				    c, "detail", json_object_new_string(pc->v[i].detail));
			json_object_array_add(arr, c);
		}
		json_object_object_add(j, "checks", arr);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else {
		printf("precheck %s -> %s (%s)\n", x->a.so.domain, x->dest.peer,
		       x->dest.addr[0] ? x->dest.addr : x->a.co.to);
		for (unsigned i = 0; i < pc->n; i++)
			printf("  %-4s  %-11s  %-11s  %s\n", pc->v[i].ok ? "ok" : "FAIL",
			       pc->v[i].name, pc->v[i].remote ? "destination" : "source",
			       pc->v[i].detail);
		if (code == 0)
			printf("would succeed: every check passed; the VM was not "
			       "touched\n");
		else
			printf("would fail (%s): exit %d (%s); the VM was not touched\n",
			       first != NULL ? first : smg_strerror(err), code,
			       smg_exit_name(code));
	}
	fflush(stdout);
	return code;
}

/* This host's side up to the session: identity, destination, TPM, ticket,
 * operators, then the backend and the domain (looked at, not touched). */
static int setup(struct pre_run *x)
{
	int r;

	if (smg_cli_ident_load(&x->ci, x->a.co.dir, x->a.co.key, x->a.co.peers,
			       x->a.co.name) != SMG_OK) {
		add(&x->pc, "config", SMG_ERR_CONFIG, "bad identity or peers file");
		return SMG_ERR_CONFIG;
	}
	if ((r = smg_cli_dest_resolve(x->ci.peers, x->a.co.to, x->a.co.peer, &x->dest)) !=
	    SMG_OK) {
		if (r == SMG_ERR_INVAL)
			return r;
		add(&x->pc, "config", SMG_ERR_CONFIG, "the destination is not enrolled");
		return SMG_ERR_CONFIG;
	}
	x->ci.so.channels = 1; /* the control channel is all a pre-check uses */
	x->ci.so.io_timeout_ms = x->a.co.io_timeout;
	x->ci.so.handshake_timeout_ms = x->a.co.io_timeout;
	x->ci.so.expect_peer = x->dest.peer;
	if ((r = smg_cli_tpm_load(&x->tpm, x->a.co.policy, x->a.co.tcti, &x->ci.so)) !=
	    SMG_OK) {
		add(&x->pc, "config", r, "TPM mode could not start");
		return r;
	}
	if ((x->a.co.ticket != NULL &&
	     smg_cli_ticket_read(x->a.co.ticket, x->a.tk, sizeof(x->a.tk),
				 &x->a.so.ticket_len) != SMG_OK) ||
	    smg_cli_audit_open(&x->a.so.audit, x->a.co.dir, x->a.co.operators, &x->ci,
			       &x->tpm, x->a.co.policy) != SMG_OK) {
		add(&x->pc, "config", SMG_ERR_CONFIG,
		    "bad ticket or operators file, or the audit log cannot open");
		return SMG_ERR_CONFIG;
	}
	x->a.so.ticket = x->a.tk;
	x->a.so.bopts.state_dir = x->a.co.dir;
	x->a.so.peer = x->dest.addr;
	x->a.so.policy = x->tpm.policy;
	if ((r = smg_engine_send_prepare(&x->a.so, &x->st, &x->m)) != SMG_OK) {
		add(&x->pc, "domain", r, x->st.detail);
		return r;
	}
	add(&x->pc, "domain", SMG_OK, "");
	return SMG_OK;
}

static int precheck(struct pre_run *x)
{
	struct smg_session *s = NULL;
	char d[SMG_ENGINE_DETAIL_MAX + SMG_CLI_HOST_MAX + 128];
	int r;

	r = smg_session_connect(x->dest.host, x->dest.port, &x->ci.so, &s);
	if (r != SMG_OK) {
		snprintf(d, sizeof(d), "%s at %s: %s", x->dest.peer, x->dest.addr,
			 smg_strerror(r));
		add(&x->pc,
		    smg_exit_from_err(r) == SMG_EXIT_AUTH     ? "auth"
		    : r == SMG_ERR_ATTEST || r == SMG_ERR_TPM ? "attestation"
							      : "connect",
		    r, d);
		return r;
	}
	add(&x->pc, "auth", SMG_OK, "");
	if (x->tpm.tpm_mode)
		add(&x->pc, "attestation", SMG_OK, "");
	r = smg_engine_send_precheck(x->m, s, &x->pc);
	bool answered = false;
	for (unsigned i = 0; i < x->pc.n; i++)
		answered |= x->pc.v[i].remote;
	if (answered)
		smg_session_close(s);
	else
		smg_session_free(s);
	return r;
}

int smg_cmd_precheck(int argc, char **argv)
{
	struct pre_run *x = calloc(1, sizeof(*x));
	int code, r;

	if (x == NULL)
		return SMG_EXIT_FAIL;
	if ((code = parse_args(argc, argv, &x->a)) >= 0) {
		free(x);
		return code;
	}
	if ((r = setup(x)) == SMG_ERR_INVAL)
		code = SMG_EXIT_USAGE;
	else
		code = report(x, r == SMG_OK ? precheck(x) : r);
	smg_engine_send_free(x->m);
	smg_audit_close(x->a.so.audit);
	smg_cli_tpm_free(&x->tpm);
	smg_cli_ident_free(&x->ci);
	free(x);
	return code;
}
