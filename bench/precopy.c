/* bench/precopy: a 1 GiB sim VM at dirty rates 0..200 MB/s (uniform and
 * hot-spot) migrated under our stop rule, Xen's default rule and plain
 * stop-and-copy, all in one run, next to the lower bound (non-zero RAM over
 * the link's bandwidth, measured in the same run with the same number of
 * channels and no engine). CPU seconds per GB of a whole migration (both
 * ends: this process sends, the receiver service's process receives) next
 * to the link's (both ends, the same process), the link measured three
 * times after a warm-up, the idle VM migrated --runs times: medians. Load
 * average before and after. The last line is one JSON object.
 *
 *   bench_precopy [-m MiB] [-r runs] [-c channels] [-q] [-i] [-p] [-d MiB]
 * (-q: 256 MiB, 3 runs; -i: the idle VM only, for a quick look at the
 * page path's rate and CPU; -p: the source side (this process, host A) on
 * CPU 0 and the destination side (receiver, host B) on CPU 1, link and
 * migrations alike: two one-core hosts instead of two ends sharing both
 * cores; -d: after the memory rows, the idle VM with a disk of that many
 * MiB of data (disk services on both hosts, WAIO) and the disk alone (a
 * 16 MiB VM): does a disk cost its own time on top of memory's, or do the
 * two overlap?)
 *
 * Runs two sim hosts and a receiver service as child processes of the
 * secmig binary next to this program (or $SECMIG); the sender runs here. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/sim.h"
#include "engine/engine.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define WARMUP_MS  1000
#define LINK_BYTES (1024ull << 20) /* streamed for the link baseline */
#define LINK_REPS  3
#define MAX_ROWS   64

static const char *rule_names[] = {"ours", "xen", "stop_and_copy"};

struct row {
	const char *pattern;
	bool disk;    /* the VM has the -d disk */
	uint64_t mem; /* 0: B.mem */
	unsigned rate_mb;
	enum smg_stop_rule rule;
	unsigned run;
	struct smg_mig_stats st;
	int err;
	double lower_bound_ms;
	double cpu_s; /* both ends */
};

static struct {
	char dir[64], a[96], b[96], secmig[512];
	pid_t ha, hb, rv;
	uint16_t port;
	uint64_t mem;
	unsigned channels, runs;
	bool pin;	  /* -p: source side on CPU 0, destination side on CPU 1 */
	unsigned disk_mb; /* -d: the disk rows */
	pid_t da, db;	  /* their disk services */
	char disk_src[160];
	struct smg_cli_keys {
		struct smg_identity *id;
		struct smg_peers *peers;
	} src;
	double link_bps, link_cpu_per_gb;
	uint64_t nonzero;
} B = {.mem = 1ull << 30, .channels = 2, .runs = 5};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a live process, all its threads (/proc/PID/stat). */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* after the ")" that ends comm: state is field 3, utime 14, stime 15 */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
		   &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* -p: each side on a core of its own, as if on two one-core hosts. */
