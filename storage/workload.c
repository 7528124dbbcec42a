/* Synthetic guest disk workloads: threads issuing reads and writes through
 * smg_vdisk (exactly the path NBD requests take) and recording each
 * request's latency. Used by the sim backend and bench/storage. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"

#define WL_THREADS_MAX 16
#define WL_SAMPLES_MAX (1u << 20) /* per thread and kind; later ones are dropped */
#define WL_IO_MAX      (1u << 20)

struct samples {
	uint32_t *us;
	size_t n;
};

struct wl_thread {
	struct smg_wl *wl;
	pthread_t thread;
	pid_t tid;
	uint64_t runq0_ns; /* schedstat run-queue wait at the last reset */
	unsigned idx;
	uint64_t rng;
	pthread_mutex_t mu;
	struct samples rd, wr;
	uint64_t reads, writes, errors;
};

struct smg_wl {
	struct smg_vdisk *disk;
	struct smg_wl_opts o;
	double read_ratio, hot_prob, hot_frac;
	uint64_t hot_start, hot_len;
	_Atomic bool stop;
	uint64_t t0_us;
	unsigned nthreads;
	struct wl_thread th[WL_THREADS_MAX];
};

const char *smg_wl_kind_name(enum smg_wl_kind k)
{
	static const char *const names[] = {"read-hot", "write-heavy", "mixed", "trace"};

	return (unsigned)k < SMG_ARRAY_LEN(names) ? names[k] : "?";
}

static uint64_t rng_next(uint64_t *s) /* xorshift64*: workload shape, not crypto */
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static void record(struct wl_thread *t, bool write, uint64_t ns, int r)
{
	struct samples *s = write ? &t->wr : &t->rd;

	pthread_mutex_lock(&t->mu);
	if (r != 0)
		t->errors++;
	else if (write)
		t->writes++;
	else
		t->reads++;
	if (r == 0 && s->n < WL_SAMPLES_MAX)
		s->us[s->n++] =
		    ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000);
	pthread_mutex_unlock(&t->mu);
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

/* Next synthetic request: offset aligned to the I/O size. */
static void synth(struct wl_thread *t, uint64_t *off, uint32_t *len, bool *write)
{
	struct smg_wl *w = t->wl;
	uint64_t size = smg_vdisk_size(w->disk), io = w->o.io_size, slots;

	*write = rng_unit(&t->rng) >= w->read_ratio;
	*len = (uint32_t)io;
	if (rng_unit(&t->rng) < w->hot_prob) {
		slots = w->hot_len / io;
		*off = w->hot_start + (slots ? rng_next(&t->rng) % slots : 0) * io;
	} else {
		slots = size / io;
		*off = (slots ? rng_next(&t->rng) % slots : 0) * io;
	}
}

static void trace_op(struct wl_thread *t, size_t i, uint64_t *off, uint32_t *len,
		     bool *write, uint64_t *due_us)
{
	struct smg_wl *w = t->wl;
	const struct smg_trace *tr = w->o.trace;
	const struct smg_trace_op *op = &tr->ops[i % tr->n];
	uint64_t size = smg_vdisk_size(w->disk), span = tr->ops[tr->n - 1].t_us + 1;

	*len = op->len > WL_IO_MAX ? WL_IO_MAX : op->len;
	*len = (*len + SMG_STG_BLOCK - 1) / SMG_STG_BLOCK * SMG_STG_BLOCK;
	if (*len > size)
		*len = (uint32_t)(size / SMG_STG_BLOCK * SMG_STG_BLOCK);
	*off = (op->offset / SMG_STG_BLOCK * SMG_STG_BLOCK) % (size - *len + 1);
	*off = *off / SMG_STG_BLOCK * SMG_STG_BLOCK;
	*write = op->write;
	*due_us = (i / tr->n) * span + op->t_us;
}

