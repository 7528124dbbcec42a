/* `secmig demo`: two sim hosts, a receiver and a sender on loopback; a
 * 1 GiB VM with a running hot-spot workload moves from one to the other,
 * is verified on the destination, and a summary is printed. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attest/attest.h"
#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "simhost/simhost.h"

#define DEMO_WARMUP_MS 1000
#define DEMO_WAIT_MS   10000

struct demo {
	char dir[128];
	char src[160], dst[160];
	pid_t host_src, host_dst, recv;
	struct smg_swtpm tpm_src, tpm_dst; /* one swtpm per host: its "TPM" */
	int recv_out;
	bool json, keep;
	const char *memory, *rate, *workload;
	unsigned channels;
};

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("demo"), fmt, arg);
}

static pid_t spawn(char *const argv[], int *out_fd)
{
	int p[2] = {-1, -1};
	pid_t pid;

	if (out_fd != NULL && pipe2(p, O_CLOEXEC) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		if (out_fd != NULL)
			dup2(p[1], STDOUT_FILENO);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	if (out_fd != NULL) {
		close(p[1]);
		*out_fd = p[0];
	}
	return pid;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int wait_host(const char *dir)
{
	for (unsigned i = 0; i < DEMO_WAIT_MS / 20; i++) {
		int fd;
		if (smg_sim_client_connect(dir, &fd) == SMG_OK) {
			close(fd);
			return SMG_OK;
		}
		sleep_ms(20);
	}
	return SMG_ERR_TIMEOUT;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		return SMG_ERR_SYS;
	}
	fputs(text, f);
	return fclose(f) == 0 ? SMG_OK : SMG_ERR_SYS;
}

/* Two identities made with the transport's keygen, each enrolled at the
 * other host. */
static int make_keys(struct demo *d)
{
	char kp[256], pub_src[SMG_PUBKEY_TEXT_LEN], pub_dst[SMG_PUBKEY_TEXT_LEN],
	    line[256];
	int r;

	snprintf(kp, sizeof(kp), "%s/host.key", d->src);
	if ((r = smg_identity_generate(kp, true, pub_src, sizeof(pub_src))) != SMG_OK)
		return r;
	snprintf(kp, sizeof(kp), "%s/host.key", d->dst);
	if ((r = smg_identity_generate(kp, true, pub_dst, sizeof(pub_dst))) != SMG_OK)
		return r;
	snprintf(kp, sizeof(kp), "%s/peers", d->src);
	snprintf(line, sizeof(line), "demo-dst %s\n", pub_dst);
	if ((r = write_file(kp, line, 0600)) != SMG_OK)
		return r;
	snprintf(kp, sizeof(kp), "%s/peers", d->dst);
	snprintf(line, sizeof(line), "demo-src %s\n", pub_src);
	return write_file(kp, line, 0600);
}

/* What `secmig tpm-enroll` does, for one host: keys in its TPM, and the
 * peer block the other host's policy enrols. */
static int enrol(const struct smg_swtpm *sw, const char *name, char *block, size_t cap)
{
	static const char *const labels[] = {"region=demo"};
	struct smg_tpm *t;
	struct smg_tpm_keys k;
	int r;

	if ((r = smg_tpm_open(sw->tcti, &t)) != SMG_OK)
		return r;
	if ((r = smg_tpm_enroll(t, SMG_PCR_MASK_DEFAULT, false, &k)) == SMG_OK)
		r = smg_policy_format_peer(name, &k, labels, 1, block, cap);
	smg_tpm_close(t);
	return r;
}

/* One swtpm per host, both enrolled, each enrolled at the other: host B
 * accepts demo-vm from demo-src; the VM may only be placed in region=demo. */
static int make_tpms(struct demo *d)
{
	char dir[256], block_src[4096], block_dst[4096], pol[10240];
	int r;

	snprintf(dir, sizeof(dir), "%s/tpm-a", d->dir);
	mkdir(dir, 0700);
	if ((r = smg_swtpm_start(dir, true, &d->tpm_src)) != SMG_OK)
		return r;
	snprintf(dir, sizeof(dir), "%s/tpm-b", d->dir);
	mkdir(dir, 0700);
	if ((r = smg_swtpm_start(dir, true, &d->tpm_dst)) != SMG_OK)
		return r;
	if ((r = enrol(&d->tpm_src, "demo-src", block_src, sizeof(block_src))) !=
		SMG_OK ||
	    (r = enrol(&d->tpm_dst, "demo-dst", block_dst, sizeof(block_dst))) != SMG_OK)
		return r;
	snprintf(dir, sizeof(dir), "%s/policy", d->src);
	snprintf(pol, sizeof(pol), "host demo-src\ntcti %s\nlabel region=demo\n%s",
		 d->tpm_src.tcti, block_dst);
	if ((r = write_file(dir, pol, 0600)) != SMG_OK)
		return r;
	/* Host B's own definition of what it accepts (docs/hostdef.md). */
	snprintf(dir, sizeof(dir), "%s/defs", d->dst);
	snprintf(pol, sizeof(pol),
		 "storage %s\nbridge demo-br\nlimit total memory=64G\n"
		 "vm demo-vm\n  from demo-src\n  memory 64G\n  vtpm yes\n"
		 "  nic bridge=demo-br mac=52:54:00:5e:c0:01 ip=192.0.2.0/24 "
		 "ip=2001:db8::/64\n",
		 d->dst);
	if ((r = write_file(dir, pol, 0600)) != SMG_OK)
		return r;
	snprintf(dir, sizeof(dir), "%s/policy", d->dst);
	snprintf(pol, sizeof(pol),
		 "host demo-dst\ntcti %s\ndefs %s/defs\nlabel region=demo\n%s  send "
		 "demo-vm\n",
		 d->tpm_dst.tcti, d->dst, block_src);
	return write_file(dir, pol, 0600);
}

static int start(struct demo *d, uint16_t *port)
{
	char *hs[] = {"secmig", "--quiet", "sim", "host", "--state-dir", d->src, NULL};
	char *hd[] = {"secmig", "--quiet", "sim", "host", "--state-dir", d->dst, NULL};
	char ch[16], line[256], pol[200];
	size_t n = 0;

	snprintf(ch, sizeof(ch), "%u", d->channels);
	snprintf(pol, sizeof(pol), "%s/policy", d->dst);
	char *rv[] = {
	    "secmig", "--quiet",     "recv", "--listen", "127.0.0.1:0", "--once",
	    "--json", "--state-dir", d->dst, "--name",	 "demo-dst",	"--channels",
	    ch,	      "--policy",    pol,    NULL};
	if ((d->host_src = spawn(hs, NULL)) < 0 || (d->host_dst = spawn(hd, NULL)) < 0)
		return SMG_ERR_SYS;
	if (wait_host(d->src) != SMG_OK || wait_host(d->dst) != SMG_OK) {
		fprintf(stderr, "secmig demo: the sim hosts did not start\n");
		return SMG_ERR_TIMEOUT;
	}
	if ((d->recv = spawn(rv, &d->recv_out)) < 0)
		return SMG_ERR_SYS;
	/* First line: {"event":"listening",...,"port":N} */
	while (n + 1 < sizeof(line)) {
		ssize_t k = read(d->recv_out, line + n, 1);
		if (k <= 0)
			return SMG_ERR_EOF;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	const char *p = strstr(line, "\"port\":");
	if (p == NULL)
		return SMG_ERR_PROTO;
	*port = (uint16_t)strtoul(p + 7, NULL, 10);
	return SMG_OK;
}

static int create_vm(struct demo *d)
{
	char cfg[512], path[256], reply[256];
	int fd, r;

	snprintf(
	    cfg, sizeof(cfg),
	    "name = demo-vm\nmemory = %s\nvcpus = 2\nworkload = %s\ndirty_rate = %s\n"
	    "hot_writes = 90\nhot_pages = 5\nzero_pct = 20\nseed = %ld\n"
	    "nic = mac=52:54:00:5e:c0:01,ipv4=192.0.2.10,ipv6=2001:db8::10\n"
	    "placement = region=demo\nvtpm = yes\n",
	    d->memory, d->workload, d->rate, (long)time(NULL));
	snprintf(path, sizeof(path), "%s/demo-vm.cfg", d->dir);
	if ((r = write_file(path, cfg, 0600)) != SMG_OK)
		return r;
	if ((r = smg_sim_client_connect(d->src, &fd)) != SMG_OK)
		return r;
	r = smg_sim_client_call(fd, "CREATE", cfg, strlen(cfg), reply, sizeof(reply),
				NULL);
	close(fd);
	if (r != SMG_OK)
		fprintf(stderr, "secmig demo: create VM: %s\n", reply);
	return r;
}

static int verify_dst(struct demo *d, char *reply, size_t cap)
{
	int fd, r;

	if ((r = smg_sim_client_connect(d->dst, &fd)) != SMG_OK)
		return r;
	r = smg_sim_client_call(fd, "VERIFY demo-vm", NULL, 0, reply, cap, NULL);
	close(fd);
	return r;
}

static void stop(struct demo *d)
{
	pid_t pids[] = {d->recv, d->host_src, d->host_dst};

	for (size_t i = 0; i < SMG_ARRAY_LEN(pids); i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			waitpid(pids[i], NULL, 0);
		}
	if (d->recv_out >= 0)
		close(d->recv_out);
	if (d->tpm_src.pid > 0)
		smg_swtpm_stop(&d->tpm_src);
	if (d->tpm_dst.pid > 0)
		smg_swtpm_stop(&d->tpm_dst);
	if (!d->keep) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			smg_warn("could not remove %s", d->dir);
	}
}

static int run(struct demo *d, struct smg_cli_out *out, struct smg_mig_stats *st)
{
	struct smg_send_opts so = {.backend = "sim",
				   .domain = "demo-vm",
				   .auto_converge = true,
				   .event = smg_cli_event,
				   .event_arg = out};
	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_session *s;
	char to[64], reply[512], pol[200];
	uint16_t port;
	int r;

	if ((r = make_keys(d)) != SMG_OK || (r = make_tpms(d)) != SMG_OK ||
	    (r = start(d, &port)) != SMG_OK || (r = create_vm(d)) != SMG_OK)
		return r;
	if (!d->json)
		printf(
		    "demo: %s VM with a %s workload dirtying %s/s is running on host A; "
		    "migrating it to host B over 127.0.0.1:%u (TPM-bound session, swtpm "
		    "per host)\n",
		    d->memory, d->workload, d->rate, port);
	sleep_ms(DEMO_WARMUP_MS);
	if ((r = smg_cli_ident_load(&ci, d->src, NULL, NULL, "demo-src")) != SMG_OK)
		return r;
	ci.so.channels = d->channels;
	ci.so.expect_peer = "demo-dst"; /* pinned, like secmig send */
	snprintf(pol, sizeof(pol), "%s/policy", d->src);
	if ((r = smg_cli_tpm_load(&tpm, pol, NULL, &ci.so)) != SMG_OK) {
		smg_cli_ident_free(&ci);
		return r;
	}
	so.policy = tpm.policy;
	if ((r = smg_cli_audit_open(&so.audit, d->src, NULL, &ci, &tpm, pol)) != SMG_OK) {
		smg_cli_tpm_free(&tpm);
		smg_cli_ident_free(&ci);
		return r;
	}
	out->auth = tpm.tpm_mode ? "tpm" : "software";
	snprintf(to, sizeof(to), "127.0.0.1:%u", port);
	so.bopts.state_dir = d->src;
	so.peer = to;
	uint64_t t0 = smg_now_ns();
	r = smg_session_connect("127.0.0.1", port, &ci.so, &s);
	out->handshake_ms = (double)(smg_now_ns() - t0) / 1e6;
	if (r == SMG_OK) {
		r = smg_engine_send(s, &so, st);
		if (r == SMG_OK)
			smg_session_close(s);
		else
			smg_session_free(s);
	}
	smg_audit_close(so.audit);
	smg_cli_tpm_free(&tpm);
	smg_cli_ident_free(&ci);
	if (r != SMG_OK)
		return r;
	int status;
	waitpid(d->recv, &status, 0);
	d->recv = -1;
	r = verify_dst(d, reply, sizeof(reply));
	st->verified = st->verified && r == SMG_OK;
	if (!d->json)
		printf("demo: destination verify: %s%s\n",
		       r == SMG_OK ? "OK " : "FAILED ", reply);
	return r;
}

int smg_cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"memory", required_argument, NULL, 'm'},
	    {"dirty-rate", required_argument, NULL, 'r'},
	    {"workload", required_argument, NULL, 'w'},
	    {"channels", required_argument, NULL, 'c'},
	    {"keep", no_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct demo d = {.recv_out = -1,
			 .memory = "1G",
			 .rate = "50M",
			 .workload = "hotspot",
			 .channels = 2};
	struct smg_cli_out out;
	struct smg_mig_stats st;
	uint64_t v;
	int c, r, code;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jm:r:w:c:kh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			d.json = true;
			break;
		case 'm':
			if (smg_parse_size(optarg, &v) != 0 || v < (1u << 20))
				return usage("--memory: a size like 1G, not '%s'",
					     optarg);
			d.memory = optarg;
			break;
		case 'r':
			if (smg_parse_size(optarg, &v) != 0)
				return usage("--dirty-rate: bytes/s like 50M, not '%s'",
					     optarg);
			d.rate = optarg;
			break;
		case 'w':
			if (strcmp(optarg, "idle") != 0 &&
			    strcmp(optarg, "uniform") != 0 &&
			    strcmp(optarg, "hotspot") != 0)
				return usage(
				    "--workload: idle, uniform or hotspot, not '%s'",
				    optarg);
			d.workload = optarg;
			break;
		case 'c':
			if (smg_parse_size(optarg, &v) != 0 || v == 0 ||
			    v > SMG_CHANNELS_MAX)
				return usage("--channels: 1..8, not '%s'", optarg);
			d.channels = (unsigned)v;
			break;
		case 'k':
			d.keep = true;
			break;
		case 'h':
			printf("%s", smg_cmd_find("demo")->usage);
			return SMG_EXIT_OK;
		default:
			return usage("bad option%s", "");
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	snprintf(d.dir, sizeof(d.dir), "/tmp/secmig-demo.XXXXXX");
	if (mkdtemp(d.dir) == NULL) {
		fprintf(stderr, "secmig demo: mkdtemp: %s\n", strerror(errno));
		return SMG_EXIT_FAIL;
	}
	snprintf(d.src, sizeof(d.src), "%s/host-a", d.dir);
	snprintf(d.dst, sizeof(d.dst), "%s/host-b", d.dir);
	mkdir(d.src, 0700);
	mkdir(d.dst, 0700);
	signal(SIGPIPE, SIG_IGN);
	memset(&st, 0, sizeof(st));
	smg_cli_out_init(&out, stdout, d.json, "send");
	r = run(&d, &out, &st);
	stop(&d);
	st.err = r;
	code = smg_exit_from_err(r);
	smg_cli_result(&out, &st, code);
	if (!d.json && code == SMG_EXIT_OK)
		printf(
		    "demo: downtime %llu ms, total %llu ms, %.1f MB sent for %.1f MB of "
		    "RAM (%.2fx), %u rounds, throughput %.1f MB/s (round rate "
		    "%.1f MB/s), TPM-bound handshake %.1f ms\n",
		    (unsigned long long)st.downtime_ms, (unsigned long long)st.total_ms,
		    (double)st.bytes_sent / 1e6, (double)st.ram_bytes / 1e6,
		    st.ram_bytes ? (double)st.bytes_sent / (double)st.ram_bytes : 0.0,
		    st.rounds,
		    st.total_ms ? (double)st.bytes_sent / 1e3 / (double)st.total_ms : 0.0,
		    st.bandwidth / 1e6, out.handshake_ms);
	return code;
}
