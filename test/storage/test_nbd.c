/* The NBD export with a real client (qemu-io from qemu-utils): plain I/O,
 * I/O during a migration in both modes (destination == the guest's view at
 * pause), a WAIO abort (every client write ends up in the original), and
 * malformed requests from a raw socket (error reply or disconnect; the
 * server keeps serving). */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "check.h"
#include "util.h"

#define SIZE  (16ull << 20)
#define CHUNK (256u << 10)

static char *dir;
static char sock[256];

/* qemu-io with the given -c commands against the export; 0 when it succeeds
 * and no pattern check failed. */
static int qio(const char *cmds)
{
	char cmd[4096], line[512];
	FILE *p;
	int bad = 0, st;

	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f raw 'nbd+unix:///secmig?socket=%s' %s 2>&1", sock, cmds);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL)
		if (strstr(line, "failed") || strstr(line, "rror")) {
			fprintf(stderr, "qemu-io: %s", line);
			bad = 1;
		}
	st = pclose(p);
	return bad || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
}

static bool have_qemu_io(void)
{
	return system("qemu-io --version >/dev/null 2>&1") == 0;
}

static struct smg_vdisk *open_disk(const char *name, struct smg_nbd_server **srv)
{
	static const uint64_t ranges[] = {0, 1 << 20, 4 << 20, 6 << 20};
	struct smg_vdisk_opts o = {0};
	struct smg_vdisk *d = NULL;
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK_EQ(util_make_image(path, SIZE, ranges, 2), 0);
	o.path = strdup(path);
	o.surrogate_dir = dir;
	o.chunk_size = CHUNK;
	o.hot_threshold = 2;
	CHECK_EQ(smg_vdisk_open(&o, &d), 0);
	free((char *)o.path);
	if (d != NULL)
		CHECK_EQ(smg_nbd_server_start(d, sock, srv), 0);
	return d;
}

static void test_plain(void)
{
	struct smg_nbd_server *srv = NULL;
	struct smg_vdisk *d = open_disk("plain.img", &srv);

	if (srv == NULL)
		return;
	CHECK_EQ(qio("-c 'write -P 0x5a 4096 65536' -c 'read -P 0x5a 4096 65536' "
		     "-c 'write -P 0x11 100 7' -c 'read -P 0x11 100 7' -c flush "
		     "-c 'discard 1048576 65536' -c 'read -P 0 1048576 65536' "
		     "-c 'write -z 2097152 4096' -c 'read -P 0 2097152 4096'"),
		 0);
	/* A pattern check that must fail: the test can tell. */
	CHECK(qio("-c 'read -P 0x77 4096 512'") != 0);
	smg_nbd_server_stop(srv);
	smg_vdisk_close(d);
}

static void migrate_with_client(enum smg_stg_mode mode)
{
	struct smg_nbd_server *srv = NULL;
	char name[64], dst_path[256], src_path[256];
	struct smg_vdisk *d;
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_stg_src_opts so = {.mode = mode, .disk_id = 0};
	uint8_t ds[SMG_STG_DIGEST_LEN], dd[SMG_STG_DIGEST_LEN];
	struct smg_vdisk_stats st;
	pid_t bg;

	snprintf(name, sizeof(name), "mig-%d.img", mode);
	snprintf(src_path, sizeof(src_path), "%s/%s", dir, name);
	snprintf(dst_path, sizeof(dst_path), "%s/mig-dst-%d.img", dir, mode);
	if ((d = open_disk(name, &srv)) == NULL || srv == NULL)
		return;
	CHECK_EQ(smg_stg_src_begin(d, &so, &src), 0);
	CHECK_EQ(smg_stg_dst_open(dst_path, SIZE, CHUNK, 0, &dst), 0);
	if (src == NULL || dst == NULL)
		return;
	/* A client hammering the disk in the background while frames move. */
	bg = fork();
	if (bg == 0) {
		char cmds[3000] = "", one[96];

		for (int i = 0; i < 24; i++) {
			snprintf(one, sizeof(one),
				 " -c 'write -P 0x%02x %d 8192' -c 'read 0 65536'",
				 0x20 + i, (7 << 20) + (i * 613) % 16 * 262144);
			strcat(cmds, one);
		}
		_exit(qio(cmds));
	}
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 3), 0);
	CHECK_EQ(qio("-c 'write -P 0xa1 0 4096' -c 'write -P 0xa2 12582912 300000' "
		     "-c 'read -P 0xa1 0 4096'"),
		 0);
	for (int i = 0; i < 6; i++) /* hot reads: WAIO outsources chunk 16 */
		CHECK_EQ(qio("-c 'read 4194304 262144'"), 0);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 0), 0);
	CHECK_EQ(qio("-c 'write -P 0xa3 4194400 1000' -c 'discard 5242880 262144' "
		     "-c 'read -P 0xa3 4194400 1000' -c 'read -P 0 5242880 262144'"),
		 0);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_ITER, 0), 0);
	{
		int stat_bg = -1;

		CHECK(waitpid(bg, &stat_bg, 0) == bg);
		CHECK(WIFEXITED(stat_bg) && WEXITSTATUS(stat_bg) == 0);
	}
	CHECK_EQ(qio("-c 'write -P 0xa4 16773120 4096' -c 'write -P 0xa5 8 8'"), 0);
	smg_vdisk_pause(d);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_FINAL, 0), 0);
	CHECK_EQ(smg_stg_src_digest(src, ds), 0);
	CHECK_EQ(smg_stg_dst_digest(dst, dd), 0);
	CHECK(memcmp(ds, dd, sizeof(ds)) == 0);
	smg_vdisk_get_stats(d, &st);
	if (mode == SMG_STG_MODE_WAIO) {
		CHECK(st.hot_copies > 0);
		CHECK(st.surrogate_reads > 0);
	}
	/* Guest view at pause = the source after merging = the destination. */
	CHECK_EQ(smg_stg_src_end(src, true), 0);
	smg_vdisk_resume(d);
	CHECK_EQ(util_cmp_files(src_path, dst_path), 0);
	/* And the client's own writes are really there. */
	CHECK_EQ(qio("-c 'read -P 0xa1 0 8' -c 'read -P 0xa5 8 8' -c 'read -P 0xa2 "
		     "12582912 300000' "
		     "-c 'read -P 0xa4 16773120 4096'"),
		 0);
	smg_nbd_server_stop(srv);
	smg_stg_dst_close(dst);
	smg_vdisk_close(d);
}

