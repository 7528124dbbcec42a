/* bench_channel: throughput of the secure channel against its limits,
 * measured in the same run (run by hand, see bench/channel.sh):
 *   the frame AEAD seal alone / open alone, one core, same frame size, and
 *   libsodium's secretstream (protocol version 1's framing) next to it;
 *   plain TCP over loopback; a secmig session with 1 and 2 channels.
 * After a short warm-up, REPS repetitions of the whole set, interleaved so
 * that a change of load hits every figure alike; each figure and each
 * ratio (taken within one repetition) is the median. Load average before
 * and after. Prints one JSON object (the script adds the ssh figures).
 * usage: bench_channel [GIB] [PAGES_PER_FRAME] [REPS] */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/internal.h"

#define PAGE 4096u

static uint64_t total_bytes;
static size_t frame_payload;

static double now_s(void)
{
	return (double)smg_now_ns() / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* seal K frames into a ring, then open them; time each phase apart, in this
 * thread's CPU time: the rate of one core even on a shared machine */
static void raw(double *push_gbps, double *pull_gbps)
{
	enum { K = 32 };
	uint8_t key[SS_KEY], hdr[SS_HEADER];
	struct frame_tx tx = {0};
	struct frame_rx rx = {0};
	uint8_t *ring = malloc((size_t)K * (frame_payload + FRAME_OVERHEAD + 8));
	size_t stride = frame_payload + FRAME_OVERHEAD + 8, wire[K];
	double tpush = 0, tpull = 0, t;
	uint64_t done = 0;
	struct smg_frame f;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(hdr, sizeof(hdr));
	smg_frame_tx_key(&tx, key, hdr);
	smg_frame_rx_key(&rx, key, hdr);
	tx.rekey_bytes = SMG_REKEY_BYTES;
	memset(ring, 0x3c, (size_t)K * stride);
	while (done < total_bytes) {
		t = thread_cpu_s();
		for (int i = 0; i < K; i++)
			smg_frame_seal(&tx, ring + i * stride, SMG_FT_PAGES,
				       frame_payload, false, &wire[i]);
		tpush += thread_cpu_s() - t;
		t = thread_cpu_s();
		for (int i = 0; i < K; i++)
			if (smg_frame_open(&rx, ring + i * stride, wire[i], &f) != 0)
				abort();
		tpull += thread_cpu_s() - t;
		done += (uint64_t)K * frame_payload;
	}
	*push_gbps = done / tpush / 1e9;
	*pull_gbps = done / tpull / 1e9;
	free(ring);
}

/* The same with libsodium's secretstream, what protocol version 1 used:
 * the reference the AEAD's speed-up is measured against. */
static void raw_secretstream(double *push_gbps, double *pull_gbps)
{
	enum { K = 32 };
	const size_t ab = crypto_secretstream_xchacha20poly1305_ABYTES;
	uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
	uint8_t hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	size_t stride = frame_payload + 1 + ab;
	uint8_t *ring = malloc((size_t)K * stride), tag;
	double tpush = 0, tpull = 0, t;
	uint64_t done = 0;

	crypto_secretstream_xchacha20poly1305_keygen(key);
	crypto_secretstream_xchacha20poly1305_init_push(&tx, hdr, key);
	crypto_secretstream_xchacha20poly1305_init_pull(&rx, hdr, key);
	memset(ring, 0x3c, (size_t)K * stride);
	while (done < total_bytes) {
		t = thread_cpu_s();
		for (int i = 0; i < K; i++) {
			uint8_t *c = ring + i * stride;

			crypto_secretstream_xchacha20poly1305_push(
			    &tx, c, NULL, c + 1, frame_payload + 1, NULL, 0, 0);
		}
		tpush += thread_cpu_s() - t;
		t = thread_cpu_s();
		for (int i = 0; i < K; i++) {
			uint8_t *c = ring + i * stride;

			if (crypto_secretstream_xchacha20poly1305_pull(
				&rx, c + 1, NULL, &tag, c, frame_payload + 1 + ab, NULL,
				0) != 0)
				abort();
		}
		tpull += thread_cpu_s() - t;
		done += (uint64_t)K * frame_payload;
	}
	*push_gbps = done / tpush / 1e9;
	*pull_gbps = done / tpull / 1e9;
	free(ring);
}

/* ---- plain TCP --------------------------------------------------------------- */
static void *tcp_sink(void *a)
{
	int fd = *(int *)a;
	static uint8_t buf[1 << 20];
	uint64_t got = 0;
	ssize_t n;

	while (got < total_bytes && (n = recv(fd, buf, sizeof(buf), 0)) > 0)
		got += (uint64_t)n;
	return NULL;
}

static double plain_tcp(double *cpu_per_gb)
{
	struct sockaddr_in a = {0};
	socklen_t sl = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s;
	uint8_t *buf = calloc(1, frame_payload);
	uint64_t sent = 0;
	pthread_t th;
	double t, cpu;

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &sl) != 0 ||
	    connect(c, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    (s = accept(l, NULL, NULL)) < 0)
		abort();
	pthread_create(&th, NULL, tcp_sink, &s);
	cpu = cpu_s();
	t = now_s();
	while (sent < total_bytes) {
		ssize_t n = send(c, buf, frame_payload, 0);

		if (n <= 0)
			abort();
		sent += (uint64_t)n;
	}
	pthread_join(th, NULL);
	t = now_s() - t;
	*cpu_per_gb = (cpu_s() - cpu) / (total_bytes / 1e9);
	close(c);
	close(s);
	close(l);
	free(buf);
	return total_bytes / t / 1e9;
}

