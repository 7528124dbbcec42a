/* bench_storage: WAIO against the DBT baseline, same run, same disk, same
 * workloads (read-heavy hot-spot, write-heavy, mixed, an MSR trace replay).
 *
 * For every workload: the guest's I/O latency without a migration, then a
 * full disk migration in WAIO mode and in DBT mode while the workload runs:
 * migration time, downtime, bytes sent, guest read/write p50/p99 during the
 * live part of the migration. The guest and the migration reader both use
 * O_DIRECT on the original image, so they meet at the device, not in the page
 * cache; the WAIO surrogate and the destination image live on --shm (the
 * surrogate device and the other host). Source and destination digests are
 * compared on every run; a mismatch fails the benchmark.
 *
 * Last line: one JSON object (keys from issue 6). */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"
#include "transport/transport.h"

#define MAX_ROUNDS   6
#define FINAL_CHUNKS 64 /* stop-and-copy once at most this many chunks remain */
#define FILL_BUF     (4u << 20)

struct cfg {
	const char *dir, *shm, *trace;
	uint64_t size;
	double warm_s, nomig_s;
	unsigned threads, interval_us;
};

struct row {
	const char *scenario, *mode;
	double migration_s, downtime_ms;
	uint64_t bytes_sent, data_bytes, rounds, chunks_resent, hot_copies;
	struct smg_wl_result wl;
};

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	nanosleep(&ts, NULL);
}

/* 2 GiB with real data in ~60% of it: random-looking bytes, 8 MiB holes. */
static int make_image(const char *path, uint64_t size)
{
	uint64_t s = 0x9e3779b97f4a7c15ull, off;
	uint8_t *buf;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)size) != 0 ||
	    posix_memalign((void **)&buf, 4096, FILL_BUF) != 0) {
		perror(path);
		return -1;
	}
	for (off = 0; off + FILL_BUF <= size * 5 / 8; off += FILL_BUF) {
		if ((off / (8u << 20)) % 16 == 15)
			continue; /* a hole */
		for (size_t i = 0; i < FILL_BUF; i += 8) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			memcpy(buf + i, &s, 8);
		}
		if (pwrite(fd, buf, FILL_BUF, (off_t)off) != FILL_BUF) {
			perror("pwrite");
			return -1;
		}
	}
	fsync(fd);
	close(fd);
	free(buf);
	return 0;
}

static int pump(struct smg_stg_src *src, struct smg_stg_dst *dst, enum smg_stg_phase ph,
		uint8_t *frame)
{
	size_t used;
	int r;

	for (;;) {
		if ((r = smg_stg_src_next(src, ph, frame, SMG_FRAME_PAYLOAD_MAX,
					  &used)) != 0)
			return r;
		if (used == 0)
			return 0;
		if ((r = smg_stg_dst_apply(dst, frame, used)) != 0)
			return r;
	}
}

/* One disk migration while the workload runs; latency sampled over the live
 * part (pre-copy), downtime measured separately. */
static int migrate(const struct cfg *c, struct smg_vdisk *d, struct smg_wl *w,
		   enum smg_stg_mode mode, struct row *row)
{
	struct smg_stg_src_opts so = {.mode = mode};
	uint8_t ds[SMG_STG_DIGEST_LEN], dd[SMG_STG_DIGEST_LEN];
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_stg_stats st;
	struct smg_vdisk_stats dst_st;
	char dpath[512];
	uint64_t t0, tp, t1;
	uint8_t *frame = malloc(SMG_FRAME_PAYLOAD_MAX);
	int r = SMG_ERR_NOMEM;

