/* bench_digest: what the integrity digests cost per core (docs/engine.md,
 * "Integrity"), the one Merkle construction of memory and disks against
 * its peers, same run:
 *   - leaves of 4 KiB (a page) and 64 KiB (a disk chunk): the Merkle leaf
 *     (SHA-256, OpenSSL, SHA extensions), libsodium's BLAKE2b-256 (the disk
 *     leaf before protocol 3), OpenSSL's SHA-512/256 and memcpy;
 *   - a whole disk's digest (smg_stg_image_digest: read, hash, fold) of a
 *     data-filled image in a temporary directory (--dir, default /tmp).
 * Rates are bytes per second of the thread's own CPU time, so other
 * tenants move them less than wall-clock rates; still, figures come from a
 * quiet machine (bench/README.md). The last line is one JSON object.
 *
 *   bench_digest [--size SIZE] [--dir DIR]   (default 256M per figure) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "base/base.h"
#include "storage/storage.h"

enum algo { A_MERKLE = 0, A_BLAKE2B, A_SHA512_256, A_MEMCPY, A_N };
static const char *const names[A_N] = {"merkle_sha256", "blake2b256_sodium",
				       "sha512_256_openssl", "memcpy"};

static double cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sha512_256(EVP_MD_CTX *c, const EVP_MD *md, const uint8_t *p, size_t n,
		       uint8_t out[32])
{
	uint8_t tag = 0;
	unsigned int len = 0;

	if (EVP_DigestInit_ex2(c, md, NULL) != 1 || EVP_DigestUpdate(c, &tag, 1) != 1 ||
	    EVP_DigestUpdate(c, p, n) != 1 || EVP_DigestFinal_ex(c, out, &len) != 1)
		abort();
}

/* GB/s of one algorithm over `total` bytes in `leaf`-byte pieces. */
static double leaf_rate(enum algo a, const uint8_t *buf, size_t bufsz, uint32_t leaf,
			uint64_t total)
{
	static uint8_t sink[64 << 10];
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-512/256", NULL);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t out[32];
	double t0 = cpu_now(), t;
	uint64_t done = 0, off = 0;

	if (md == NULL || c == NULL)
		abort();
	for (; done < total; done += leaf, off = (off + leaf) % bufsz) {
		const uint8_t *p = buf + off;

		if (a == A_MERKLE) {
			smg_merkle_hash_leaf(p, leaf, out);
		} else if (a == A_BLAKE2B) {
			crypto_generichash_state st;
			static const uint8_t tag = 0;

			crypto_generichash_init(&st, NULL, 0, 32);
			crypto_generichash_update(&st, &tag, 1);
			crypto_generichash_update(&st, p, leaf);
			crypto_generichash_final(&st, out, 32);
		} else if (a == A_SHA512_256) {
			sha512_256(c, md, p, leaf, out);
		} else {
			memcpy(sink, p, leaf);
			out[0] = sink[leaf - 1];
		}
		__asm__ volatile("" : : "r"(out) : "memory");
	}
	t = cpu_now() - t0;
	EVP_MD_CTX_free(c);
	EVP_MD_free(md);
	return t > 0 ? (double)total / t / 1e9 : 0;
}

/* CPU seconds per GB of smg_stg_image_digest over a data-filled image. */
static double image_cost(const char *dir, uint64_t size, const uint8_t *buf, size_t bufsz,
			 uint8_t root[SMG_STG_DIGEST_LEN])
{
	char path[512];
	struct smg_image *img = NULL;
	double t0, t = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/bench-digest-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		return -1;
	for (uint64_t o = 0; o < size; o += bufsz)
		if (fwrite(buf, 1, size - o < bufsz ? size - o : bufsz, f) == 0)
			break;
	fclose(f);
	if (smg_image_open(path, SMG_IMAGE_RDONLY, &img) == 0) {
		/* once to warm the page cache: the figure is the hashing's */
		(void)smg_stg_image_digest(img, SMG_STG_CHUNK_DEFAULT, root);
		t0 = cpu_now();
		if (smg_stg_image_digest(img, SMG_STG_CHUNK_DEFAULT, root) == 0)
			t = (cpu_now() - t0) / ((double)size / 1e9);
		smg_image_close(img);
	}
	unlink(path);
	return t;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"size", required_argument, NULL, 's'},
					     {"dir", required_argument, NULL, 'd'},
					     {0}};
	const uint32_t leaves[2] = {4096, 64 << 10};
	const size_t bufsz = 16u << 20; /* larger than the caches: data from memory */
	double rate[A_N][2], load0[1] = {0}, load1[1] = {0}, img_s;
	const char *dir = "/tmp";
	uint64_t size = 256u << 20;
	uint8_t *buf, root[SMG_STG_DIGEST_LEN];
	char hex[2 * SMG_STG_DIGEST_LEN + 1];
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 's' && smg_parse_size(optarg, &size) == 0 && size >= (1u << 20))
			continue;
		if (o == 'd') {
			dir = optarg;
			continue;
		}
		fprintf(stderr,
			"usage: bench_digest [--size SIZE (>= 1M)] [--dir DIR]\n");
		return 2;
	}
	if (sodium_init() < 0 || (buf = malloc(bufsz)) == NULL)
		return 1;
	randombytes_buf(buf, bufsz);
	getloadavg(load0, 1);
	for (int a = 0; a < A_N; a++)
		for (int l = 0; l < 2; l++) {
			rate[a][l] = leaf_rate(a, buf, bufsz, leaves[l], size);
			printf("%-20s leaf %6u B: %6.2f GB/s per core\n", names[a],
			       leaves[l], rate[a][l]);
		}
	img_s = image_cost(dir, size, buf, bufsz, root);
	getloadavg(load1, 1);
	sodium_bin2hex(hex, sizeof(hex), root, sizeof(root));
	printf("image digest (%llu MiB, 64 KiB chunks): %.3f CPU s/GB, root %s\n",
	       (unsigned long long)(size >> 20), img_s, hex);
	printf("{\"bench\":\"digest\",\"bytes\":%llu", (unsigned long long)size);
	for (int a = 0; a < A_N; a++)
		printf(",\"%s_4k_GBps\":%.3f,\"%s_64k_GBps\":%.3f", names[a], rate[a][0],
		       names[a], rate[a][1]);
	printf(",\"merkle_vs_blake2b_64k\":%.2f,\"image_digest_cpu_s_per_GB\":%.3f,"
	       "\"loadavg_1m_start\":%.2f,\"loadavg_1m_end\":%.2f,\"nproc\":%ld}\n",
	       rate[A_BLAKE2B][1] > 0 ? rate[A_MERKLE][1] / rate[A_BLAKE2B][1] : 0, img_s,
	       load0[0], load1[0], sysconf(_SC_NPROCESSORS_ONLN));
	free(buf);
	return img_s < 0;
}