/* ---- secmig session ---------------------------------------------------------- */
struct worker {
	struct smg_session *s;
	unsigned chan;
	uint64_t bytes;
	pthread_t th;
};

static void *sender(void *a)
{
	struct worker *w = a;
	uint32_t pages = (uint32_t)((frame_payload - SMG_PAGES_HDR_LEN) / (8 + PAGE));
	uint64_t pfn = 0, pfns[256];

	for (uint64_t done = 0; done < w->bytes; done += frame_payload) {
		uint8_t *p;

		if (smg_chan_bulk_begin(w->s, w->chan, frame_payload, &p) != 0)
			abort();
		/* page data: whatever the slot holds; the engine fills it */
		for (uint32_t i = 0; i < pages; i++)
			pfns[i] = pfn++;
		smg_pages_put_pfns(p, 0, PAGE, pfns, pages);
		if (smg_chan_bulk_submit(w->s, w->chan, SMG_FT_PAGES, frame_payload) != 0)
			abort();
	}
	if (smg_chan_flush(w->s, w->chan) != 0)
		abort();
	return NULL;
}

static void *receiver(void *a)
{
	struct worker *w = a;
	struct smg_frame f;
	struct smg_pages_hdr h;

	for (uint64_t done = 0; done < w->bytes; done += f.len)
		if (smg_chan_recv(w->s, w->chan, &f) != 0 ||
		    smg_pages_parse(f.payload, f.len, PAGE, false, &h) != 0)
			abort();
	return NULL;
}

struct srv {
	struct smg_listener *l;
	struct smg_session_opts o;
	struct smg_session *s;
};

static void *accept_main(void *a)
{
	struct srv *v = a;

	if (smg_listener_accept(v->l, &v->o, &v->s) != 0)
		abort();
	return NULL;
}