/* Nanoseconds thread tid spent waiting on a run queue (0 if unknown). */
static uint64_t runq_ns(pid_t tid)
{
	char path[64];
	uint64_t run = 0, wait = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(f, "%" SCNu64 " %" SCNu64, &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait;
}

static void *wl_main(void *arg)
{
	struct wl_thread *t = arg;
	struct smg_wl *w = t->wl;
	uint8_t *buf;
	size_t i = t->idx;
	uint64_t next = smg_now_ns() / 1000;

	pthread_mutex_lock(&t->mu);
	t->tid = gettid();
	t->runq0_ns = runq_ns(t->tid);
	pthread_mutex_unlock(&t->mu);

	if (posix_memalign((void **)&buf, SMG_STG_BLOCK, WL_IO_MAX) != 0)
		return NULL;
	memset(buf, 0x5a ^ t->idx, WL_IO_MAX);
	while (!atomic_load(&w->stop)) {
		uint64_t off, t0, due = 0;
		uint32_t len;
		bool write;
		int r;

		if (w->o.kind == SMG_WL_TRACE) {
			trace_op(t, i, &off, &len, &write, &due);
			i += w->nthreads;
			while (smg_now_ns() / 1000 - w->t0_us < due &&
			       !atomic_load(&w->stop))
				sleep_us(due - (smg_now_ns() / 1000 - w->t0_us) > 20000
					     ? 20000
					     : due - (smg_now_ns() / 1000 - w->t0_us));
		} else {
			synth(t, &off, &len, &write);
		}
		if (len == 0)
			break;
		buf[0] = (uint8_t)rng_next(&t->rng) | 1; /* writes carry fresh data */
		t0 = smg_now_ns();
		r = write ? smg_vdisk_write(w->disk, buf, len, off)
			  : smg_vdisk_read(w->disk, buf, len, off);
		record(t, write, smg_now_ns() - t0, r);
		/* Open loop: the offered load is the same whatever the latency,
		 * so every mode sees the same guest. */
		if (w->o.interval_us && w->o.kind != SMG_WL_TRACE) {
			next += w->o.interval_us;
			uint64_t now = smg_now_ns() / 1000;

			if (next > now)
				sleep_us(next - now);
			else if (now - next > 100000)
				next = now; /* far behind: do not burst */
		}
	}
	free(buf);
	return NULL;
}

int smg_wl_start(struct smg_vdisk *d, const struct smg_wl_opts *o, struct smg_wl **out)
{
	struct smg_wl *w;
	unsigned i;

	*out = NULL;
	if (o->kind == SMG_WL_TRACE && (o->trace == NULL || o->trace->n == 0))
		return SMG_ERR_INVAL;
	if (o->threads > WL_THREADS_MAX || o->io_size > WL_IO_MAX ||
	    (o->io_size && o->io_size % SMG_STG_BLOCK) || smg_vdisk_size(d) < WL_IO_MAX)
		return SMG_ERR_INVAL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return SMG_ERR_NOMEM;
	w->disk = d;
	w->o = *o;
	if (w->o.io_size == 0)
		w->o.io_size = SMG_STG_BLOCK;
	w->nthreads = o->threads ? o->threads : 1;
	switch (o->kind) {
	case SMG_WL_READ_HOT:
		w->read_ratio = 1.0, w->hot_prob = 0.99, w->hot_frac = 0.05;
		break;
	case SMG_WL_WRITE_HEAVY:
		w->read_ratio = 0.2, w->hot_prob = 0.95, w->hot_frac = 0.05;
		break;
	default:
		w->read_ratio = 0.5, w->hot_prob = 0.95, w->hot_frac = 0.05;
		break;
	}
	/* The hot region sits a third into the disk: the scan meets it mid-way. */
	w->hot_len = (uint64_t)((double)smg_vdisk_size(d) * w->hot_frac) / w->o.io_size *
		     w->o.io_size;
	w->hot_start = smg_vdisk_size(d) / 3 / w->o.io_size * w->o.io_size;
	w->t0_us = smg_now_ns() / 1000;
	for (i = 0; i < w->nthreads; i++) {
		struct wl_thread *t = &w->th[i];

		t->wl = w;
		t->idx = i;
		t->rng = (o->seed + 1) * 0x9e3779b97f4a7c15ull + i * 7919 + 1;
		pthread_mutex_init(&t->mu, NULL);
		t->rd.us = malloc(WL_SAMPLES_MAX * sizeof(uint32_t));
		t->wr.us = malloc(WL_SAMPLES_MAX * sizeof(uint32_t));
		if (t->rd.us == NULL || t->wr.us == NULL ||
		    pthread_create(&t->thread, NULL, wl_main, t) != 0) {
			free(t->rd.us);
			free(t->wr.us);
			pthread_mutex_destroy(&t->mu);
			w->nthreads = i;
			smg_wl_stop(w);
			return SMG_ERR_NOMEM;
		}
	}
	*out = w;
	return SMG_OK;
}

void smg_wl_stop(struct smg_wl *w)
{
	unsigned i;

	if (w == NULL)
		return;
	atomic_store(&w->stop, true);
	for (i = 0; i < w->nthreads; i++) {
		pthread_join(w->th[i].thread, NULL);
		pthread_mutex_destroy(&w->th[i].mu);
		free(w->th[i].rd.us);
		free(w->th[i].wr.us);
	}
	free(w);
}

void smg_wl_reset(struct smg_wl *w)
{
	for (unsigned i = 0; i < w->nthreads; i++) {
		struct wl_thread *t = &w->th[i];

		pthread_mutex_lock(&t->mu);
		t->rd.n = t->wr.n = 0;
		t->reads = t->writes = t->errors = 0;
		t->runq0_ns = t->tid ? runq_ns(t->tid) : 0;
		pthread_mutex_unlock(&t->mu);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void pct(uint32_t *v, size_t n, double *p50, double *p99, double *p999)
{
	if (n == 0) {
		*p50 = *p99 = *p999 = 0;
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u32);
	*p50 = v[(size_t)((double)(n - 1) * 0.50)] / 1000.0;
	*p99 = v[(size_t)ceil((double)(n - 1) * 0.99)] / 1000.0;
	*p999 = v[(size_t)ceil((double)(n - 1) * 0.999)] / 1000.0;
}

void smg_wl_result(struct smg_wl *w, struct smg_wl_result *r)
{
	size_t nr = 0, nw = 0;
	uint64_t runq = 0;
	uint32_t *rv, *wv;

	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < w->nthreads; i++) {
		pthread_mutex_lock(&w->th[i].mu);
		nr += w->th[i].rd.n;
		nw += w->th[i].wr.n;
	}
	rv = malloc((nr + 1) * sizeof(*rv));
	wv = malloc((nw + 1) * sizeof(*wv));
	nr = nw = 0;
	for (unsigned i = 0; i < w->nthreads; i++) {
		struct wl_thread *t = &w->th[i];

		if (rv != NULL)
			memcpy(rv + nr, t->rd.us, t->rd.n * sizeof(*rv));
		if (wv != NULL)
			memcpy(wv + nw, t->wr.us, t->wr.n * sizeof(*wv));
		nr += t->rd.n;
		nw += t->wr.n;
		r->reads += t->reads;
		r->writes += t->writes;
		r->errors += t->errors;
		if (t->tid != 0)
			runq += runq_ns(t->tid) - t->runq0_ns;
		pthread_mutex_unlock(&t->mu);
	}
	if (rv != NULL)
		pct(rv, nr, &r->read_p50_ms, &r->read_p99_ms, &r->read_p999_ms);
	if (wv != NULL)
		pct(wv, nw, &r->write_p50_ms, &r->write_p99_ms, &r->write_p999_ms);
	if (r->reads + r->writes > 0)
		r->runq_us_per_io =
		    (double)runq / 1000.0 / (double)(r->reads + r->writes);
	free(rv);
	free(wv);
}
