/* bench_storage: WAIO against the DBT baseline, same run, same disk, same
 * workloads (idle, read-heavy hot-spot, write-heavy, mixed, an MSR trace).
 *
 * For every workload: the guest's I/O latency without a migration, then a
 * full disk migration in WAIO mode and in DBT mode while the workload runs:
 * migration time, downtime, bytes sent, rounds, guest read/write
 * p50/p99/p99.9 during the live part, the guest threads' run-queue wait
 * per request (CPU contention) and the load average. Both modes converge by
 * the engine's rule: disk rounds until the remaining delta fits the
 * downtime budget at the measured rate (WAIO holds hot-written chunks back
 * only within it), at most MAX_ROUNDS rounds.
 *
 * The guest and the migration reader use O_DIRECT on the original image, so
 * they meet at the device, not in the page cache; the WAIO surrogate and
 * the destination image live on --shm (the surrogate device and the other
 * host). The destination applies frames on its own thread at nice 19: it
 * stands for another host, so it takes as little of this one's CPU as the
 * scheduler allows.
 * Source and destination digests are compared on every run; a mismatch
 * fails the benchmark. The last line is one JSON object. */
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"
#include "transport/transport.h"

#define MAX_ROUNDS	8
#define MIN_RATE_CHUNKS 64 /* a round that measures the rate */
#define FILL_BUF	(4u << 20)
#define QSLOTS		8 /* frames in flight to the destination thread */
#define ROWS_MAX	16

struct cfg {
	const char *dir, *shm, *trace;
	uint64_t size;
	double warm_s, nomig_s, budget_ms;
	unsigned threads, interval_us;
	bool no_yield;
	bool verbose; /* per phase and round, on stderr */
};

struct row {
	const char *scenario, *mode;
	double migration_s, downtime_ms, load1;
	uint64_t bytes_sent, data_bytes, rounds, chunks_resent, hot_copies;
	struct smg_wl_result wl;
};