static double session_run(unsigned nch, const struct smg_identity *ids,
			  const struct smg_identity *idd, const struct smg_peers *peers,
			  double *cpu_per_gb)
{
	struct srv v = {0};
	struct smg_session_opts co = {0};
	struct smg_session *c = NULL;
	struct worker ws[2], wr[2];
	pthread_t th;
	double t, cpu;

	co.identity = ids;
	co.peers = peers;
	co.name = "src";
	co.channels = nch;
	v.o = co;
	v.o.identity = idd;
	v.o.name = "dst";
	if (smg_listener_open("127.0.0.1", 0, &v.l) != 0)
		abort();
	pthread_create(&th, NULL, accept_main, &v);
	if (smg_session_connect("127.0.0.1", smg_listener_port(v.l), &co, &c) != 0)
		abort();
	pthread_join(th, NULL);
	cpu = cpu_s();
	t = now_s();
	for (unsigned i = 0; i < nch; i++) {
		uint64_t share = total_bytes / nch / frame_payload * frame_payload;

		ws[i] = (struct worker){c, i, share, 0};
		wr[i] = (struct worker){v.s, i, share, 0};
		pthread_create(&wr[i].th, NULL, receiver, &wr[i]);
		pthread_create(&ws[i].th, NULL, sender, &ws[i]);
	}
	for (unsigned i = 0; i < nch; i++) {
		pthread_join(ws[i].th, NULL);
		pthread_join(wr[i].th, NULL);
	}
	t = now_s() - t;
	cpu = cpu_s() - cpu;
	*cpu_per_gb = cpu / (total_bytes / 1e9);
	smg_session_free(c);
	smg_session_free(v.s);
	smg_listener_close(v.l);
	return total_bytes / t / 1e9;
}

#define REPS_MAX 15

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One repetition of every figure. */
enum {
	F_PUSH,
	F_PULL,
	F_SS_PUSH,
	F_SS_PULL,
	F_TCP,
	F_S1,
	F_S2,
	F_C1,
	F_C2,
	F_CTCP,
	F_R1TCP, /* secmig 1 ch / plain TCP of this repetition */
	F_R1RAW,
	F_R21,
	F_N
};

static void one_rep(double *f, const struct smg_identity *ids,
		    const struct smg_identity *idd, const struct smg_peers *peers)
{
	raw(&f[F_PUSH], &f[F_PULL]);
	raw_secretstream(&f[F_SS_PUSH], &f[F_SS_PULL]);
	f[F_TCP] = plain_tcp(&f[F_CTCP]);
	f[F_S1] = session_run(1, ids, idd, peers, &f[F_C1]);
	f[F_S2] = session_run(2, ids, idd, peers, &f[F_C2]);
	f[F_R1TCP] = f[F_S1] / f[F_TCP];
	f[F_R1RAW] = f[F_S1] / (f[F_PUSH] < f[F_PULL] ? f[F_PUSH] : f[F_PULL]);
	f[F_R21] = f[F_S2] / f[F_S1];
}

