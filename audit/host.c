/* host: the audit context of one host: where its log lives, the key that
 * signs it, the TPM that countersigns receipts in TPM mode, the enrolled
 * operators and the policy whose hash every record carries. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attest/attest.h"
#include "audit/internal.h"

int smg_audit_open(const struct smg_audit_opts *o, struct smg_audit **out)
{
	struct smg_audit *a;
	char err[512];
	int r;

	*out = NULL;
	if (o->dir == NULL || o->identity == NULL || o->host == NULL ||
	    strlen(o->dir) >= sizeof(a->dir) - 32)
		return SMG_ERR_INVAL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return SMG_ERR_NOMEM;
	snprintf(a->dir, sizeof(a->dir), "%s", o->dir);
	snprintf(a->host, sizeof(a->host), "%s", o->host);
	a->identity = o->identity;
	a->attest = o->attest;
	a->policy = o->policy;
	a->require_ticket =
	    o->require_ticket || (o->policy != NULL && o->policy->require_ticket);
	pthread_mutex_init(&a->lock, NULL);
	if (mkdir(a->dir, 0700) != 0 && errno != EEXIST) {
		smg_err("audit: cannot create %s: %s", a->dir, strerror(errno));
		r = smg_err_sys(errno);
		goto fail;
	}
	if (o->policy_path != NULL) {
		char *buf;
		size_t len;
		if ((r = audit_read_file(o->policy_path, SMG_POLICY_FILE_MAX, &buf,
					 &len)) != SMG_OK)
			goto fail;
		audit_hash(buf, len, a->policy_hash);
		a->has_policy_hash = true;
		free(buf);
	}
	if (o->operators_path != NULL) {
		r = smg_operators_load(o->operators_path, &a->ops, err, sizeof(err));
		if (r == SMG_ERR_NOT_FOUND) {
			smg_debug("audit: no operators file at %s", o->operators_path);
		} else if (r != SMG_OK) {
			fprintf(stderr, "secmig: %s\n", err);
			goto fail;
		}
	}
	*out = a;
	return SMG_OK;
fail:
	smg_audit_close(a);
	return r;
}

void smg_audit_close(struct smg_audit *a)
{
	if (a == NULL)
		return;
	smg_operators_free(a->ops);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
