/* p256: the software side of the TPM-bound handshake over OpenSSL — an
 * ephemeral P-256 key, ECDH against a peer's enrolled (TPM-resident) public
 * key, and point import with on-curve validation. No hand-written crypto. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "attest/internal.h"
#include "base/base.h"

EVP_PKEY *attest_p256_from_point(const uint8_t point[SMG_P256_POINT_LEN])
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;
	char group[] = "prime256v1";

	/* Only the uncompressed form; OpenSSL rejects points off the curve. */
	if (point[0] != 0x04)
		return NULL;
	params[0] =
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
						      (void *)point, SMG_P256_POINT_LEN);
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	if (key != NULL) {
		/* fromdata does not always run the full public-key check */
		EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
		if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
			EVP_PKEY_free(key);
			key = NULL;
		}
		EVP_PKEY_CTX_free(chk);
	}
	return key;
}

int attest_p256_keygen(EVP_PKEY **key, uint8_t point[SMG_P256_POINT_LEN])
{
	size_t n = 0;

	*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (*key == NULL)
		return SMG_ERR_CRYPTO;
	if (EVP_PKEY_get_octet_string_param(*key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					    point, SMG_P256_POINT_LEN, &n) != 1 ||
	    n != SMG_P256_POINT_LEN || point[0] != 0x04) {
		EVP_PKEY_free(*key);
		*key = NULL;
		return SMG_ERR_CRYPTO;
	}
	return SMG_OK;
}

int attest_p256_ecdh(EVP_PKEY *ours, const uint8_t peer[SMG_P256_POINT_LEN],
		     uint8_t z[SMG_P256_COORD_LEN])
{
	EVP_PKEY *pk = attest_p256_from_point(peer);
	EVP_PKEY_CTX *ctx = NULL;
	size_t n = SMG_P256_COORD_LEN;
	int r = SMG_ERR_CRYPTO;

	if (pk == NULL)
		return SMG_ERR_ATTEST;
	if ((ctx = EVP_PKEY_CTX_new(ours, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer(ctx, pk) <= 0 ||
	    EVP_PKEY_derive(ctx, z, &n) <= 0 || n != SMG_P256_COORD_LEN)
		goto out;
	r = SMG_OK;
out:
	if (r != SMG_OK)
		OPENSSL_cleanse(z, SMG_P256_COORD_LEN);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}
