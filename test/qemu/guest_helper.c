/* smgguest: the test guest's helper, built static by qemubed.sh and run
 * inside the busybox guest (no libraries there). Subcommands:
 *   extend PCR HEX64      TPM2_PCR_Extend (sha256 bank) through /dev/tpmrm0
 *   read PCR              print the PCR's sha256 value (64 hex)
 *   seal HANDLE HEX       CreatePrimary (ECC P-256 storage key), Create a sealed
 *                         data object holding HEX's bytes, Load, EvictControl
 *                         to the persistent HANDLE (e.g. 0x81000010)
 *   unseal HANDLE         TPM2_Unseal, print the data as hex
 *   unhex HEX             write HEX's bytes to stdout (for sha256sum chains)
 *   ticker IP PORT MS     send a UDP datagram "SEQ" every MS ms, forever
 *   dirty MIB RATE_MIBS   rewrite pages of a MIB buffer at RATE MiB/s, forever
 * TPM commands are written by hand from the TPM 2.0 spec, part 3: this is
 * test code for a guest that has no tpm2-tss. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TPM_DEV	       "/dev/tpmrm0"
#define ST_NO_SESSIONS 0x8001
#define ST_SESSIONS    0x8002
#define RS_PW	       0x40000009u
#define RH_OWNER       0x40000001u
#define ALG_SHA256     0x000b
#define BUF_MAX	       4096

struct buf {
	uint8_t b[BUF_MAX];
	size_t n;
};

static void u8(struct buf *b, uint8_t v)
{
	if (b->n < BUF_MAX)
		b->b[b->n++] = v;
}
static void u16(struct buf *b, uint16_t v)
{
	u8(b, (uint8_t)(v >> 8));
	u8(b, (uint8_t)v);
}
static void u32(struct buf *b, uint32_t v)
{
	u16(b, (uint16_t)(v >> 16));
	u16(b, (uint16_t)v);
}
static void bytes(struct buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		u8(b, p[i]);
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Header with a placeholder size; handles; a password session (empty). */
static void start(struct buf *b, int sessions, uint32_t cc)
{
	b->n = 0;
	u16(b, sessions ? ST_SESSIONS : ST_NO_SESSIONS);
	u32(b, 0);
	u32(b, cc);
}
static void pw_session(struct buf *b)
{
	u32(b, 9); /* authorizationSize */
	u32(b, RS_PW);
	u16(b, 0); /* nonce */
	u8(b, 0);  /* attributes */
	u16(b, 0); /* hmac: the empty password */
}

/* SMGGUEST_TPM=PORT: swtpm's TCP server on 127.0.0.1 (testing the helper
 * on a host without a TPM device), else the guest's /dev/tpmrm0. */
static int tpm_open(void)
{
	const char *port = getenv("SMGGUEST_TPM");
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int s;

	if (port == NULL)
		return open(TPM_DEV, O_RDWR);
	sa.sin_port = htons((uint16_t)atoi(port));
	sa.sin_addr.s_addr = htonl(0x7f000001);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) >= 0 &&
	    connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* One descriptor for the whole run: the kernel's resource manager flushes
 * our transient objects (the primary key) when it closes. */
static int tpm_fd = -1;

