/* Why a migration ended, the same on both sides: the reason code an ABORT
 * or a refused PLAN_ACK carries (proto AbortReason) is derived from the
 * error of the host that failed and turned back into the same error by the
 * other host, so both report the same exit code (README "Exit codes"). */
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "engine/internal.h"
#include "secmig.pb-c.h"

struct reason_map {
	int reason;
	int err;
	const char *name;
};

/* First match wins in both directions: an error listed twice maps to its
 * first reason, a reason to its first error. */
static const struct reason_map map[] = {
    {SMG__ABORT_REASON__ABORT_OPERATOR, SMG_ERR_CANCELLED, "cancelled"},
    {SMG__ABORT_REASON__ABORT_POLICY, SMG_ERR_POLICY, "policy"},
    {SMG__ABORT_REASON__ABORT_NOT_CONVERGED, SMG_ERR_NOT_CONVERGED, "not_converged"},
    {SMG__ABORT_REASON__ABORT_INTEGRITY, SMG_ERR_INTEGRITY, "integrity"},
    {SMG__ABORT_REASON__ABORT_DISK_FULL, SMG_ERR_DISK_FULL, "disk_full"},
    {SMG__ABORT_REASON__ABORT_RESOURCES, SMG_ERR_CAPACITY, "capacity"},
    {SMG__ABORT_REASON__ABORT_RESOURCES, SMG_ERR_BUSY, "capacity"},
    {SMG__ABORT_REASON__ABORT_RESOURCES, SMG_ERR_NOMEM, "capacity"},
    {SMG__ABORT_REASON__ABORT_EXISTS, SMG_ERR_DOMAIN_EXISTS, "exists"},
    {SMG__ABORT_REASON__ABORT_NO_BACKEND, SMG_ERR_NO_BACKEND, "no_backend"},
    {SMG__ABORT_REASON__ABORT_BACKEND, SMG_ERR_BACKEND, "backend"},
    {SMG__ABORT_REASON__ABORT_STORAGE, SMG_ERR_STORAGE, "storage"},
    {SMG__ABORT_REASON__ABORT_TIMEOUT, SMG_ERR_TIMEOUT, "timeout"},
    {SMG__ABORT_REASON__ABORT_PROTOCOL, SMG_ERR_PROTO, "protocol"},
    {SMG__ABORT_REASON__ABORT_PROTOCOL, SMG_ERR_STATE, "protocol"},
    {SMG__ABORT_REASON__ABORT_ATTEST, SMG_ERR_ATTEST, "attest"},
    {SMG__ABORT_REASON__ABORT_NOT_SOURCE, SMG_ERR_AUTH, "not_source"},
};

int smg_reason_from_err(int err)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(map); i++)
		if (map[i].err == err)
			return map[i].reason;
	return SMG__ABORT_REASON__ABORT_UNSPECIFIED;
}

int smg_reason_to_err(int reason, int fallback)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(map); i++)
		if (map[i].reason == reason)
			return map[i].err;
	return fallback;
}

const char *smg_reason_name(int reason)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(map); i++)
		if (map[i].reason == reason)
			return map[i].name;
	return "unspecified";
}

int smg_err_classify(int err)
{
	int e = smg_err_errno();

	if (err == SMG_ERR_SYS && (e == ENOSPC || e == EDQUOT))
		return SMG_ERR_DISK_FULL;
	if (err == SMG_ERR_NOMEM || (err == SMG_ERR_SYS && e == ENOMEM))
		return SMG_ERR_CAPACITY;
	return err;
}

void smg_peer_text(const char *in, char *out, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return;
	for (; in != NULL && in[k] != '\0' && k + 1 < n; k++)
		out[k] = in[k] >= 0x20 && in[k] < 0x7f ? in[k] : '?';
	out[k] = '\0';
}

bool smg_domain_name_valid(const char *name)
{
	return smg_name_ok(name, SMG_DOMAIN_NAME_MAX);
}
