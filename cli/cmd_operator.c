/* `secmig operator admin|enrol|revoke|list`: the operators file of a host
 * (docs/audit.md). An admin line is the trust anchor root writes; enrol and
 * revoke produce lines signed by an admin's key, which every host checks. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/opts.h"
#include "transport/transport.h"

#define LINE_MAX_ SMG_OPERATORS_LINE_MAX

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("operator"), fmt, arg);
}

struct opargs {
	struct smg_cli_common co; /* name, key, to, state dir */
	const char *admin, *admin_key, *file, *vms, *from;
};

#define OA_OFF(f) offsetof(struct opargs, f)
static const struct smg_opt own[] = {
    {.name = "admin", .short_name = 'a', .kind = SMG_OPT_STR, .off = OA_OFF(admin)},
    {.name = "admin-key",
     .short_name = 'A',
     .kind = SMG_OPT_STR,
     .off = OA_OFF(admin_key)},
    {.name = "file", .short_name = 'f', .kind = SMG_OPT_STR, .off = OA_OFF(file)},
    {.name = "vms", .short_name = 'v', .kind = SMG_OPT_STR, .off = OA_OFF(vms)},
    {.name = "from", .short_name = 'F', .kind = SMG_OPT_STR, .off = OA_OFF(from)},
};

static const struct smg_opt_spec spec = {
    .cmd = "operator",
    .common = SMG_CO(NAME) | SMG_CO(KEY) | SMG_CO(TO) | SMG_CO(STATE_DIR),
    .own = own,
    .n_own = SMG_ARRAY_LEN(own),
};

/* --key: a .pub file from `secmig keygen`, or the base64 key itself. */
static int read_pub(const char *arg, char *out, size_t cap)
{
	FILE *f = fopen(arg, "r");

	if (f == NULL) {
		snprintf(out, cap, "%s", arg);
	} else {
		if (fgets(out, (int)cap, f) == NULL)
			out[0] = '\0';
		fclose(f);
		out[strcspn(out, "\r\n \t")] = '\0';
	}
	return strlen(out) == 44 ? SMG_OK : SMG_ERR_INVAL;
}

static const char *ops_path(const struct opargs *a, char *buf, size_t cap)
{
	if (a->file != NULL)
		return a->file;
	snprintf(buf, cap, "%s/operators", smg_cli_state_dir(a->co.dir));
	return buf;
}