static void pin_to(int cpu)
{
	cpu_set_t set;

	if (!B.pin || cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		fprintf(stderr, "bench: pin to CPU %d: %s\n", cpu, strerror(errno));
}

/* The other processes of a migration: the receiver, and with -d the disk
 * services (they read, hash and write the disk). */
static double others_cpu_s(void)
{
	return proc_cpu_s(B.rv) + (B.da > 0 ? proc_cpu_s(B.da) : 0) +
	       (B.db > 0 ? proc_cpu_s(B.db) : 0);
}

static pid_t spawn(char *const argv[], int *out, int cpu)
{
	int p[2];
	pid_t pid;

	if (out != NULL && pipe(p) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		/* a bench stopped by a signal takes its hosts and receiver along */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		pin_to(cpu);
		if (out != NULL) {
			dup2(p[1], 1);
			close(p[0]);
		}
		execv(B.secmig, argv);
		_exit(127);
	}
	if (out != NULL) {
		close(p[1]);
		*out = p[0];
	}
	return pid;
}

static int host_call(const char *dir, const char *req, const char *payload)
{
	char reply[512];
	int fd, r;

	for (int i = 0; i < 200 && smg_sim_client_connect(dir, &fd) != SMG_OK; i++)
		sleep_ms(20);
	r = smg_sim_client_call(fd, req, payload, payload ? strlen(payload) : 0, reply,
				sizeof(reply), NULL);
	close(fd);
	if (r != SMG_OK && strncmp(req, "DESTROY", 7) != 0)
		fprintf(stderr, "bench: %s: %s\n", req, reply);
	return r;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n = fd >= 0 ? write(fd, text, strlen(text)) : -1;

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* -d: both hosts' disk services, and the disk's contents (pseudo-random
 * data throughout: every chunk travels) imported for every row. */
static int disk_setup(const char *defs)
{
	char *da[] = {"secmig", "--quiet", "disk", "serve", "--state-dir", B.a, NULL};
	char *db[] = {"secmig", "--quiet", "disk",	 "serve", "--state-dir",
		      B.b,	"--defs",  (char *)defs, NULL};
	char sock[160];
	uint64_t st = 0x5eed, buf[8192];
	FILE *f;

	snprintf(B.disk_src, sizeof(B.disk_src), "%s/disk.src", B.dir);
	if ((f = fopen(B.disk_src, "wb")) == NULL)
		return -1;
	for (uint64_t left = (uint64_t)B.disk_mb << 20; left > 0; left -= sizeof(buf)) {
		for (size_t i = 0; i < SMG_ARRAY_LEN(buf); i++) {
			st = st * 6364136223846793005ull + 1442695040888963407ull;
			buf[i] = st ^ (st >> 29);
		}
		fwrite(buf, sizeof(buf), 1, f);
	}
	if (fclose(f) != 0)
		return -1;
	B.da = spawn(da, NULL, 0);
	B.db = spawn(db, NULL, 1);
	for (int i = 0; i < 200; i++) {
		snprintf(sock, sizeof(sock), "%s/disk.sock", B.b);
		if (access(sock, F_OK) == 0) {
			snprintf(sock, sizeof(sock), "%s/disk.sock", B.a);
			if (access(sock, F_OK) == 0)
				return 0;
		}
		sleep_ms(20);
	}
	return -1;
}

/* secmig disk --state-dir DIR VERB ARGS... (quiet); its exit status. */
static int disk_cmd(const char *dir, const char *verb, const char *a1, const char *a2)
{
	char *argv[] = {"secmig",     "--quiet",  "disk",     "--state-dir", (char *)dir,
			(char *)verb, (char *)a1, (char *)a2, NULL};
	pid_t pid = fork();
	int st = 0;

	if (pid == 0) { /* quiet: "no disk" from a delete is expected */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execv(B.secmig, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void)
{
	char path[256], pa[64], pb[64], line[160];
	int out;

	snprintf(B.dir, sizeof(B.dir), "/tmp/smg-bench.XXXXXX");
	if (mkdtemp(B.dir) == NULL)
		return -1;
	snprintf(B.a, sizeof(B.a), "%s/a", B.dir);
	snprintf(B.b, sizeof(B.b), "%s/b", B.dir);
	mkdir(B.a, 0700);
	mkdir(B.b, 0700);
	snprintf(path, sizeof(path), "%s/host.key", B.a);
	smg_identity_generate(path, true, pa, sizeof(pa));
	snprintf(path, sizeof(path), "%s/host.key", B.b);
	smg_identity_generate(path, true, pb, sizeof(pb));
	snprintf(path, sizeof(path), "%s/peers", B.a);
	snprintf(line, sizeof(line), "dst %s\n", pb);
	write_file(path, line);
	snprintf(path, sizeof(path), "%s/peers", B.b);
	snprintf(line, sizeof(line), "src %s\n", pa);
	write_file(path, line);
	/* B's host definitions (docs/hostdef.md): any VM from src, big ones */
	char defs[160], dtext[256];
	snprintf(defs, sizeof(defs), "%s/defs", B.b);
	snprintf(dtext, sizeof(dtext),
		 "storage %s\nlimit vm memory=64G disk=64G\nlimit total memory=64G "
		 "disk=64G\nvm *\n  from src\n",
		 B.b);
	write_file(defs, dtext);
	char *ha[] = {"secmig", "--quiet", "sim", "host", "--state-dir", B.a, NULL};
	char *hb[] = {"secmig", "--quiet", "sim", "host", "--state-dir", B.b, NULL};
	char ch[8];
	snprintf(ch, sizeof(ch), "%u", B.channels);
	char *rv[] = {"secmig",
		      "--quiet",
		      "recv",
		      "--listen",
		      "127.0.0.1:0",
		      "--json",
		      "--state-dir",
		      B.b,
		      "--name",
		      "dst",
		      "--channels",
		      ch,
		      "--insecure-software-mode",
		      "--defs",
		      defs,
		      NULL};
	B.ha = spawn(ha, NULL, 0);
	B.hb = spawn(hb, NULL, 1);
	if (host_call(B.a, "LIST", NULL) != SMG_OK ||
	    host_call(B.b, "LIST", NULL) != SMG_OK)
		return -1;
	if (B.disk_mb > 0 && disk_setup(defs) != 0)
		return -1;
	if ((B.rv = spawn(rv, &out, 1)) < 0)
		return -1;
	size_t n = 0;
	while (n + 1 < sizeof(line) && read(out, line + n, 1) == 1 && line[n] != '\n')
		n++;
	line[n] = '\0';
	const char *p = strstr(line, "\"port\":");
	if (p == NULL)
		return -1;
	B.port = (uint16_t)atoi(p + 7);
	/* Keep draining the service's event lines so it never blocks. */
	if (fork() == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		char buf[4096];
		while (read(out, buf, sizeof(buf)) > 0)
			;
		_exit(0);
	}
	close(out);
	snprintf(path, sizeof(path), "%s/host.key", B.a);
	if (smg_identity_load(path, &B.src.id) != SMG_OK)
		return -1;
	snprintf(path, sizeof(path), "%s/peers", B.a);
	return smg_peers_load(path, &B.src.peers) == SMG_OK ? 0 : -1;
}

static void teardown(void)
{
	pid_t pids[] = {B.rv, B.da, B.db, B.ha, B.hb};
	char cmd[128];

	for (size_t i = 0; i < SMG_ARRAY_LEN(pids); i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			waitpid(pids[i], NULL, 0);
		}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	smg_identity_free(B.src.id);
	smg_peers_free(B.src.peers);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", B.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", B.dir);
}

/* ---- link baseline: the same channels, bulk frames of pages, no engine -- */
struct link_chan {
	struct smg_session *s;
	unsigned chan;
	uint64_t frames, bytes;
	int err;
	pthread_t t;
};

static void *link_send(void *arg)
{
	struct link_chan *c = arg;
	uint32_t per = smg_pages_per_frame(4096);
	size_t len = SMG_PAGES_HDR_LEN + (size_t)per * (8 + 4096);
	uint64_t pfns[256];
	uint8_t *buf;

	for (uint64_t k = 0; k < c->frames && c->err == 0; k++) {
		if ((c->err = smg_chan_bulk_begin(c->s, c->chan, len, &buf)) != 0)
			break;
		memset(smg_pages_data(buf, 4096, 0), 0x5a, 64);
		for (uint32_t i = 0; i < per; i++)
			pfns[i] = k * per + i;
		smg_pages_put_pfns(buf, 0, 4096, pfns, per);
		c->err = smg_chan_bulk_submit(c->s, c->chan, SMG_FT_PAGES, len);
	}
	if (c->err == 0)
		c->err = smg_chan_flush(c->s, c->chan);
	return NULL;
}

static void *link_recv(void *arg)
{
	struct link_chan *c = arg;
	struct smg_frame f;

	for (uint64_t k = 0;
	     k < c->frames && (c->err = smg_chan_recv(c->s, c->chan, &f)) == 0; k++)
		c->bytes += f.len;
	return NULL;
}

struct link_srv {
	struct smg_listener *l;
	struct smg_session_opts so;
	struct smg_session *s;
};

static void *link_close(void *arg)
{
	smg_session_close(arg);
	return NULL;
}

static void *link_accept(void *arg)
{
	struct link_srv *sv = arg;

	smg_listener_accept(sv->l, &sv->so, &sv->s);
	return NULL;
}

static double measure_link(uint64_t bytes, double *cpu_per_gb)
{
	struct smg_identity *bid;
	struct smg_peers *bpeers;
	struct link_srv sv = {0};
	struct smg_session_opts co = {.identity = B.src.id,
				      .peers = B.src.peers,
				      .name = "src",
				      .channels = B.channels};
	struct smg_session *cs;
	struct link_chan tx[SMG_CHANNELS_MAX], rx[SMG_CHANNELS_MAX];
	char path[256];
	pthread_t at;
	double bps = 0;

	snprintf(path, sizeof(path), "%s/host.key", B.b);
	smg_identity_load(path, &bid);
	snprintf(path, sizeof(path), "%s/peers", B.b);
	smg_peers_load(path, &bpeers);
	sv.so = (struct smg_session_opts){
	    .identity = bid, .peers = bpeers, .name = "dst", .channels = B.channels};
	if (smg_listener_open("127.0.0.1", 0, &sv.l) != 0)
		return 0;
	pthread_create(&at, NULL, link_accept, &sv);
	if (smg_session_connect("127.0.0.1", smg_listener_port(sv.l), &co, &cs) != 0) {
		pthread_join(at, NULL);
		return 0;
	}
	pthread_join(at, NULL);
	double cpu0 = self_cpu_s();
	uint64_t t0 = smg_now_ns();
	uint64_t frames =
	    bytes / B.channels /
	    (SMG_PAGES_HDR_LEN + (size_t)smg_pages_per_frame(4096) * (8 + 4096));
	for (unsigned i = 0; i < B.channels; i++) {
		rx[i] = (struct link_chan){.s = sv.s, .chan = i, .frames = frames};
		tx[i] = (struct link_chan){.s = cs, .chan = i, .frames = frames};
		pthread_create(&rx[i].t, NULL, link_recv, &rx[i]);
		pthread_create(&tx[i].t, NULL, link_send, &tx[i]);
	}
	uint64_t got = 0;
	for (unsigned i = 0; i < B.channels; i++) {
		pthread_join(tx[i].t, NULL);
		pthread_join(rx[i].t, NULL);
		got += rx[i].bytes;
	}
	bps = (double)got / ((double)(smg_now_ns() - t0) / 1e9);
	*cpu_per_gb = (self_cpu_s() - cpu0) / ((double)got / 1e9);
	pthread_t ct;
	pthread_create(&ct, NULL, link_close, cs);
	smg_session_close(sv.s);
	pthread_join(ct, NULL);
	smg_listener_close(sv.l);
	smg_identity_free(bid);
	smg_peers_free(bpeers);
	return bps;
}

/* ---- one migration ---------------------------------------------------------- */
static void run_one(struct row *r)
{
	char cfg[512], req[64], to[32];
	struct smg_session_opts so = {.identity = B.src.id,
				      .peers = B.src.peers,
				      .name = "src",
				      .channels = B.channels};
	struct smg_send_opts o = {.backend = "sim",
				  .domain = "bench-vm",
				  .auto_converge = true,
				  /* a figure, not a verdict: never abort on the budget */
				  .on_no_converge = SMG_NOCONV_EXTEND,
				  .rule = r->rule};
	struct smg_session *s;
	const char *wl = r->rate_mb == 0 ? "idle" : r->pattern;

	snprintf(cfg, sizeof(cfg),
		 "name = bench-vm\nmemory = %llu\nvcpus = 2\nworkload = %s\n"
		 "dirty_rate = %uM\nhot_writes = 90\nhot_pages = 5\nzero_pct = 20\nseed "
		 "= %u\n%s",
		 (unsigned long long)(r->mem ? r->mem : B.mem), wl, r->rate_mb,
		 1000 + r->run, r->disk ? "disk = bench-vm.0\n" : "");
	host_call(B.b, "DESTROY bench-vm", NULL);
	if (B.disk_mb > 0) { /* the last row's disk, wherever it ended */
		disk_cmd(B.b, "delete", "bench-vm.0", NULL);
		disk_cmd(B.a, "delete", "bench-vm.0", NULL);
	}
	if (r->disk && disk_cmd(B.a, "import", "bench-vm.0", B.disk_src) != 0) {
		r->err = SMG_ERR_STORAGE;
		return;
	}
	if ((r->err = host_call(B.a, "CREATE", cfg)) != SMG_OK)
		return;
	sleep_ms(WARMUP_MS);
	snprintf(to, sizeof(to), "127.0.0.1:%u", B.port);
	o.bopts.state_dir = B.a;
	o.peer = to;
	double cpu0 = self_cpu_s() + others_cpu_s();
	if ((r->err = smg_session_connect("127.0.0.1", B.port, &so, &s)) == SMG_OK) {
		r->err = smg_engine_send(s, &o, &r->st);
		/* both ends: DONE means the receiver has finished its work */
		r->cpu_s = self_cpu_s() + others_cpu_s() - cpu0;
		if (r->err == SMG_OK)
			smg_session_close(s);
		else
			smg_session_free(s);
	}
	snprintf(req, sizeof(req), "DESTROY bench-vm");
	host_call(r->err == SMG_OK ? B.b : B.a, req, NULL);
	r->lower_bound_ms = B.link_bps > 0 ? (double)B.nonzero / B.link_bps * 1000.0 : 0;
	fprintf(stderr,
		"  %-8s %3u MB/s %-13s run %u: downtime %5llu ms  total %6llu ms  "
		"%7.1f MB sent  %2u rounds  %.2f CPU s  %s%s\n",
		r->disk && r->mem ? "disk"
		: r->disk	  ? "idle+dsk"
				  : r->pattern,
		r->rate_mb, rule_names[r->rule], r->run,
		(unsigned long long)r->st.downtime_ms, (unsigned long long)r->st.total_ms,
		(double)r->st.bytes_sent / 1e6, r->st.rounds, r->cpu_s,
		r->err		  ? smg_strerror(r->err)
		: r->st.converged ? "converged"
				  : "forced stop",
		r->st.throttle ? " (throttled)" : "");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median_d(double *v, unsigned n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The link: a warm-up, then LINK_REPS runs; medians of rate and CPU. */
static void link_baseline(void)
{
	double bps[LINK_REPS], cpu[LINK_REPS], c;
	unsigned n = 0;

	measure_link(LINK_BYTES / 4, &c);
	for (unsigned i = 0; i < LINK_REPS; i++) {
		bps[n] = measure_link(LINK_BYTES, &cpu[n]);
		if (bps[n] > 0)
			n++;
	}
	B.link_bps = median_d(bps, n);
	B.link_cpu_per_gb = median_d(cpu, n);
}

int main(int argc, char **argv)
{
	static const unsigned rates[] = {0, 25, 50, 100, 200};
	static const char *patterns[] = {"uniform", "hotspot"};
	static struct row rows[MAX_ROWS];
	uint64_t hot50[16];
	double idle_ms_v[16], idle_cpu_v[16], load0[3] = {0}, load1[3] = {0};
	unsigned nrows = 0, nhot = 0, nidle = 0;
	const char *env = getenv("SECMIG");
	int c;

	bool idle_only = false;

	while ((c = getopt(argc, argv, "m:r:c:qipd:")) != -1) {
		if (c == 'm')
			B.mem = strtoull(optarg, NULL, 10) << 20;
		else if (c == 'r')
			B.runs = (unsigned)atoi(optarg);
		else if (c == 'c')
			B.channels = (unsigned)atoi(optarg);
		else if (c == 'i')
			idle_only = true;
		else if (c == 'p')
			B.pin = true;
		else if (c == 'd')
			B.disk_mb = (unsigned)atoi(optarg);
		else if (c == 'q') {
			B.mem = 256ull << 20;
			B.runs = 3;
		} else {
			fprintf(stderr, "usage: bench_precopy [-m MiB] [-r runs] [-c "
					"channels] [-q] [-i] [-p] [-d MiB]\n");
			return 2;
		}
	}
	if (B.runs == 0 || B.runs > 16 || B.channels == 0 ||
	    B.channels > SMG_CHANNELS_MAX || B.mem < (16u << 20))
		return 2;
	if (env != NULL) {
		snprintf(B.secmig, sizeof(B.secmig), "%s", env);
	} else {
		char self[400];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = '\0';
		snprintf(B.secmig, sizeof(B.secmig), "%s/secmig", dirname(self));
	}
	smg_log_set_level(SMG_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	pin_to(0); /* before any thread: the sender's threads inherit it */
	if (setup() != 0) {
		fprintf(stderr, "bench: setup failed (secmig at %s?)\n", B.secmig);
		teardown();
		return 1;
	}
	B.nonzero = B.mem - B.mem * 20 / 100;
	getloadavg(load0, 3);
	link_baseline();
	fprintf(stderr,
		"bench precopy: %llu MiB VM, %u channels, link %.1f MB/s and %.3f CPU "
		"s/GB (secmig session, no engine; median of %u), lower bound %.0f ms; "
		"load average %.2f %.2f %.2f\n",
		(unsigned long long)(B.mem >> 20), B.channels, B.link_bps / 1e6,
		B.link_cpu_per_gb, LINK_REPS,
		B.link_bps > 0 ? (double)B.nonzero / B.link_bps * 1000 : 0, load0[0],
		load0[1], load0[2]);
	for (size_t p = 0; p < 2; p++)
		for (size_t i = 0; i < SMG_ARRAY_LEN(rates); i++) {
			if ((rates[i] == 0 && p == 1) || (idle_only && rates[i] != 0))
				continue; /* idle is idle; -i: only the idle VM */
			for (int rule = 0; rule < 3; rule++) {
				bool med = rule == SMG_RULE_DOWNTIME &&
					   ((p == 1 && rates[i] == 50) || rates[i] == 0);
				unsigned n = med ? B.runs : 1;
				for (unsigned k = 0; k < n && nrows < MAX_ROWS; k++) {
					struct row *r = &rows[nrows++];
					*r = (struct row){
					    .pattern = rates[i] ? patterns[p] : "idle",
					    .rate_mb = rates[i],
					    .rule = (enum smg_stop_rule)rule,
					    .run = k};
					run_one(r);
					if (med && r->err == SMG_OK && rates[i] == 50)
						hot50[nhot++] = r->st.downtime_ms;
					if (med && r->err == SMG_OK && rates[i] == 0 &&
					    r->st.bytes_sent > 0) {
						idle_ms_v[nidle] = (double)r->st.total_ms;
						idle_cpu_v[nidle++] =
						    r->cpu_s /
						    ((double)r->st.bytes_sent / 1e9);
					}
				}
			}
		}
	/* -d: the idle VM with the disk, then the disk alone (a 16 MiB VM) */
	double dk_ms[2][16];
	unsigned ndk[2] = {0, 0};
	for (unsigned kind = 0; B.disk_mb > 0 && kind < 2; kind++)
		for (unsigned k = 0; k < B.runs && nrows < MAX_ROWS; k++) {
			struct row *r = &rows[nrows++];
			*r = (struct row){.pattern = "idle",
					  .disk = true,
					  .mem = kind ? 16ull << 20 : 0,
					  .rule = SMG_RULE_DOWNTIME,
					  .run = k};
			run_one(r);
			if (r->err == SMG_OK)
				dk_ms[kind][ndk[kind]++] = (double)r->st.total_ms;
		}
	teardown();
	getloadavg(load1, 3);

	/* Summary ratios against peers measured in this run. */
	uint64_t xen_hot50 = 0, sac = 0, idle_bytes = 0, sac_idle = 0;
	for (unsigned i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		if (r->disk)
			continue; /* memory's figures: the VMs without a disk */
		if (r->rate_mb == 50 && strcmp(r->pattern, "hotspot") == 0 &&
		    r->rule == SMG_RULE_XEN)
			xen_hot50 = r->st.downtime_ms;
		if (r->rate_mb == 50 && strcmp(r->pattern, "hotspot") == 0 &&
		    r->rule == SMG_RULE_STOP_AND_COPY)
			sac = r->st.downtime_ms;
		if (r->rate_mb == 0 && r->rule == SMG_RULE_DOWNTIME)
			idle_bytes = r->st.bytes_sent;
		if (r->rate_mb == 0 && r->rule == SMG_RULE_STOP_AND_COPY && r->err == 0)
			sac_idle = r->st.downtime_ms;
	}
	qsort(hot50, nhot, sizeof(hot50[0]), cmp_u64);
	uint64_t med = nhot ? hot50[nhot / 2] : 0;
	double lb = B.link_bps > 0 ? (double)B.nonzero / B.link_bps * 1000.0 : 0;
	double wire = B.nonzero ? (double)idle_bytes / (double)B.nonzero : 0;
	double idle_ms = median_d(idle_ms_v, nidle);
	double tratio = lb > 0 ? idle_ms / lb : 0;
	double both_ms = median_d(dk_ms[0], ndk[0]), disk_ms = median_d(dk_ms[1], ndk[1]);
	double overlap =
	    idle_ms + disk_ms > 0 && both_ms > 0 ? both_ms / (idle_ms + disk_ms) : 0;
	if (B.disk_mb > 0)
		fprintf(stderr,
			"disk of %u MiB: idle VM with it %.0f ms, alone %.0f ms, idle VM "
			"without it %.0f ms: together = %.2f x the sum (1: they take "
			"turns)\n",
			B.disk_mb, both_ms, disk_ms, idle_ms, overlap);
	double cpu_gb = median_d(idle_cpu_v, nidle);
	double cpu_ratio = B.link_cpu_per_gb > 0 ? cpu_gb / B.link_cpu_per_gb : 0;
	/* stop-and-copy of an idle VM: all of RAM inside the pause */
	double sac_rate = sac_idle ? (double)B.nonzero / ((double)sac_idle / 1e3) : 0;
	double sac_ratio = B.link_bps > 0 ? sac_rate / B.link_bps : 0;
	fprintf(stderr,
		"hot-spot 50 MB/s downtime: ours %llu ms (median of %u), Xen rule "
		"%llu ms (%.1fx ours), stop-and-copy %llu ms (%.1fx ours)\n",
		(unsigned long long)med, nhot, (unsigned long long)xen_hot50,
		med ? (double)xen_hot50 / (double)med : 0, (unsigned long long)sac,
		med ? (double)sac / (double)med : 0);
	fprintf(stderr,
		"idle VM: %.3f x non-zero RAM on the wire, %.3f x the lower bound "
		"in time (median of %u), %.3f CPU s/GB both ends = %.2f x the link's; "
		"stop-and-copy moved RAM at %.2f x the link's rate; load average "
		"%.2f at the end\n",
		wire, tratio, nidle, cpu_gb, cpu_ratio, sac_ratio, load1[0]);
	printf("{\"memory_bytes\":%llu,\"channels\":%u,\"link_MBps\":%.1f,"
	       "\"lower_bound_ms\":%.1f,\"downtime_ms_hot50\":%llu,\"downtime_ms_hot50_"
	       "runs\":%u,"
	       "\"downtime_ms_hot50_xen_rule\":%llu,\"downtime_ms_stop_and_copy\":%llu,"
	       "\"wire_ratio_idle\":%.4f,\"time_ratio_idle\":%.4f,\"idle_runs\":%u,"
	       "\"cpu_s_per_GB\":%.4f,\"link_cpu_s_per_GB\":%.4f,"
	       "\"cpu_ratio_vs_link\":%.4f,\"stop_and_copy_rate_vs_link_idle\":%.4f,"
	       "\"loadavg_1m_start\":%.2f,\"loadavg_1m_end\":%.2f,\"nproc\":%ld,"
	       "\"pinned\":%s,\"disk_MiB\":%u,\"time_ms_idle\":%.0f,"
	       "\"time_ms_idle_with_disk\":%.0f,\"time_ms_disk_alone\":%.0f,"
	       "\"disk_with_memory_vs_sum\":%.4f,\"scenarios\":[",
	       (unsigned long long)B.mem, B.channels, B.link_bps / 1e6, lb,
	       (unsigned long long)med, nhot, (unsigned long long)xen_hot50,
	       (unsigned long long)sac, wire, tratio, nidle, cpu_gb, B.link_cpu_per_gb,
	       cpu_ratio, sac_ratio, load0[0], load1[0], sysconf(_SC_NPROCESSORS_ONLN),
	       B.pin ? "true" : "false", B.disk_mb, idle_ms, both_ms, disk_ms, overlap);
	for (unsigned i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		printf("%s{\"pattern\":\"%s\",\"disk\":%s,\"memory_bytes\":%llu,"
		       "\"dirty_rate_MBps\":%u,\"rule\":\"%s\","
		       "\"run\":%u,"
		       "\"downtime_ms\":%llu,\"total_ms\":%llu,\"bytes_sent\":%llu,"
		       "\"rounds\":%u,"
		       "\"converged\":%s,\"throttle\":%u,\"lower_bound_ms\":%.1f,"
		       "\"cpu_s\":%.3f,\"error\":\"%s\"}",
		       i ? "," : "", r->pattern, r->disk ? "true" : "false",
		       (unsigned long long)(r->mem ? r->mem : B.mem), r->rate_mb,
		       rule_names[r->rule], r->run, (unsigned long long)r->st.downtime_ms,
		       (unsigned long long)r->st.total_ms,
		       (unsigned long long)r->st.bytes_sent, r->st.rounds,
		       r->err == 0 && r->st.converged ? "true" : "false", r->st.throttle,
		       r->lower_bound_ms, r->cpu_s, r->err ? smg_strerror(r->err) : "");
	}
	printf("]}\n");
	return 0;
}
