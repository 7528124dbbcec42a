/* `secmig config check [FILE]` on the per-host config file: its syntax, each
 * entry through the command's own option parser, then the files it names
 * as the receiver would load them (key, peers, policy and its TPM, host
 * definitions) and their cross-references. Every problem is printed as
 * FILE:LINE: what; any problem is exit 11. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/attest.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/conf.h"
#include "cli/migrate.h"
#include "transport/transport.h"

struct check {
	const char *path;
	unsigned problems;
};

static void problem(struct check *k, unsigned line, const char *what, const char *detail)
{
	fprintf(stderr, "%s:%u: %s%s%s\n", k->path, line, what, detail[0] ? ": " : "",
		detail);
	k->problems++;
}

/* Run `CMD --key[=value] --help` with stdout silenced and stderr captured:
 * the command's parser accepts the entry, or its first error line is why. */
static int parse_entry(const struct smg_cmd *cmd, const struct smg_conf_entry *e,
		       char *why, size_t why_len)
{
	char opt[SMG_CONF_KEY_MAX + SMG_CONF_VALUE_MAX + 4], help[] = "--help";
	char *av[] = {(char *)cmd->name, opt, help, NULL};
	int out, err, null, rc;
	FILE *tmp;

	snprintf(opt, sizeof(opt), "--%s%s%s", e->key, e->has_value ? "=" : "", e->value);
	fflush(stdout);
	fflush(stderr);
	if ((tmp = tmpfile()) == NULL || (null = open("/dev/null", O_WRONLY)) < 0) {
		if (tmp != NULL)
			fclose(tmp);
		snprintf(why, why_len, "cannot check (no temporary file)");
		return SMG_EXIT_FAIL;
	}
	out = dup(1);
	err = dup(2);
	dup2(null, 1);
	dup2(fileno(tmp), 2);
	smg_cli_set_args(3, av);
	rc = cmd->run(3, av);
	smg_cli_set_args(0, NULL);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	close(null);
	why[0] = '\0';
	rewind(tmp);
	if (rc != SMG_EXIT_OK && fgets(why, (int)why_len, tmp) != NULL) {
		why[strcspn(why, "\n")] = '\0';
		if (strncmp(why, "secmig: ", 8) == 0)
			memmove(why, why + 8, strlen(why + 8) + 1);
	}
	fclose(tmp);
	return rc;
}

static void check_entries(struct check *k, const struct smg_conf *c)
{
	char why[512], cmds[128];

	for (unsigned i = 0; i < c->n; i++) {
		const struct smg_conf_entry *e = &c->v[i];
		const char *list = e->section[0] ? e->section : smg_conf_common(e->key);
		const struct smg_cmd *cmd;

		snprintf(cmds, sizeof(cmds), "%s", list);
		for (char *save, *w = strtok_r(cmds, " ", &save); w != NULL;
		     w = strtok_r(NULL, " ", &save)) {
			if ((cmd = smg_cmd_find(w)) == NULL) {
				problem(k, e->line, "no such command", w);
				break;
			}
			if (parse_entry(cmd, e, why, sizeof(why)) != SMG_EXIT_OK) {
				problem(k, e->line, why, "");
				break;
			}
		}
	}
}

/* The value the receiver would get for key (its last entry), and its line. */
static const char *recv_value(const struct smg_conf *c, const char *key, unsigned *line)
{
	const char *v = NULL;

	*line = 0;
	for (unsigned i = 0; i < c->n; i++) {
		const struct smg_conf_entry *e = &c->v[i];
		if (strcmp(e->key, key) == 0 && e->has_value &&
		    (strcmp(e->section, "recv") == 0 || e->section[0] == '\0')) {
			v = e->value;
			*line = e->line;
		}
	}
	return v;
}

