#include <getopt.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>
#include <sodium.h>
#include <stdio.h>

#include "base/base.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "proto/proto.h"

int smg_cmd_version(int argc, char **argv)
{
	const char *const *b;

	if (argc > 1)
		return smg_cli_usage_error(smg_cmd_find("version"),
					   "unexpected argument '%s'", argv[1]);
	printf("secmig %s (protocol %u)\n", SMG_VERSION, SMG_PROTO_VERSION);
	printf("backends:");
	for (b = smg_engine_backend_names(); *b != NULL; b++)
		printf(" %s", *b);
	printf("\n");
	printf("libsodium %s (built with %s)\n", sodium_version_string(),
	       SMG_BUILT_SODIUM);
	/* the frame AEAD's ChaCha20-Poly1305 and the page digests' SHA-256 */
	printf("libcrypto %s\n", OpenSSL_version(OPENSSL_VERSION));
	/* liburing 2.3 has no runtime version call; it is linked statically
	 * from the version pkg-config reported. */
	printf("liburing %s\n", SMG_BUILT_URING);
	printf("protobuf-c %s (built with %s)\n", protobuf_c_version(),
	       SMG_BUILT_PROTOBUF_C);
	printf("tpm2-tss built with %s\n", SMG_BUILT_TSS2);
	if (SMG_HAVE_XEN)
		printf("xen libraries built with %s\n", SMG_BUILT_XEN);
	else
		printf("xen backend not built (install libxen-dev and rebuild)\n");
	return SMG_EXIT_OK;
}