	snprintf(dpath, sizeof(dpath), "%s/smg-bench-dst.img", c->shm);
	smg_wl_reset(w);
	t0 = smg_now_ns();
	if (frame == NULL || (r = smg_stg_src_begin(d, &so, &src)) != 0 ||
	    (r = smg_stg_dst_open(dpath, smg_vdisk_size(d), smg_vdisk_chunk_size(d), 0,
				  &dst)) != 0)
		goto out;
	if ((r = pump(src, dst, SMG_STG_PHASE_BULK, frame)) != 0)
		goto out;
	/* Same convergence rule for both modes: iterate while more than the
	 * stop-and-copy budget remains, at most MAX_ROUNDS rounds. */
	while (row->rounds < MAX_ROUNDS && smg_stg_src_pending(src) > FINAL_CHUNKS) {
		if ((r = pump(src, dst, SMG_STG_PHASE_ITER, frame)) != 0)
			goto out;
		row->rounds++;
	}
	smg_wl_result(w, &row->wl);
	smg_vdisk_pause(d);
	tp = smg_now_ns();
	if ((r = pump(src, dst, SMG_STG_PHASE_FINAL, frame)) != 0 ||
	    (r = smg_stg_src_digest(src, ds)) != 0 ||
	    (r = smg_stg_dst_digest(dst, dd)) != 0)
		goto out_paused;
	if (memcmp(ds, dd, sizeof(ds)) != 0) {
		fprintf(stderr, "bench_storage: %s %s: digest mismatch\n", row->scenario,
			row->mode);
		r = SMG_ERR_INTEGRITY;
		goto out_paused;
	}
	/* The destination could resume here: that ends the downtime. */
	t1 = smg_now_ns();
	smg_stg_src_get_stats(src, &st);
	smg_vdisk_get_stats(d, &dst_st);
	/* Committed: the source copy is dropped (WAIO: surrogate discarded). */
	r = smg_stg_src_end(src, false);
	src = NULL;
	smg_vdisk_resume(d);
	row->migration_s = (double)(t1 - t0) / 1e9;
	row->downtime_ms = (double)(t1 - tp) / 1e6;
	row->bytes_sent = st.wire_bytes;
	row->data_bytes = st.data_bytes;
	row->chunks_resent = st.chunks_resent;
	row->hot_copies = dst_st.hot_copies;
	goto out;
out_paused:
	smg_vdisk_resume(d);
out:
	if (src != NULL)
		smg_stg_src_end(src, true);
	smg_stg_dst_close(dst);
	unlink(dpath);
	free(frame);
	return r;
}

static int run(const struct cfg *c, const char *img, enum smg_wl_kind kind,
	       const struct smg_trace *tr, const char *mode, struct row *row)
{
	struct smg_vdisk_opts o = {.path = img, .surrogate_dir = c->shm, .direct = true};
	struct smg_wl_opts wo = {.kind = kind,
				 .threads = c->threads,
				 .interval_us = c->interval_us,
				 .trace = tr,
				 .seed = 42};
	struct smg_vdisk *d = NULL;
	struct smg_wl *w = NULL;
	int r = 0;

	memset(row, 0, sizeof(*row));
	row->scenario = smg_wl_kind_name(kind);
	row->mode = mode;
	if ((r = smg_vdisk_open(&o, &d)) != 0 || (r = smg_wl_start(d, &wo, &w)) != 0)
		goto out;
	sleep_s(c->warm_s); /* the I/O agent sees the workload before migrating */
	if (strcmp(mode, "nomig") == 0) {
		smg_wl_reset(w);
		sleep_s(c->nomig_s);
		smg_wl_result(w, &row->wl);
	} else {
		r = migrate(c, d, w,
			    strcmp(mode, "waio") == 0 ? SMG_STG_MODE_WAIO
						      : SMG_STG_MODE_DBT,
			    row);
	}
out:
	smg_wl_stop(w);
	smg_vdisk_close(d);
	if (r != 0)
		fprintf(stderr, "bench_storage: %s %s: %s\n", row->scenario, mode,
			smg_strerror(r));
	return r;
}

static void print_row(const struct row *r)
{
	printf(
	    "%-12s %-6s %8.2f %9.1f %10.1f %5llu %9.3f %9.3f %9.3f %9.3f %8llu %6llu\n",
	    r->scenario, r->mode, r->migration_s, r->downtime_ms,
	    r->bytes_sent / 1048576.0, (unsigned long long)r->rounds, r->wl.read_p50_ms,
	    r->wl.read_p99_ms, r->wl.write_p50_ms, r->wl.write_p99_ms,
	    (unsigned long long)(r->wl.reads + r->wl.writes),
	    (unsigned long long)r->hot_copies);
}