/* Append line to the file only if the file with it still validates. */
static int emit(const struct opargs *a, const char *line, bool to_file)
{
	struct smg_operators *ops = NULL;
	char path[600], err[512], *text;
	const char *p;
	FILE *f;
	size_t n = 0;
	int fd, r;

	if (!to_file) {
		printf("%s\n", line);
		return SMG_EXIT_OK;
	}
	p = ops_path(a, path, sizeof(path));
	if ((text = malloc(SMG_OPERATORS_FILE_MAX + LINE_MAX_ + 2)) == NULL)
		return SMG_EXIT_FAIL;
	if ((f = fopen(p, "r")) != NULL) {
		n = fread(text, 1, SMG_OPERATORS_FILE_MAX, f);
		fclose(f);
	}
	if (n > 0 && text[n - 1] != '\n')
		text[n++] = '\n';
	n += (size_t)snprintf(text + n, LINE_MAX_ + 2, "%s\n", line);
	r = smg_operators_parse(text, n, p, &ops, err, sizeof(err));
	smg_operators_free(ops);
	free(text);
	if (r != SMG_OK) {
		fprintf(stderr, "secmig: not added: %s\n", err);
		return SMG_EXIT_CONFIG;
	}
	if ((fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
	    dprintf(fd, "%s\n", line) < 0 || fsync(fd) != 0) {
		fprintf(stderr, "secmig: cannot append to %s: %s\n", p, strerror(errno));
		if (fd >= 0)
			close(fd);
		return SMG_EXIT_CONFIG;
	}
	close(fd);
	printf("%s\n", line);
	return SMG_EXIT_OK;
}

static int signed_line(const struct opargs *a, const char *body, bool to_file)
{
	struct smg_identity *id = NULL;
	char line[LINE_MAX_ + 1];
	int r;

	if (a->admin == NULL || a->admin_key == NULL)
		return usage(
		    "needs --admin NAME --admin-key FILE (the admin who signs)%s", "");
	if ((r = smg_identity_load(a->admin_key, &id)) != SMG_OK) {
		fprintf(stderr, "secmig: admin key %s: %s\n", a->admin_key,
			smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	r = smg_operator_sign_line(id, a->admin, body, line, sizeof(line));
	smg_identity_free(id);
	if (r != SMG_OK)
		return usage("cannot sign this line (names: [A-Za-z0-9._-])%s", "");
	return emit(a, line, to_file);
}

static int list(const struct opargs *a)
{
	struct smg_operators *ops;
	char path[600], err[512];
	const char *p = ops_path(a, path, sizeof(path));

	if (smg_operators_load(p, &ops, err, sizeof(err)) != SMG_OK) {
		fprintf(stderr, "secmig: %s\n", err);
		return SMG_EXIT_CONFIG;
	}
	for (size_t i = 0; i < ops->n; i++) {
		const struct smg_operator *o = &ops->v[i];
		printf("%-8s %-16s line %-4u",
		       o->role == SMG_OP_ADMIN ? "admin" : "operator", o->name, o->line);
		if (o->role == SMG_OP_OPERATOR) {
			printf(" by %s vms", o->by);
			for (size_t k = 0; k < o->nvms; k++)
				printf("%c%s", k ? ',' : ' ', o->vms[k]);
			printf(" from");
			for (size_t k = 0; k < o->nfrom; k++)
				printf("%c%s", k ? ',' : ' ', o->from[k]);
			printf(" to");
			for (size_t k = 0; k < o->nto; k++)
				printf("%c%s", k ? ',' : ' ', o->to[k]);
		}
		if (o->revoked_line != 0)
			printf(" REVOKED (line %u)", o->revoked_line);
		printf("\n");
	}
	smg_operators_free(ops);
	return SMG_EXIT_OK;
}

int smg_cmd_operator(int argc, char **argv)
{
	struct opargs a;
	char key[128], body[LINE_MAX_ + 1];
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		printf("%s", smg_cmd_find("operator")->usage);
		return SMG_EXIT_OK;
	}
	if (argc < 2)
		return usage("operator needs admin, enrol, revoke or list%s", "");
	memset(&a, 0, sizeof(a));
	if ((r = smg_opts_parse(&spec, argc - 1, argv + 1, &a.co, &a)) >= 0)
		return r;
	if (!strcmp(sub, "list"))
		return list(&a);
	if (a.co.name == NULL)
		return usage("needs --name NAME%s", "");
	if (!strcmp(sub, "revoke")) {
		snprintf(body, sizeof(body), "revoke %s", a.co.name);
		return signed_line(&a, body, a.file != NULL || a.co.dir != NULL);
	}
	if (a.co.key == NULL || read_pub(a.co.key, key, sizeof(key)) != SMG_OK)
		return usage("--key: a .pub file from secmig keygen or its base64 key%s",
			     "");
	if (!strcmp(sub, "admin")) {
		snprintf(body, sizeof(body), "admin %s %s", a.co.name, key);
		return emit(&a, body, a.file != NULL || a.co.dir != NULL);
	}
	if (!strcmp(sub, "enrol")) {
		if (a.vms == NULL)
			return usage("enrol needs --vms GLOB[,GLOB] (which VMs it may "
				     "migrate)%s",
				     "");
		snprintf(body, sizeof(body), "operator %s %s vms=%s from=%s to=%s",
			 a.co.name, key, a.vms, a.from != NULL ? a.from : "*",
			 a.co.to != NULL ? a.co.to : "*");
		return signed_line(&a, body, a.file != NULL || a.co.dir != NULL);
	}
	return usage("unknown subcommand '%s'", sub);
}