int main(int argc, char **argv)
{
	double gib = argc > 1 ? atof(argv[1]) : 2.0;
	unsigned ppf = argc > 2 ? (unsigned)atoi(argv[2]) : 16;
	unsigned reps = argc > 3 ? (unsigned)atoi(argv[3]) : 3;
	char dir[] = "/tmp/smgbench.XXXXXX", p1[64], p2[64], pub1[64], pub2[64],
	     text[256];
	struct smg_identity *ids, *idd;
	struct smg_peers *peers;
	double all[F_N][REPS_MAX], m[F_N], rep[F_N], rawcpu, sscpu, load0[3] = {0},
								    load1[3] = {0};

	if (sodium_init() < 0 || mkdtemp(dir) == NULL || ppf < 1 ||
	    ppf > smg_pages_per_frame(PAGE) || reps < 1 || reps > REPS_MAX)
		return 2;
	smg_log_set_level(SMG_LOG_WARN);
	frame_payload = SMG_PAGES_HDR_LEN + (size_t)ppf * (8 + PAGE);
	snprintf(p1, sizeof(p1), "%s/src", dir);
	snprintf(p2, sizeof(p2), "%s/dst", dir);
	if (smg_identity_generate(p1, false, pub1, sizeof(pub1)) != 0 ||
	    smg_identity_generate(p2, false, pub2, sizeof(pub2)) != 0 ||
	    smg_identity_load(p1, &ids) != 0 || smg_identity_load(p2, &idd) != 0)
		return 1;
	snprintf(text, sizeof(text), "src %s\ndst %s\n", pub1, pub2);
	if (smg_peers_parse(text, strlen(text), &peers) != 0)
		return 1;
	getloadavg(load0, 3);
	fprintf(stderr,
		"bench_channel: %.2f GiB per run, frames of %u pages (%zu bytes), "
		"%u repetitions, load average %.2f %.2f %.2f\n",
		gib, ppf, frame_payload, reps, load0[0], load0[1], load0[2]);
	/* Warm-up: caches, page tables, the CPU's clock, the TCP stack. */
	total_bytes = (uint64_t)(gib * (1ull << 30)) / 8;
	one_rep(rep, ids, idd, peers);
	total_bytes = (uint64_t)(gib * (1ull << 30));
	for (unsigned r = 0; r < reps; r++) {
		one_rep(rep, ids, idd, peers);
		for (unsigned k = 0; k < F_N; k++)
			all[k][r] = rep[k];
		fprintf(stderr,
			"rep %u: AEAD seal %.3f open %.3f GB/s (secretstream %.3f / "
			"%.3f); TCP %.3f GB/s (%.2f CPU s/GB); secmig 1 ch %.3f GB/s "
			"(%.2f CPU s/GB), "
			"2 ch %.3f GB/s (%.2f CPU s/GB); 1 ch / TCP %.3f\n",
			r, rep[F_PUSH], rep[F_PULL], rep[F_SS_PUSH], rep[F_SS_PULL],
			rep[F_TCP], rep[F_CTCP], rep[F_S1], rep[F_C1], rep[F_S2],
			rep[F_C2], rep[F_R1TCP]);
	}
	for (unsigned k = 0; k < F_N; k++)
		m[k] = median(all[k], reps);
	getloadavg(load1, 3);
	/* CPU seconds per GB the crypto alone costs at both ends: the part of
	 * a session's CPU cost no transport can avoid. raw/session is the
	 * load-independent form of ratio_1ch_vs_raw on a shared machine. */
	rawcpu = 1 / m[F_PUSH] + 1 / m[F_PULL];
	sscpu = 1 / m[F_SS_PUSH] + 1 / m[F_SS_PULL];
	printf("{\"frame_payload_bytes\":%zu,\"bytes_per_run\":%llu,\"reps\":%u,",
	       frame_payload, (unsigned long long)total_bytes, reps);
	printf("\"raw_push_GBps\":%.4f,\"raw_pull_GBps\":%.4f,", m[F_PUSH], m[F_PULL]);
	printf("\"raw_aead_GBps\":%.4f,\"raw_secretstream_GBps\":%.4f,",
	       m[F_PUSH] < m[F_PULL] ? m[F_PUSH] : m[F_PULL],
	       m[F_SS_PUSH] < m[F_SS_PULL] ? m[F_SS_PUSH] : m[F_SS_PULL]);
	printf("\"plain_tcp_GBps\":%.4f,\"plain_tcp_cpu_s_per_GB\":%.4f,", m[F_TCP],
	       m[F_CTCP]);
	printf("\"secmig_1ch_GBps\":%.4f,\"secmig_2ch_GBps\":%.4f,", m[F_S1], m[F_S2]);
	printf("\"ratio_1ch_vs_tcp\":%.4f,\"ratio_1ch_vs_raw\":%.4f,", m[F_R1TCP],
	       m[F_R1RAW]);
	printf("\"ratio_2ch_vs_1ch\":%.4f,", m[F_R21]);
	printf("\"cpu_s_per_GB_1ch\":%.4f,\"cpu_s_per_GB_2ch\":%.4f,", m[F_C1], m[F_C2]);
	printf("\"raw_cpu_s_per_GB\":%.4f,\"raw_secretstream_cpu_s_per_GB\":%.4f,",
	       rawcpu, sscpu);
	printf("\"cpu_efficiency_1ch\":%.4f,\"cpu_efficiency_2ch\":%.4f,",
	       rawcpu / m[F_C1], rawcpu / m[F_C2]);
	printf("\"loadavg_1m_start\":%.2f,\"loadavg_1m_end\":%.2f,\"loadavg_1m\":%.2f,"
	       "\"nproc\":%ld}\n",
	       load0[0], load1[0], load0[0] > load1[0] ? load0[0] : load1[0],
	       sysconf(_SC_NPROCESSORS_ONLN));
	smg_identity_free(ids);
	smg_identity_free(idd);
	smg_peers_free(peers);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	return system(text) == 0 ? 0 : 1;
}