/* ---- the destination, on its own thread ------------------------------------ */
struct dst_q {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[QSLOTS];
	size_t len[QSLOTS];
	unsigned head, n;
	bool stop;
	int err;
	struct smg_stg_dst *dst;
	pthread_t tid;
	uint64_t cpu_ns; /* the destination thread's CPU time in apply */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *dst_main(void *arg)
{
	struct dst_q *q = arg;

	/* Lowest priority, but not SCHED_IDLE: on a busy machine an idle-class
	 * thread can starve for minutes, and the run with it. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	pthread_mutex_lock(&q->mu);
	for (;;) {
		unsigned i;
		int r;

		while (q->n == 0 && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->n == 0)
			break;
		i = q->head;
		pthread_mutex_unlock(&q->mu);
		uint64_t c0 = thread_cpu_ns();

		r = smg_stg_dst_apply(q->dst, q->buf[i], q->len[i]);
		c0 = thread_cpu_ns() - c0;
		pthread_mutex_lock(&q->mu);
		q->cpu_ns += c0;
		if (r != 0 && q->err == 0)
			q->err = r;
		q->head = (q->head + 1) % QSLOTS;
		q->n--;
		pthread_cond_broadcast(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Move every frame of one phase (ITER: one round) to the destination. */
static int pump(struct smg_stg_src *src, struct dst_q *q, enum smg_stg_phase ph,
		uint64_t *bytes)
{
	size_t used;
	int r;

	for (;;) {
		unsigned slot;

		pthread_mutex_lock(&q->mu);
		while (q->n == QSLOTS && q->err == 0)
			pthread_cond_wait(&q->cv, &q->mu);
		slot = (q->head + q->n) % QSLOTS;
		r = q->err;
		pthread_mutex_unlock(&q->mu);
		if (r != 0)
			return r;
		r = smg_stg_src_next(src, ph, q->buf[slot], SMG_DSVC_FRAME_MAX, &used);
		if (r != 0 || used == 0)
			return r;
		*bytes += used;
		pthread_mutex_lock(&q->mu);
		q->len[slot] = used;
		q->n++;
		pthread_cond_broadcast(&q->cv);
		pthread_mutex_unlock(&q->mu);
	}
}

static int drain(struct dst_q *q)
{
	int r;

	pthread_mutex_lock(&q->mu);
	while (q->n > 0 && q->err == 0)
		pthread_cond_wait(&q->cv, &q->mu);
	r = q->err;
	pthread_mutex_unlock(&q->mu);
	return r;
}

static int dst_start(struct dst_q *q, const char *path, struct smg_vdisk *d)
{
	int r;

	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	for (unsigned i = 0; i < QSLOTS; i++)
		if ((q->buf[i] = malloc(SMG_DSVC_FRAME_MAX)) == NULL)
			return SMG_ERR_NOMEM;
	unlink(path);
	if ((r = smg_stg_dst_open(path, smg_vdisk_size(d), smg_vdisk_chunk_size(d), 0,
				  &q->dst)) != 0)
		return r;
	return pthread_create(&q->tid, NULL, dst_main, q) == 0 ? SMG_OK : SMG_ERR_SYS;
}

static void dst_stop(struct dst_q *q, const char *path)
{
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	if (q->dst != NULL)
		pthread_join(q->tid, NULL);
	smg_stg_dst_close(q->dst);
	for (unsigned i = 0; i < QSLOTS; i++)
		free(q->buf[i]);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	unlink(path);
}

/* ---- one migration ------------------------------------------------------------ */
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

/* The engine's disk term: iterate while the delta does not fit the budget
 * at the measured rate; WAIO holds back hot-written chunks within it. */
static int converge(const struct cfg *c, struct smg_stg_src *src, struct dst_q *q,
		    double bw, struct row *row, uint64_t *bytes)
{
	struct smg_stg_pending p;
	int r;

	while (row->rounds < MAX_ROUNDS) {
		uint64_t b0 = *bytes, t0, c0, d0;
		struct smg_stg_stats st0, st1;
		double dt;

		smg_stg_src_get_pending(src, &p);
		smg_stg_src_set_budget(src, (uint64_t)(c->budget_ms / 1000.0 * bw));
		if (c->verbose)
			fprintf(stderr,
				"  %s %s round %llu: pending %llu chunks (%.1f MiB, "
				"%llu held), budget %.1f MiB at %.0f MiB/s\n",
				row->scenario, row->mode, (unsigned long long)row->rounds,
				(unsigned long long)p.chunks, p.bytes / 1048576.0,
				(unsigned long long)p.held,
				c->budget_ms / 1000.0 * bw / 1048576.0, bw / 1048576.0);
		if ((double)p.bytes / bw * 1000.0 <= c->budget_ms)
			break;
		smg_stg_src_get_stats(src, &st0);
		c0 = thread_cpu_ns();
		pthread_mutex_lock(&q->mu);
		d0 = q->cpu_ns;
		pthread_mutex_unlock(&q->mu);
		t0 = smg_now_ns();
		if ((r = pump(src, q, SMG_STG_PHASE_ITER, bytes)) != 0 ||
		    (r = drain(q)) != 0)
			return r;
		row->rounds++;
		dt = (double)(smg_now_ns() - t0) / 1e9;
		smg_stg_src_get_stats(src, &st1);
		if (c->verbose)
			fprintf(
			    stderr,
			    "    sent %.2f MiB (%llu chunks) in %.1f ms (%.1f MiB/s), "
			    "CPU ms source %.1f destination %.1f\n",
			    (*bytes - b0) / 1048576.0,
			    (unsigned long long)(st1.chunks_sent - st0.chunks_sent),
			    dt * 1e3, (*bytes - b0) / 1048576.0 / dt,
			    (double)(thread_cpu_ns() - c0) / 1e6,
			    (double)(q->cpu_ns - d0) / 1e6);
		/* A round of a few chunks says little about the rate. Chunks,
		 * not bytes: a WAIO round carries only what the guest wrote
		 * into each chunk, but the work per chunk (reading it merged,
		 * hashing it on both sides) is what the pause will cost. */
		if (st1.chunks_sent - st0.chunks_sent >= MIN_RATE_CHUNKS)
			bw = (double)(*bytes - b0) / dt;
	}
	return SMG_OK;
}

/* One disk migration while the workload runs; latency sampled over the live
 * part (pre-copy), downtime measured separately. */
static int migrate(const struct cfg *c, struct smg_vdisk *d, struct smg_wl *w,
		   enum smg_stg_mode mode, struct row *row)
{
	struct smg_stg_src_opts so = {.mode = mode};
	uint8_t ds[SMG_STG_DIGEST_LEN], dd[SMG_STG_DIGEST_LEN];
	struct smg_stg_src *src = NULL;
	struct smg_vdisk_stats vst;
	struct smg_stg_stats st;
	struct dst_q q;
	char dpath[512];
	uint64_t t0, tp, t1, bytes = 0, b_live;
	int r;

	snprintf(dpath, sizeof(dpath), "%s/smg-bench-dst.img", c->shm);
	if (w != NULL)
		smg_wl_reset(w);
	t0 = smg_now_ns();
	if ((r = dst_start(&q, dpath, d)) != 0 ||
	    (r = smg_stg_src_begin(d, &so, &src)) != 0)
		goto out;
	if ((r = pump(src, &q, SMG_STG_PHASE_BULK, &bytes)) != 0 || (r = drain(&q)) != 0)
		goto out;
	if (c->verbose) {
		smg_stg_src_get_stats(src, &st);
		fprintf(stderr,
			"  %s %s bulk: %.1f MiB in %.2f s, %.2f s yielded to the guest\n",
			row->scenario, row->mode, bytes / 1048576.0,
			(double)(smg_now_ns() - t0) / 1e9, (double)st.yield_ns / 1e9);
	}
	r = converge(c, src, &q, (double)bytes / ((double)(smg_now_ns() - t0) / 1e9), row,
		     &bytes);
	if (r != 0)
		goto out;
	if (w != NULL)
		smg_wl_result(w, &row->wl);
	smg_vdisk_pause(d);
	tp = smg_now_ns();
	b_live = bytes;
	if ((r = pump(src, &q, SMG_STG_PHASE_FINAL, &bytes)) != 0 ||
	    (r = drain(&q)) != 0 || (r = smg_stg_src_digest(src, ds)) != 0 ||
	    (r = smg_stg_dst_digest(q.dst, dd)) != 0)
		goto out_paused;
	if (c->verbose)
		fprintf(stderr, "  %s %s final: %.1f MiB, %.1f ms with the digests\n",
			row->scenario, row->mode, (bytes - b_live) / 1048576.0,
			(double)(smg_now_ns() - tp) / 1e6);
	if (memcmp(ds, dd, sizeof(ds)) != 0) {
		fprintf(stderr, "bench_storage: %s %s: digest mismatch\n", row->scenario,
			row->mode);
		r = SMG_ERR_INTEGRITY;
		goto out_paused;
	}
	/* The destination could resume here: that ends the downtime. */
	t1 = smg_now_ns();
	smg_stg_src_get_stats(src, &st);
	smg_vdisk_get_stats(d, &vst);
	/* Committed: the source copy is dropped (WAIO: surrogate discarded). */
	r = smg_stg_src_end(src, false);
	src = NULL;
	smg_vdisk_resume(d);
	row->migration_s = (double)(t1 - t0) / 1e9;
	row->downtime_ms = (double)(t1 - tp) / 1e6;
	row->bytes_sent = st.wire_bytes;
	row->data_bytes = st.data_bytes;
	row->chunks_resent = st.chunks_resent;
	row->hot_copies = vst.hot_copies;
	goto out;
out_paused:
	smg_vdisk_resume(d);
out:
	if (src != NULL)
		smg_stg_src_end(src, true);
	dst_stop(&q, dpath);
	return r;
}

static int run(const struct cfg *c, const char *img, int kind, const struct smg_trace *tr,
	       const char *mode, struct row *row)
{
	struct smg_vdisk_opts o = {.path = img,
				   .surrogate_dir = c->shm,
				   .direct = true,
				   .no_yield = c->no_yield};
	struct smg_wl_opts wo = {.kind =
				     kind < 0 ? SMG_WL_READ_HOT : (enum smg_wl_kind)kind,
				 .threads = c->threads,
				 .interval_us = c->interval_us,
				 .trace = tr,
				 .seed = 42};
	struct smg_vdisk *d = NULL;
	struct smg_wl *w = NULL;
	double la[1] = {0};
	int r = 0;

	memset(row, 0, sizeof(*row));
	row->scenario = kind < 0 ? "idle" : smg_wl_kind_name((enum smg_wl_kind)kind);
	row->mode = mode;
	if ((r = smg_vdisk_open(&o, &d)) != 0 ||
	    (kind >= 0 && (r = smg_wl_start(d, &wo, &w)) != 0))
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
	if (getloadavg(la, 1) == 1)
		row->load1 = la[0];
out:
	smg_wl_stop(w);
	smg_vdisk_close(d);
	if (r != 0)
		fprintf(stderr, "bench_storage: %s %s: %s\n", row->scenario, mode,
			smg_strerror(r));
	return r;
}

/* ---- report ------------------------------------------------------------------- */
static void print_row(const struct row *r)
{
	printf("%-11s %-5s %6.2f %7.1f %8.1f %4llu  %6.3f %6.3f %7.3f  %6.3f %6.3f %7.3f "
	       "%6.1f %7llu %5.1f\n",
	       r->scenario, r->mode, r->migration_s, r->downtime_ms,
	       r->bytes_sent / 1048576.0, (unsigned long long)r->rounds,
	       r->wl.read_p50_ms, r->wl.read_p99_ms, r->wl.read_p999_ms,
	       r->wl.write_p50_ms, r->wl.write_p99_ms, r->wl.write_p999_ms,
	       r->wl.runq_us_per_io, (unsigned long long)(r->wl.reads + r->wl.writes),
	       r->load1);
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

static void json_row(const struct row *r, const struct row *rows, size_t n, bool last)
{
	const struct row *nm = find(rows, n, r->scenario, "nomig"),
			 *wa = find(rows, n, r->scenario, "waio"),
			 *db = find(rows, n, r->scenario, "dbt"),
			 *idle = find(rows, n, "idle", r->mode);

	printf("{\"scenario\":\"%s\",\"mode\":\"%s\",\"migration_s\":%.3f,"
	       "\"downtime_ms\":%.1f,\"downtime_over_idle_ms\":%.1f,\"bytes_sent\":%llu,"
	       "\"data_bytes\":%llu,\"rounds\":%llu,\"chunks_resent\":%llu,"
	       "\"hot_copies\":%llu,\"read_p50_ms\":%.4f,\"read_p99_ms\":%.4f,"
	       "\"read_p999_ms\":%.4f,\"write_p50_ms\":%.4f,\"write_p99_ms\":%.4f,"
	       "\"write_p999_ms\":%.4f,\"runq_us_per_io\":%.1f,\"reads\":%llu,"
	       "\"writes\":%llu,\"load1\":%.2f,\"read_p99_dbt_over_waio\":%.3f,"
	       "\"read_p99_waio_over_nomig\":%.3f,\"bytes_waio_over_dbt\":%.3f,"
	       "\"downtime_waio_ms\":%.1f,\"downtime_dbt_ms\":%.1f}%s",
	       r->scenario, r->mode, r->migration_s, r->downtime_ms,
	       strcmp(r->mode, "nomig") == 0 ? 0 : r->downtime_ms - idle->downtime_ms,
	       (unsigned long long)r->bytes_sent, (unsigned long long)r->data_bytes,
	       (unsigned long long)r->rounds, (unsigned long long)r->chunks_resent,
	       (unsigned long long)r->hot_copies, r->wl.read_p50_ms, r->wl.read_p99_ms,
	       r->wl.read_p999_ms, r->wl.write_p50_ms, r->wl.write_p99_ms,
	       r->wl.write_p999_ms, r->wl.runq_us_per_io, (unsigned long long)r->wl.reads,
	       (unsigned long long)r->wl.writes, r->load1,
	       ratio(db->wl.read_p99_ms, wa->wl.read_p99_ms),
	       ratio(wa->wl.read_p99_ms, nm->wl.read_p99_ms),
	       ratio((double)wa->bytes_sent, (double)db->bytes_sent), wa->downtime_ms,
	       db->downtime_ms, last ? "" : ",");
}

static void report(const struct row *rows, size_t n)
{
	const struct row *rn = find(rows, n, "read-hot", "nomig"),
			 *rw = find(rows, n, "read-hot", "waio"),
			 *rd = find(rows, n, "read-hot", "dbt"),
			 *ww = find(rows, n, "write-heavy", "waio"),
			 *wd = find(rows, n, "write-heavy", "dbt"),
			 *mw = find(rows, n, "mixed", "waio"),
			 *iw = find(rows, n, "idle", "waio");

	printf("read-hot: read p99 DBT/WAIO = %.2fx (target >= 2), WAIO/no-migration = "
	       "%.2fx (target <= 1.5)\n",
	       ratio(rd->wl.read_p99_ms, rw->wl.read_p99_ms),
	       ratio(rw->wl.read_p99_ms, rn->wl.read_p99_ms));
	printf("write-heavy: bytes sent WAIO/DBT = %.2fx (target < 1); downtime over an "
	       "idle disk: write-heavy %.1f ms, mixed %.1f ms (WAIO; target <= 50)\n",
	       ratio((double)ww->bytes_sent, (double)wd->bytes_sent),
	       ww->downtime_ms - iw->downtime_ms, mw->downtime_ms - iw->downtime_ms);
	printf(
	    "{\"read_p99_ms_waio\":%.4f,\"read_p99_ms_dbt\":%.4f,\"read_p99_ms_nomig\":%."
	    "4f,\"read_p999_ms_waio\":%.4f,\"read_p999_ms_dbt\":%.4f,"
	    "\"read_p999_ms_nomig\":%.4f,\"bytes_sent_waio\":%llu,\"bytes_sent_dbt\":%"
	    "llu,"
	    "\"migration_s_waio\":%.3f,\"migration_s_dbt\":%.3f,"
	    "\"read_p99_dbt_over_waio\":%.3f,\"read_p99_waio_over_nomig\":%.3f,"
	    "\"write_heavy_bytes_waio_over_dbt\":%.3f,\"downtime_ms_idle\":%.1f,"
	    "\"downtime_over_idle_ms_write_heavy\":%.1f,"
	    "\"downtime_over_idle_ms_mixed\":%.1f,\"scenarios\":[",
	    rw->wl.read_p99_ms, rd->wl.read_p99_ms, rn->wl.read_p99_ms,
	    rw->wl.read_p999_ms, rd->wl.read_p999_ms, rn->wl.read_p999_ms,
	    (unsigned long long)rw->bytes_sent, (unsigned long long)rd->bytes_sent,
	    rw->migration_s, rd->migration_s,
	    ratio(rd->wl.read_p99_ms, rw->wl.read_p99_ms),
	    ratio(rw->wl.read_p99_ms, rn->wl.read_p99_ms),
	    ratio((double)ww->bytes_sent, (double)wd->bytes_sent), iw->downtime_ms,
	    ww->downtime_ms - iw->downtime_ms, mw->downtime_ms - iw->downtime_ms);
	for (size_t i = 0; i < n; i++)
		json_row(&rows[i], rows, n, i + 1 == n);
	printf("]}\n");
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
	fprintf(stderr,
		"usage: bench_storage [--dir DIR] [--shm DIR] [--size-gib N] "
		"[--trace FILE] [--nomig-s S] [--warm-s S] [--threads N] "
		"[--budget-ms MS] [--only SCENARIO] [--waio-no-yield] [--verbose]\n");
}

static int parse_args(int argc, char **argv, struct cfg *c, const char **only)
{
	static const struct option lo[] = {{"dir", required_argument, NULL, 'd'},
					   {"shm", required_argument, NULL, 's'},
					   {"size-gib", required_argument, NULL, 'g'},
					   {"trace", required_argument, NULL, 't'},
					   {"nomig-s", required_argument, NULL, 'n'},
					   {"warm-s", required_argument, NULL, 'w'},
					   {"threads", required_argument, NULL, 'j'},
					   {"budget-ms", required_argument, NULL, 'b'},
					   {"only", required_argument, NULL, 'o'},
					   {"waio-no-yield", no_argument, NULL, 'y'},
					   {"verbose", no_argument, NULL, 'v'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c->dir = optarg;
			break;
		case 's':
			c->shm = optarg;
			break;
		case 'g':
			c->size = strtoull(optarg, NULL, 10) << 30;
			break;
		case 't':
			c->trace = optarg;
			break;
		case 'n':
			c->nomig_s = atof(optarg);
			break;
		case 'w':
			c->warm_s = atof(optarg);
			break;
		case 'b':
			c->budget_ms = atof(optarg);
			break;
		case 'o':
			*only = optarg;
			break;
		case 'y':
			c->no_yield = true;
			break;
		case 'v':
			c->verbose = true;
			break;
		case 'j':
			c->threads = (unsigned)atoi(optarg);
			break;
		default:
			usage();
			return ch == 'h' ? 0 : 2;
		}
	}
	if (c->size < (64ull << 20) || c->threads == 0 || c->threads > 16 ||
	    c->budget_ms <= 0) {
		usage();
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cfg c = {.dir = "/var/tmp",
			.shm = "/dev/shm",
			.size = 2ull << 30,
			.warm_s = 1.0,
			.nomig_s = 3.0,
			.budget_ms = 30,
			.threads = 2,
			.interval_us = 500};
	const int kinds[] = {-1, SMG_WL_READ_HOT, SMG_WL_WRITE_HEAVY, SMG_WL_MIXED,
			     SMG_WL_TRACE};
	const char *modes[] = {"nomig", "waio", "dbt"};
	const char *only = NULL;
	struct row rows[ROWS_MAX];
	struct smg_trace *tr = NULL;
	char img[1024];
	size_t nrows = 0;
	int r = 0;

	if ((r = parse_args(argc, argv, &c, &only)) >= 0)
		return r;
	r = 0;
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
	    "%u guest threads, disk downtime budget %.0f ms, %ld CPUs\n",
	    c.size / 1073741824.0, img, c.shm, c.threads, c.budget_ms,
	    sysconf(_SC_NPROCESSORS_ONLN));
	if (make_image(img, c.size) != 0) {
		smg_trace_free(tr);
		return 1;
	}
	printf("%-11s %-5s %6s %7s %8s %4s  %6s %6s %7s  %6s %6s %7s %6s %7s %5s\n",
	       "scenario", "mode", "mig_s", "down_ms", "sent_MiB", "rnds", "rd_p50",
	       "rd_p99", "rd_p999", "wr_p50", "wr_p99", "wr_p999", "runq", "ios", "load");
	for (size_t k = 0; k < SMG_ARRAY_LEN(kinds) && r == 0; k++)
		for (size_t m = 0; m < SMG_ARRAY_LEN(modes) && r == 0; m++) {
			const char *sc =
			    kinds[k] < 0 ? "idle"
					 : smg_wl_kind_name((enum smg_wl_kind)kinds[k]);

			if ((only != NULL && strcmp(only, sc) != 0 && kinds[k] >= 0) ||
			    (kinds[k] < 0 && m == 0))
				continue; /* the idle disk has no guest to measure */
			r = run(&c, img, kinds[k], tr, modes[m], &rows[nrows]);
			if (r == 0)
				print_row(&rows[nrows++]);
			fflush(stdout);
		}
	unlink(img);
	smg_trace_free(tr);
	if (r != 0)
		return 1;
	report(rows, nrows);
	return 0;
}