static int transact(struct buf *cmd, struct buf *rsp)
{
	int fd = tpm_fd >= 0 ? tpm_fd : (tpm_fd = tpm_open());
	ssize_t n;

	cmd->b[2] = (uint8_t)(cmd->n >> 24);
	cmd->b[3] = (uint8_t)(cmd->n >> 16);
	cmd->b[4] = (uint8_t)(cmd->n >> 8);
	cmd->b[5] = (uint8_t)cmd->n;
	if (fd < 0 || write(fd, cmd->b, cmd->n) != (ssize_t)cmd->n) {
		perror(TPM_DEV);
		return -1;
	}
	n = read(fd, rsp->b, BUF_MAX);
	if (getenv("SMGGUEST_TPM") != NULL) { /* swtpm: a connection per command */
		close(fd);
		tpm_fd = -1;
	}
	if (n < 10 || get32(rsp->b + 2) != (uint32_t)n) {
		fprintf(stderr, "smgguest: short TPM response\n");
		return -1;
	}
	rsp->n = (size_t)n;
	if (get32(rsp->b + 6) != 0) {
		fprintf(stderr, "smgguest: TPM error 0x%x\n", get32(rsp->b + 6));
		return -1;
	}
	return 0;
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	size_t l = strlen(s);

	if (l % 2 || l / 2 > cap)
		return -1;
	for (size_t i = 0; i < l / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*n = l / 2;
	return 0;
}

static void print_hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int pcr_extend(unsigned pcr, const char *hex)
{
	struct buf c, r;
	uint8_t d[32];
	size_t n;

	if (unhex(hex, d, sizeof(d), &n) != 0 || n != 32)
		return 2;
	start(&c, 1, 0x182);
	u32(&c, pcr);
	pw_session(&c);
	u32(&c, 1);
	u16(&c, ALG_SHA256);
	bytes(&c, d, 32);
	return transact(&c, &r) == 0 ? 0 : 1;
}

static int pcr_read(unsigned pcr)
{
	struct buf c, r;
	size_t off;

	start(&c, 0, 0x17e);
	u32(&c, 1);
	u16(&c, ALG_SHA256);
	u8(&c, 3);
	u8(&c, (uint8_t)(pcr < 8 ? 1u << pcr : 0));
	u8(&c, (uint8_t)(pcr >= 8 && pcr < 16 ? 1u << (pcr - 8) : 0));
	u8(&c, (uint8_t)(pcr >= 16 ? 1u << (pcr - 16) : 0));
	if (transact(&c, &r) != 0)
		return 1;
	/* updateCounter, selection (count, hash, size, bitmap), digests */
	off = 10 + 4 + 4 + 2 + 1 + 3;
	if (r.n < off + 4 + 2 + 32 || get32(r.b + off) != 1 || get16(r.b + off + 4) != 32)
		return 1;
	print_hex(r.b + off + 6, 32);
	return 0;
}

static uint32_t create_primary(void)
{
	struct buf c, r;

	start(&c, 1, 0x131);
	u32(&c, RH_OWNER);
	pw_session(&c);
	u16(&c, 4); /* inSensitive: empty auth, no data */
	u16(&c, 0);
	u16(&c, 0);
	struct buf pub = {.n = 0};
	u16(&pub, 0x0023);     /* ECC */
	u16(&pub, ALG_SHA256); /* nameAlg */
	u32(&pub, 0x00030472); /* fixedTPM|fixedParent|sensitiveDataOrigin|
				  userWithAuth|noDA|restricted|decrypt */
	u16(&pub, 0);	       /* authPolicy */
	u16(&pub, 0x0006);     /* AES */
	u16(&pub, 128);
	u16(&pub, 0x0043); /* CFB */
	u16(&pub, 0x0010); /* scheme NULL */
	u16(&pub, 0x0003); /* NIST P-256 */
	u16(&pub, 0x0010); /* kdf NULL */
	u16(&pub, 0);	   /* unique x */
	u16(&pub, 0);	   /* unique y */
	u16(&c, (uint16_t)pub.n);
	bytes(&c, pub.b, pub.n);
	u16(&c, 0); /* outsideInfo */
	u32(&c, 0); /* creationPCR */
	if (transact(&c, &r) != 0 || r.n < 14)
		return 0;
	return get32(r.b + 10);
}

static int seal(uint32_t handle, const char *hex)
{
	struct buf c, r;
	uint8_t data[128];
	size_t n, off;
	uint32_t parent, obj;

	if (unhex(hex, data, sizeof(data), &n) != 0 || (parent = create_primary()) == 0)
		return 1;
	start(&c, 1, 0x153);
	u32(&c, parent);
	pw_session(&c);
	u16(&c, (uint16_t)(4 + n));
	u16(&c, 0);
	u16(&c, (uint16_t)n);
	bytes(&c, data, n);
	u16(&c, 14);	     /* inPublic size */
	u16(&c, 0x0008);     /* KEYEDHASH */
	u16(&c, ALG_SHA256); /* nameAlg */
	u32(&c, 0x00000452); /* fixedTPM|fixedParent|userWithAuth|noDA */
	u16(&c, 0);	     /* authPolicy */
	u16(&c, 0x0010);     /* scheme NULL */
	u16(&c, 0);	     /* unique */
	u16(&c, 0);
	u32(&c, 0);
	if (transact(&c, &r) != 0)
		return 1;
	/* parameterSize, outPrivate, outPublic */
	off = 14;
	uint16_t priv_n = get16(r.b + off), pub_n;
	if (off + 2 + priv_n + 2 > r.n)
		return 1;
	pub_n = get16(r.b + off + 2 + priv_n);
	if (off + 4 + priv_n + pub_n > r.n)
		return 1;
	struct buf l;
	start(&l, 1, 0x157);
	u32(&l, parent);
	pw_session(&l);
	bytes(&l, r.b + off, 2u + priv_n + 2u + pub_n);
	if (transact(&l, &r) != 0 || r.n < 14)
		return 1;
	obj = get32(r.b + 10);
	start(&c, 1, 0x120);
	u32(&c, RH_OWNER);
	u32(&c, obj);
	pw_session(&c);
	u32(&c, handle);
	return transact(&c, &r) == 0 ? 0 : 1;
}

static int unseal(uint32_t handle)
{
	struct buf c, r;
	uint16_t n;

	start(&c, 1, 0x15e);
	u32(&c, handle);
	pw_session(&c);
	if (transact(&c, &r) != 0 || r.n < 16)
		return 1;
	n = get16(r.b + 14);
	if (16u + n > r.n)
		return 1;
	print_hex(r.b + 16, n);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int ticker(const char *ip, int port, long ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	char msg[32];

	if (s < 0 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return 1;
	for (unsigned long seq = 1;; seq++) {
		int n = snprintf(msg, sizeof(msg), "%lu", seq);
		sendto(s, msg, (size_t)n, 0, (struct sockaddr *)&sa, sizeof(sa));
		sleep_ms(ms);
	}
}

/* A fixed dirty rate: one word written per 4 KiB page, pages in a cycle. */
static int dirty(long mib, long rate)
{
	size_t pages = (size_t)mib << 8, per_tick, p = 0;
	volatile uint8_t *m = malloc(pages * 4096);

	if (m == NULL || pages == 0)
		return 1;
	per_tick = ((size_t)rate << 8) / 100; /* 10 ms ticks */
	for (uint64_t gen = 1;; gen++) {
		for (size_t i = 0; i < per_tick; i++, p = (p + 1) % pages)
			m[p * 4096 + (gen % 4096)] = (uint8_t)gen;
		sleep_ms(10);
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "extend") == 0)
		return pcr_extend((unsigned)atoi(argv[2]), argv[3]);
	if (argc == 3 && strcmp(argv[1], "read") == 0)
		return pcr_read((unsigned)atoi(argv[2]));
	if (argc == 4 && strcmp(argv[1], "seal") == 0)
		return seal((uint32_t)strtoul(argv[2], NULL, 0), argv[3]);
	if (argc == 3 && strcmp(argv[1], "unseal") == 0)
		return unseal((uint32_t)strtoul(argv[2], NULL, 0));
	if (argc == 3 && strcmp(argv[1], "unhex") == 0) {
		uint8_t b[BUF_MAX];
		size_t n;
		if (unhex(argv[2], b, sizeof(b), &n) != 0)
			return 2;
		return fwrite(b, 1, n, stdout) == n ? 0 : 1;
	}
	if (argc == 5 && strcmp(argv[1], "ticker") == 0)
		return ticker(argv[2], atoi(argv[3]), atol(argv[4]));
	if (argc == 4 && strcmp(argv[1], "dirty") == 0)
		return dirty(atol(argv[2]), atol(argv[3]));
	fprintf(stderr,
		"usage: smgguest extend|read|seal|unseal|unhex|ticker|dirty ...\n");
	return 2;
}
