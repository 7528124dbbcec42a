#include <errno.h>
#include <string.h>

#include "base/base.h"

static _Thread_local int saved_errno;

static const char *const messages[] = {
    [0] = "success",
    [-SMG_ERR_INTERNAL] = "internal error",
    [-SMG_ERR_NOMEM] = "out of memory",
    [-SMG_ERR_INVAL] = "invalid argument",
    [-SMG_ERR_SYS] = "system call failed",
    [-SMG_ERR_TRUNCATED] = "input truncated",
    [-SMG_ERR_TOO_LONG] = "length exceeds limit",
    [-SMG_ERR_TRAILING] = "trailing bytes after message",
    [-SMG_ERR_NOSPACE] = "buffer too small",
    [-SMG_ERR_EOF] = "connection closed by peer",
    [-SMG_ERR_TIMEOUT] = "timed out",
    [-SMG_ERR_PROTO] = "protocol error",
    [-SMG_ERR_STATE] = "message not valid in this state",
    [-SMG_ERR_UNKNOWN_TYPE] = "unknown message type",
    [-SMG_ERR_DECRYPT] = "frame authentication failed",
    [-SMG_ERR_CUT] = "stream cut before its final frame",
    [-SMG_ERR_AFTER_FINAL] = "data after final frame",
    [-SMG_ERR_AUTH] = "peer authentication failed",
    [-SMG_ERR_UNKNOWN_PEER] = "peer is not enrolled",
    [-SMG_ERR_BAD_SIG] = "signature verification failed",
    [-SMG_ERR_VERSION] = "no common protocol version",
    [-SMG_ERR_DOWNGRADE] = "downgrade detected",
    [-SMG_ERR_TPM] = "TPM operation failed",
    [-SMG_ERR_ATTEST] = "attestation evidence rejected",
    [-SMG_ERR_POLICY] = "denied by policy",
    [-SMG_ERR_INTEGRITY] = "integrity check failed",
    [-SMG_ERR_BACKEND] = "hypervisor backend failed",
    [-SMG_ERR_NOT_CONVERGED] = "migration did not converge",
    [-SMG_ERR_IN_DOUBT] = "outcome in doubt",
    [-SMG_ERR_ABORTED] = "aborted by peer",
    [-SMG_ERR_EXISTS] = "already exists",
    [-SMG_ERR_NOT_FOUND] = "not found",
    [-SMG_ERR_UNSUPPORTED] = "not supported",
    [-SMG_ERR_BUSY] = "too many concurrent sessions",
    [-SMG_ERR_CONFIG] = "configuration error",
    [-SMG_ERR_CRYPTO] = "cryptographic operation failed",
    [-SMG_ERR_PERM] = "unsafe file permissions",
    [-SMG_ERR_STORAGE] = "storage error",
    [-SMG_ERR_NBD] = "NBD protocol error",
    [-SMG_ERR_REPLAY] = "replay detected",
    [-SMG_ERR_FAULT] = "injected fault",
    [-SMG_ERR_INTERRUPTED] = "wait interrupted",
    [-SMG_ERR_CANCELLED] = "cancelled by the operator",
    [-SMG_ERR_CAPACITY] = "no room (memory or too many migrations)",
    [-SMG_ERR_DOMAIN_EXISTS] = "a domain of that name already exists",
    [-SMG_ERR_NO_BACKEND] = "hypervisor backend not available",
    [-SMG_ERR_DISK_FULL] = "no space left on the disk",
};

_Static_assert(SMG_ARRAY_LEN(messages) == (size_t)-SMG_ERR_MAX_,
	       "every smg_err has a message");

const char *smg_strerror(int err)
{
	if (err == SMG_ERR_SYS && saved_errno != 0)
		return strerror(saved_errno);
	if (err > 0 || err <= SMG_ERR_MAX_)
		return "unknown error";
	return messages[-err];
}

int smg_err_sys(int errnum)
{
	saved_errno = errnum < 0 ? -errnum : errnum;
	return SMG_ERR_SYS;
}

int smg_err_errno(void)
{
	return saved_errno;
}