static void json_row(const struct row *r, bool last)
{
	printf("{\"scenario\":\"%s\",\"mode\":\"%s\",\"migration_s\":%.3f,\"downtime_"
	       "ms\":%.1f,"
	       "\"bytes_sent\":%llu,\"data_bytes\":%llu,\"rounds\":%llu,\"chunks_"
	       "resent\":%llu,"
	       "\"hot_copies\":%llu,\"read_p50_ms\":%.4f,\"read_p99_ms\":%.4f,"
	       "\"write_p50_ms\":%.4f,\"write_p99_ms\":%.4f,\"reads\":%llu,\"writes\":%"
	       "llu}%s",
	       r->scenario, r->mode, r->migration_s, r->downtime_ms,
	       (unsigned long long)r->bytes_sent, (unsigned long long)r->data_bytes,
	       (unsigned long long)r->rounds, (unsigned long long)r->chunks_resent,
	       (unsigned long long)r->hot_copies, r->wl.read_p50_ms, r->wl.read_p99_ms,
	       r->wl.write_p50_ms, r->wl.write_p99_ms, (unsigned long long)r->wl.reads,
	       (unsigned long long)r->wl.writes, last ? "" : ",");
}

static const struct row *find(const struct row *rows, size_t n, const char *sc,
			      const char *mode)
{
	static const struct row none;

	for (size_t i = 0; i < n; i++)
		if (strcmp(rows[i].scenario, sc) == 0 && strcmp(rows[i].mode, mode) == 0)
			return &rows[i];
	return &none;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static const char *find_trace(const char *argv0)
{
	static char buf[1024];
	const char *src = getenv("SMG_SRC");

	if (src != NULL) {
		snprintf(buf, sizeof(buf), "%s/bench/traces/msr_hot.csv", src);
		if (access(buf, R_OK) == 0)
			return buf;
	}
	if (access("bench/traces/msr_hot.csv", R_OK) == 0)
		return "bench/traces/msr_hot.csv";
	snprintf(buf, sizeof(buf), "%s", argv0);
	if (strrchr(buf, '/'))
		strcpy(strrchr(buf, '/'), "/../bench/traces/msr_hot.csv");
	return buf;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_storage [--dir DIR] [--shm DIR] [--size-gib N] "
			"[--trace FILE] [--nomig-s S] [--warm-s S] [--threads N]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"dir", required_argument, NULL, 'd'},
					   {"shm", required_argument, NULL, 's'},
					   {"size-gib", required_argument, NULL, 'g'},
					   {"trace", required_argument, NULL, 't'},
					   {"nomig-s", required_argument, NULL, 'n'},
					   {"warm-s", required_argument, NULL, 'w'},
					   {"threads", required_argument, NULL, 'j'},
					   {"only", required_argument, NULL, 'o'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct cfg c = {.dir = "/var/tmp",
			.shm = "/dev/shm",
			.size = 2ull << 30,
			.warm_s = 1.0,
			.nomig_s = 3.0,
			.threads = 2,
			.interval_us = 500};
	enum smg_wl_kind kinds[] = {SMG_WL_READ_HOT, SMG_WL_WRITE_HEAVY, SMG_WL_MIXED,
				    SMG_WL_TRACE};
	const char *modes[] = {"nomig", "waio", "dbt"};
	const char *only = NULL;
	struct row rows[12];
	struct smg_trace *tr = NULL;
	char img[1024];
	size_t nrows = 0;
	int ch, r = 0;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c.dir = optarg;
			break;
		case 's':
			c.shm = optarg;
			break;
		case 'g':
			c.size = strtoull(optarg, NULL, 10) << 30;
			break;
		case 't':
			c.trace = optarg;
			break;
		case 'n':
			c.nomig_s = atof(optarg);
			break;
		case 'w':
			c.warm_s = atof(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		case 'j':
			c.threads = (unsigned)atoi(optarg);
			break;
		default:
			usage();
			return ch == 'h' ? 0 : 2;
		}
	}
	if (c.size < (64ull << 20) || c.threads == 0 || c.threads > 16) {
		usage();
		return 2;
	}
	smg_log_set_level(SMG_LOG_WARN);
	if (c.trace == NULL)
		c.trace = find_trace(argv[0]);
	if (smg_trace_load(c.trace, &tr) != 0) {
		fprintf(stderr, "bench_storage: trace %s unreadable (--trace FILE)\n",
			c.trace);
		return 1;
	}
	snprintf(img, sizeof(img), "%s/smg-bench-storage.img", c.dir);
	printf(
	    "bench_storage: %.1f GiB image %s (O_DIRECT), surrogate+destination on %s, "
	    "%u guest threads\n",
	    c.size / 1073741824.0, img, c.shm, c.threads);
	if (make_image(img, c.size) != 0) {
		smg_trace_free(tr);
		return 1;
	}
	printf("%-12s %-6s %8s %9s %10s %5s %9s %9s %9s %9s %8s %6s\n", "scenario",
	       "mode", "mig_s", "down_ms", "sent_MiB", "rnds", "rd_p50ms", "rd_p99ms",
	       "wr_p50ms", "wr_p99ms", "ios", "hot");
	for (size_t k = 0; k < SMG_ARRAY_LEN(kinds) && r == 0; k++)
		for (size_t m = 0; m < SMG_ARRAY_LEN(modes) && r == 0; m++) {
			if (only != NULL && strcmp(only, smg_wl_kind_name(kinds[k])) != 0)
				break;
			r = run(&c, img, kinds[k], tr, modes[m], &rows[nrows]);
			if (r == 0)
				print_row(&rows[nrows++]);
			fflush(stdout);
		}
	unlink(img);
	smg_trace_free(tr);
	if (r != 0)
		return 1;
	const struct row *rn = find(rows, nrows, "read-hot", "nomig"),
			 *rw = find(rows, nrows, "read-hot", "waio"),
			 *rd = find(rows, nrows, "read-hot", "dbt"),
			 *ww = find(rows, nrows, "write-heavy", "waio"),
			 *wd = find(rows, nrows, "write-heavy", "dbt");
	printf("read-hot: read p99 DBT/WAIO = %.2fx (target >= 2), WAIO/no-migration = "
	       "%.2fx "
	       "(target <= 1.5)\n",
	       ratio(rd->wl.read_p99_ms, rw->wl.read_p99_ms),
	       ratio(rw->wl.read_p99_ms, rn->wl.read_p99_ms));
	printf("write-heavy: bytes sent WAIO/DBT = %.2fx (target < 1)\n",
	       ratio((double)ww->bytes_sent, (double)wd->bytes_sent));
	printf(
	    "{\"read_p99_ms_waio\":%.4f,\"read_p99_ms_dbt\":%.4f,\"read_p99_ms_nomig\":%."
	    "4f,"
	    "\"bytes_sent_waio\":%llu,\"bytes_sent_dbt\":%llu,\"migration_s_waio\":%.3f,"
	    "\"migration_s_dbt\":%.3f,\"read_p99_dbt_over_waio\":%.3f,"
	    "\"read_p99_waio_over_nomig\":%.3f,\"write_heavy_bytes_waio_over_dbt\":%.3f,"
	    "\"scenarios\":[",
	    rw->wl.read_p99_ms, rd->wl.read_p99_ms, rn->wl.read_p99_ms,
	    (unsigned long long)rw->bytes_sent, (unsigned long long)rd->bytes_sent,
	    rw->migration_s, rd->migration_s,
	    ratio(rd->wl.read_p99_ms, rw->wl.read_p99_ms),
	    ratio(rw->wl.read_p99_ms, rn->wl.read_p99_ms),
	    ratio((double)ww->bytes_sent, (double)wd->bytes_sent));
	for (size_t i = 0; i < nrows; i++)
		json_row(&rows[i], i + 1 == nrows);
	printf("]}\n");
	return 0;
}
