/* attest/ internals shared between its files. */
#ifndef SMG_ATTEST_INTERNAL_H
#define SMG_ATTEST_INTERNAL_H

#include <openssl/evp.h>
#include <tss2/tss2_common.h>

#include "attest/attest.h"

/* Log a tpm2-tss failure with its decoded text; return SMG_ERR_TPM. */
int attest_tss_err(const char *what, TSS2_RC rc);

/* P-256 helpers over OpenSSL (ECDH and ECDSA verification only). */
EVP_PKEY *attest_p256_from_point(const uint8_t point[SMG_P256_POINT_LEN]);
int attest_p256_keygen(EVP_PKEY **key, uint8_t point[SMG_P256_POINT_LEN]);
int attest_p256_ecdh(EVP_PKEY *ours, const uint8_t peer[SMG_P256_POINT_LEN],
		     uint8_t z[SMG_P256_COORD_LEN]);

#endif
