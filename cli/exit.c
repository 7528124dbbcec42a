#include "base/base.h"
#include "cli/cli.h"

int smg_exit_from_err(int err)
{
	switch (err) {
	case SMG_OK:
		return SMG_EXIT_OK;
	case SMG_ERR_AUTH:
	case SMG_ERR_UNKNOWN_PEER:
	case SMG_ERR_BAD_SIG:
	case SMG_ERR_DOWNGRADE:
	case SMG_ERR_VERSION:
		return SMG_EXIT_AUTH;
	case SMG_ERR_TPM:
	case SMG_ERR_ATTEST:
		return SMG_EXIT_ATTEST;
	case SMG_ERR_POLICY:
		return SMG_EXIT_POLICY;
	case SMG_ERR_EOF:
	case SMG_ERR_TIMEOUT:
	case SMG_ERR_SYS:
	case SMG_ERR_CUT:
	case SMG_ERR_ABORTED:
		return SMG_EXIT_NETWORK;
	case SMG_ERR_CANCELLED:
		return SMG_EXIT_CANCELLED;
	case SMG_ERR_BUSY:
	case SMG_ERR_CAPACITY:
	case SMG_ERR_DISK_FULL:
		return SMG_EXIT_CAPACITY;
	case SMG_ERR_DOMAIN_EXISTS:
		return SMG_EXIT_EXISTS;
	case SMG_ERR_INTEGRITY:
		return SMG_EXIT_INTEGRITY;
	case SMG_ERR_NOT_CONVERGED:
		return SMG_EXIT_NOT_CONVERGED;
	case SMG_ERR_IN_DOUBT:
		return SMG_EXIT_IN_DOUBT;
	case SMG_ERR_PROTO:
	case SMG_ERR_STATE:
	case SMG_ERR_UNKNOWN_TYPE:
	case SMG_ERR_DECRYPT:
	case SMG_ERR_AFTER_FINAL:
	case SMG_ERR_TRUNCATED:
	case SMG_ERR_TOO_LONG:
	case SMG_ERR_TRAILING:
	case SMG_ERR_REPLAY:
		return SMG_EXIT_PROTOCOL;
	case SMG_ERR_CONFIG:
	case SMG_ERR_PERM:
	case SMG_ERR_EXISTS:
		return SMG_EXIT_CONFIG;
	case SMG_ERR_BACKEND:
	case SMG_ERR_NOT_FOUND:
	case SMG_ERR_NO_BACKEND:
		return SMG_EXIT_BACKEND;
	default:
		return SMG_EXIT_FAIL;
	}
}

const char *smg_exit_name(int code)
{
	static const char *const names[] = {
	    "ok",      "fail",	    "usage",	     "auth",	 "attest",   "policy",
	    "network", "integrity", "not_converged", "in_doubt", "protocol", "config",
	    "backend", "cancelled", "capacity",	     "exists",
	};

	if (code < 0 || (size_t)code >= SMG_ARRAY_LEN(names))
		return "unknown";
	return names[code];
}
