/* fault: named fault-injection points of the evidence, switched on by the
 * same SMG_FI=name[,name] variable as the engine's (engine/fault.c). They
 * let the end-to-end tests send an unsigned, tampered or wrongly keyed
 * manifest or receipt through a real migration. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "audit/internal.h"

bool audit_fault_on(const char *name)
{
	const char *env = getenv("SMG_FI"), *p;
	size_t n = strlen(name);

	if (env == NULL)
		return false;
	for (p = env; (p = strstr(p, name)) != NULL; p += n)
		if ((p == env || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) {
			smg_warn("fault injection: %s", name);
			return true;
		}
	return false;
}

int audit_fault_p256_sign(const uint8_t *msg, size_t len, uint8_t sig[SMG_AUDIT_SIG_LEN])
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char der[80];
	const unsigned char *dp = der;
	size_t dlen = sizeof(der);
	int r = SMG_ERR_CRYPTO;

	if (key == NULL || (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &dlen, msg, len) != 1 ||
	    (es = d2i_ECDSA_SIG(NULL, &dp, (long)dlen)) == NULL)
		goto out;
	if (BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) != 32)
		goto out;
	r = SMG_OK;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return r;
}