static void abort_with_client(void)
{
	struct smg_nbd_server *srv = NULL;
	struct smg_vdisk *d = open_disk("abort.img", &srv);
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_stg_src_opts so = {.mode = SMG_STG_MODE_WAIO};
	char dst_path[256], cmd[512];

	if (d == NULL || srv == NULL)
		return;
	snprintf(dst_path, sizeof(dst_path), "%s/abort-dst.img", dir);
	CHECK_EQ(smg_stg_src_begin(d, &so, &src), 0);
	CHECK_EQ(smg_stg_dst_open(dst_path, SIZE, CHUNK, 0, &dst), 0);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 2), 0);
	CHECK_EQ(qio("-c 'write -P 0xb1 65536 131072' -c 'write -P 0xb2 9437184 4096' "
		     "-c 'write -P 0xb3 333 77' -c 'discard 4194304 262144'"),
		 0);
	CHECK_EQ(smg_stg_src_end(src, true), 0); /* abort: merge back, then resume */
	smg_nbd_server_stop(srv);
	smg_stg_dst_close(dst);
	smg_vdisk_close(d);
	/* Check the original image file itself, no server in between. */
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f raw %s/abort.img -c 'read -P 0xb1 65536 131072' "
		 "-c 'read -P 0xb2 9437184 4096' -c 'read -P 0xb3 333 77' "
		 "-c 'read -P 0 4194304 262144' >/dev/null",
		 dir);
	CHECK_EQ(system(cmd), 0);
}