static void check_tpm(struct check *k, const struct smg_policy *pol, const char *tcti,
		      unsigned line)
{
	uint8_t ak[SMG_P256_POINT_LEN];
	struct smg_tpm *t = NULL;

	if (pol->software_mode)
		return;
	if (tcti == NULL)
		tcti = pol->tcti;
	if (tcti[0] == '\0') {
		problem(k, line, "policy: TPM mode but no tcti", "");
		return;
	}
	if (smg_tpm_open(tcti, &t) != SMG_OK || smg_tpm_ak_public(t, ak) != SMG_OK)
		problem(k, line,
			"the TPM does not answer or holds no keys (secmig "
			"tpm-enroll)",
			tcti);
	smg_tpm_close(t);
}

/* Host definitions: every 'from' names an enrolled peer. */
static void check_defs(struct check *k, const char *path, unsigned line,
		       const struct smg_peers *peers)
{
	struct smg_hostdef *d = NULL;
	char err[512];

	if (smg_hostdef_load(path, &d, err, sizeof(err)) != SMG_OK) {
		problem(k, line, "host definitions", err);
		return;
	}
	for (unsigned i = 0; peers != NULL && i < d->n_vms; i++)
		for (unsigned j = 0; j < d->vms[i].n_from; j++)
			if (smg_peers_find(peers, d->vms[i].from[j]) == NULL) {
				snprintf(err, sizeof(err),
					 "%s: vm %s: 'from %s' is not in the peers file",
					 path, d->vms[i].pattern, d->vms[i].from[j]);
				problem(k, line, "host definitions", err);
			}
	smg_hostdef_free(d);
}

static void check_files(struct check *k, const struct smg_conf *c)
{
	unsigned lk, lp, lpol, ld, ls, lt;
	const char *dir = smg_cli_state_dir(recv_value(c, "state-dir", &ls));
	const char *key = recv_value(c, "key", &lk), *peers = recv_value(c, "peers", &lp);
	const char *pol = recv_value(c, "policy", &lpol),
		   *defs = recv_value(c, "defs", &ld);
	const char *tcti = recv_value(c, "tcti", &lt);
	struct smg_identity *id = NULL;
	struct smg_peers *ps = NULL;
	struct smg_policy *p = NULL;
	char path[600], err[512];

	snprintf(path, sizeof(path), "%s/host.key", dir);
	if (smg_identity_load(key != NULL ? key : path, &id) != SMG_OK)
		problem(k, lk, "identity key", key != NULL ? key : path);
	smg_identity_free(id);
	snprintf(path, sizeof(path), "%s/peers", dir);
	if (smg_peers_load(peers != NULL ? peers : path, &ps) != SMG_OK)
		problem(k, lp, "peers file", peers != NULL ? peers : path);
	if (pol != NULL) {
		if (smg_policy_load(pol, &p, err, sizeof(err)) != SMG_OK) {
			problem(k, lpol, "policy", err);
		} else {
			check_tpm(k, p, tcti, lt != 0 ? lt : lpol);
			if (defs == NULL && p->defs[0] != '\0') {
				defs = p->defs;
				ld = lpol;
			}
		}
	}
	if (defs != NULL)
		check_defs(k, defs, ld, ps);
	smg_policy_free(p);
	smg_peers_free(ps);
}

int smg_cli_conf_check(const char *path)
{
	struct check k = {.path = path};
	struct smg_conf *c;

	if (path == NULL) {
		fprintf(stderr, "secmig: no config file: give one, set SECMIG_CONFIG or "
				"create " SMG_CONF_DEFAULT "\n");
		return SMG_EXIT_CONFIG;
	}
	if (smg_conf_load(path, &c) != SMG_OK)
		return SMG_EXIT_CONFIG;
	check_entries(&k, c);
	check_files(&k, c);
	if (k.problems == 0)
		printf("%s: ok: %u entr%s\n", path, c->n, c->n == 1 ? "y" : "ies");
	smg_conf_free(c);
	return k.problems == 0 ? SMG_EXIT_OK : SMG_EXIT_CONFIG;
}