static int raw_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static bool read_n(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = read(fd, p, n);

		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* 1 when the server closed the connection (read returns 0). */
static int closed_by_server(int fd)
{
	uint8_t b[256];
	ssize_t k;

	while ((k = read(fd, b, sizeof(b))) > 0)
		;
	return k == 0;
}

/* Handshake + GO to transmission; returns the fd or -1. */
static int raw_go(void)
{
	uint8_t hello[18], cf[4] = {0, 0, 0, 3}, opt[16 + 6], rep[20], info[64];
	int fd = raw_connect();

	if (fd < 0 || !read_n(fd, hello, sizeof(hello)) || write(fd, cf, 4) != 4)
		return -1;
	smg_store_be64(opt, 0x49484156454f5054ull);
	smg_store_be32(opt + 8, 7);
	smg_store_be32(opt + 12, 6);
	memset(opt + 16, 0, 6);
	if (write(fd, opt, sizeof(opt)) != (ssize_t)sizeof(opt))
		return -1;
	for (;;) {
		uint32_t type, len;

		if (!read_n(fd, rep, sizeof(rep)))
			return -1;
		type = smg_load_be32(rep + 12);
		len = smg_load_be32(rep + 16);
		if (len > sizeof(info) || (len && !read_n(fd, info, len)))
			return -1;
		if (type == 1)
			return fd;
		if (type != 3)
			return -1;
	}
}

static void req(uint8_t *q, uint32_t magic, uint16_t flags, uint16_t type, uint64_t off,
		uint32_t len)
{
	smg_store_be32(q, magic);
	smg_store_be16(q + 4, flags);
	smg_store_be16(q + 6, type);
	smg_store_be64(q + 8, 0x1234);
	smg_store_be64(q + 16, off);
	smg_store_be32(q + 24, len);
}

/* Send one request header; return the error field of the simple reply. */
static int64_t req_err(int fd, uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
	uint8_t q[28], r[16];

	req(q, 0x25609513u, flags, type, off, len);
	if (write(fd, q, sizeof(q)) != (ssize_t)sizeof(q) || !read_n(fd, r, sizeof(r)))
		return -1;
	if (smg_load_be32(r) != 0x67446698u || smg_load_be64(r + 8) != 0x1234)
		return -2;
	return smg_load_be32(r + 4);
}

static void test_malformed(void)
{
	struct smg_nbd_server *srv = NULL;
	struct smg_vdisk *d = open_disk("bad.img", &srv);
	uint8_t hello[18], b[64], q[28];
	int fd;

	if (srv == NULL)
		return;
	/* Unknown client flags: disconnect. */
	fd = raw_connect();
	CHECK(fd >= 0 && read_n(fd, hello, sizeof(hello)));
	CHECK(write(fd, "\xff\xff\xff\xff", 4) == 4);
	CHECK(closed_by_server(fd));
	close(fd);
	/* An option claiming 1 GiB of data: disconnect before reading it. */
	fd = raw_connect();
	CHECK(fd >= 0 && read_n(fd, hello, sizeof(hello)));
	CHECK(write(fd, "\0\0\0\3", 4) == 4);
	smg_store_be64(b, 0x49484156454f5054ull);
	smg_store_be32(b + 8, 7);
	smg_store_be32(b + 12, 1u << 30);
	CHECK(write(fd, b, 16) == 16);
	CHECK(closed_by_server(fd));
	close(fd);
	/* GO with a name length past the option's end: NBD_REP_ERR_INVALID. */
	fd = raw_connect();
	CHECK(fd >= 0 && read_n(fd, hello, sizeof(hello)));
	CHECK(write(fd, "\0\0\0\3", 4) == 4);
	smg_store_be32(b + 8, 7);
	smg_store_be32(b + 12, 6);
	smg_store_be32(b + 16, 1000);
	b[20] = b[21] = 0;
	CHECK(write(fd, b, 22) == 22);
	CHECK(read_n(fd, b + 32, 20) && smg_load_be32(b + 32 + 12) == 0x80000003u);
	close(fd);
	/* Requests with bad fields inside valid framing: error replies. */
	fd = raw_go();
	CHECK(fd >= 0);
	CHECK_EQ(req_err(fd, 0, 0, SIZE - 4096, 8192), 22); /* read past the end */
	CHECK_EQ(req_err(fd, 0, 0, UINT64_MAX, 1), 22);	    /* offset wraps */
	CHECK_EQ(req_err(fd, 0, 0, 0, 1u << 31), 22);	    /* read too long */
	CHECK_EQ(req_err(fd, 0, 9, 0, 512), 22);	    /* unknown command */
	CHECK_EQ(req_err(fd, 0x8000, 3, 0, 0), 22);	    /* unknown flag */
	CHECK_EQ(req_err(fd, 0, 4, SIZE, 4096), 28);	    /* trim past the end */
	CHECK_EQ(req_err(fd, 0, 3, 0, 0), 0);		    /* flush still works */
	CHECK_EQ(req_err(fd, 0, 1, 4096, 0), 0); /* empty write (fuzzer regression) */
	CHECK_EQ(req_err(fd, 0, 0, 4096, 0), 0); /* empty read */
	/* A write longer than we buffer: disconnect. */
	req(q, 0x25609513u, 0, 1, 0, 0xffffffffu);
	CHECK(write(fd, q, sizeof(q)) == (ssize_t)sizeof(q));
	CHECK(closed_by_server(fd));
	close(fd);
	/* Bad request magic: lost framing, disconnect. */
	fd = raw_go();
	req(q, 0xdeadbeefu, 0, 0, 0, 512);
	CHECK(fd >= 0 && write(fd, q, sizeof(q)) == (ssize_t)sizeof(q));
	CHECK(closed_by_server(fd));
	close(fd);
	/* Truncated header then hang-up. */
	fd = raw_go();
	CHECK(fd >= 0 && write(fd, q, 10) == 10);
	close(fd);
	/* The server is still fine for a real client. */
	CHECK_EQ(qio("-c 'write -P 0x42 0 4096' -c 'read -P 0x42 0 4096'"), 0);
	/* The buffer entry point used by the fuzzer handles junk too. */
	CHECK(smg_nbd_serve_buffer(d, (const uint8_t *)"junk", 4) != 0);
	CHECK(smg_nbd_serve_buffer(d, NULL, 0) != 0);
	smg_nbd_server_stop(srv);
	smg_vdisk_close(d);
}

int main(void)
{
	smg_log_set_level(SMG_LOG_ERROR);
	if (!have_qemu_io()) {
		fprintf(stderr, "qemu-io not installed (qemu-utils): skip\n");
		return T_SKIP;
	}
	if ((dir = util_tmpdir()) == NULL)
		return 1;
	snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
	test_plain();
	migrate_with_client(SMG_STG_MODE_WAIO);
	migrate_with_client(SMG_STG_MODE_DBT);
	abort_with_client();
	test_malformed();
	util_rmdir(dir);
	free(dir);
	return check_result("storage_nbd");
}
