/* An authenticated but rogue sender against a real receiver (secmig recv,
 * sim backend, host definitions): each plan asks for something this host
 * never offered -- a path, an address, a size -- and each must be refused
 * at PLAN (ABORT reason POLICY, the session's exit code 5) before any VM
 * byte, with nothing on the destination touched: no domain on the sim
 * host, no image, no outcome record, and the receiver's RSS within a few
 * MB of idle (issue 13: a 1 GiB claim once cost 1.07 GB of RSS). */
#include <dirent.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "simhost/simhost.h"
#include "transport/transport.h"

static char T[64], B[96], bin[512];
static pid_t host_pid = -1, recv_pid = -1;
static FILE *recv_out;
static struct smg_identity *rogue_id;
static struct smg_peers *rogue_peers;
static uint16_t port;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static pid_t spawn(char *const argv[], int out_fd)
{
	pid_t p = fork();

	if (p == 0) {
		if (out_fd >= 0)
			dup2(out_fd, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	return p;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static const char defs[] =
    "storage %s/images\n"
    "bridge hbr\n"
    "limit vm memory=256M vcpus=4 disks=2 disk=64M\n"
    "limit total memory=512M disk=128M sessions=4\n"
    "vm web-*\n"
    "  from src\n"
    "  nic bridge=hbr mac=52:54:00:10:00:00/40 ip=10.1.0.0/24 ip=fd00:1::/64\n"
    "vm tiny\n"
    "  memory 16M\n"
    "  nic bridge=hbr mac=52:54:00:20:00:00/40 ip=10.2.0.0/24\n";

static int setup(void)
{
	char pub[SMG_PUBKEY_TEXT_LEN], path[160];
	int fds[2];

	snprintf(T, sizeof(T), "/tmp/smg-rogue.XXXXXX");
	if (mkdtemp(T) == NULL)
		return -1;
	snprintf(B, sizeof(B), "%s/b", T);
	if (sh("mkdir -p %s/images && %s keygen %s/host.key >/dev/null", B, bin, B) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/rogue.key", T);
	if (smg_identity_generate(path, false, pub, sizeof(pub)) != 0 ||
	    smg_identity_load(path, &rogue_id) != 0)
		return -1;
	if (sh("echo \"src %s\" > %s/peers && chmod 600 %s/peers", pub, B, B) != 0 ||
	    sh("echo \"dst $(cat %s/host.key.pub)\" > %s/rpeers", B, T) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/rpeers", T);
	if (smg_peers_load(path, &rogue_peers) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/defs", B);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f, defs, B);
	fclose(f);
	char *hargv[] = {bin, "--quiet", "sim", "host", "--state-dir", B, NULL};
	host_pid = spawn(hargv, -1);
	snprintf(path, sizeof(path), "%s/sim.sock", B);
	for (int i = 0; i < 200 && access(path, F_OK) != 0; i++)
		usleep(50000);
	/* A service, not --once: one process, one RSS, many rogue sessions. */
	char defs_path[160];
	snprintf(defs_path, sizeof(defs_path), "%s/defs", B);
	char *rargv[] = {bin,
			 "--quiet",
			 "recv",
			 "--listen",
			 "127.0.0.1:0",
			 "--json",
			 "--state-dir",
			 B,
			 "--name",
			 "dst",
			 "--insecure-software-mode",
			 "--defs",
			 defs_path,
			 NULL};
	if (pipe(fds) != 0)
		return -1;
	/* Under ASan, freed memory sits in quarantine and reads as RSS: keep
	 * it small so what is measured is what the receiver holds. */
	char asan[512];
	snprintf(asan, sizeof(asan), "%s:quarantine_size_mb=1",
		 getenv("ASAN_OPTIONS") != NULL ? getenv("ASAN_OPTIONS") : "");
	setenv("ASAN_OPTIONS", asan, 1);
	recv_pid = spawn(rargv, fds[1]);
	close(fds[1]);
	recv_out = fdopen(fds[0], "r");
	char line[512];
	if (recv_out == NULL || fgets(line, sizeof(line), recv_out) == NULL ||
	    sscanf(strstr(line, "\"port\":") ? strstr(line, "\"port\":") : "",
		   "\"port\":%hu", &port) != 1)
		return -1;
	return 0;
}

static void teardown(void)
{
	if (recv_pid > 0) {
		kill(recv_pid, SIGTERM);
		waitpid(recv_pid, NULL, 0);
	}
	if (host_pid > 0) {
		kill(host_pid, SIGTERM);
		waitpid(host_pid, NULL, 0);
	}
	if (recv_out != NULL)
		fclose(recv_out);
	smg_identity_free(rogue_id);
	smg_peers_free(rogue_peers);
	if (T[0] != '\0')
		sh("rm -rf %s", T);
}

struct plan_spec {
	const char *what;
	const char *domain;
	const char *config; /* sim config text */
	uint64_t memory;
	uint32_t vcpus;
	size_t n_disks;
	uint64_t disk_size;
	const char *mac; /* NULL: no NIC */
	const char *ip;
	const char *want; /* in the refusal reason */
};

static void fill_nic(Smg__NicSpec *n, uint8_t *mac, uint8_t *ip4, ProtobufCBinaryData *v4,
		     const struct plan_spec *ps)
{
	smg__nic_spec__init(n);
	smg_mac_parse(ps->mac, mac);
	n->mac = (ProtobufCBinaryData){6, mac};
	if (ps->ip != NULL && sscanf(ps->ip, "%hhu.%hhu.%hhu.%hhu", &ip4[0], &ip4[1],
				     &ip4[2], &ip4[3]) == 4) {
		*v4 = (ProtobufCBinaryData){4, ip4};
		n->n_ipv4 = 1;
		n->ipv4 = v4;
	}
}

/* One rogue session: connect, send the plan, read the answer. Returns the
 * ABORT's reason (or -1; 100 if the plan was accepted, and then *keep gets
 * the session when keep is not NULL) and copies its detail. */
static int rogue_keep(const struct plan_spec *ps, char *detail, size_t dlen,
		      struct smg_session **keep)
{
	struct smg_session_opts so = {.identity = rogue_id,
				      .peers = rogue_peers,
				      .name = "src",
				      .expect_peer = "dst",
				      .channels = 1};
	Smg__Plan p = SMG__PLAN__INIT;
	Smg__NicSpec nic, *nicp = &nic;
	Smg__DiskSpec *disks = NULL, **diskp = NULL;
	ProtobufCBinaryData v4;
	uint8_t mac[6], ip4[4], hash[32], idb[16];
	char id[33];
	struct smg_session *s = NULL;
	struct smg_frame f;
	int reason = -1;

	detail[0] = '\0';
	if (smg_session_connect("127.0.0.1", port, &so, &s) != 0)
		return -2;
	randombytes_buf(idb, sizeof(idb));
	for (int i = 0; i < 16; i++)
		snprintf(id + 2 * i, 3, "%02x", idb[i]);
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)ps->config,
			   strlen(ps->config), NULL, 0);
	p.migration_id = id;
	p.domain_name = (char *)ps->domain;
	p.domain_config =
	    (ProtobufCBinaryData){strlen(ps->config), (uint8_t *)ps->config};
	p.config_hash = (ProtobufCBinaryData){32, hash};
	p.memory_bytes = ps->memory;
	p.page_size = 4096;
	p.vcpus = ps->vcpus;
	p.backend = "sim";
	if (ps->mac != NULL) {
		fill_nic(&nic, mac, ip4, &v4, ps);
		p.n_nics = 1;
		p.nics = &nicp;
	}
	if (ps->n_disks > 0) {
		disks = calloc(ps->n_disks, sizeof(*disks));
		diskp = calloc(ps->n_disks, sizeof(*diskp));
		for (size_t i = 0; disks != NULL && diskp != NULL && i < ps->n_disks;
		     i++) {
			smg__disk_spec__init(&disks[i]);
			disks[i].index = (uint32_t)i;
			disks[i].size = ps->disk_size;
			disks[i].chunk_size = 1u << 20;
			diskp[i] = &disks[i];
		}
		p.n_disks = ps->n_disks;
		p.disks = diskp;
		p.storage_mode = SMG__STORAGE_MODE__STORAGE_WAIO;
	}
	if (smg_chan_send_msg(s, 0, SMG_FT_PLAN, &p.base) == 0 &&
	    smg_chan_flush(s, 0) == 0) {
		/* PLAN_ACK{refused}, then ABORT with the reason */
		while (smg_chan_recv(s, 0, &f) == 0) {
			ProtobufCMessage *m;
			if (f.type == SMG_FT_PLAN_ACK && keep != NULL &&
			    smg_frame_unpack(&f, &smg__plan_ack__descriptor, &m) == 0) {
				bool ok = ((Smg__PlanAck *)m)->accepted;
				smg_frame_msg_free(m);
				if (ok) {
					*keep = s;
					s = NULL;
					reason = 100;
					break;
				}
			}
			if (f.type != SMG_FT_ABORT)
				continue;
			if (smg_frame_unpack(&f, &smg__abort__descriptor, &m) == 0) {
				Smg__Abort *a = (Smg__Abort *)m;
				reason = a->reason;
				snprintf(detail, dlen, "%s", a->detail);
				smg_frame_msg_free(m);
			}
			break;
		}
	}
	smg_session_free(s);
	free(disks);
	free(diskp);
	return reason;
}

static int rogue(const struct plan_spec *ps, char *detail, size_t dlen)
{
	return rogue_keep(ps, detail, dlen, NULL);
}

/* The receiver's result line for the session that just ended. */
static int recv_exit_code(void)
{
	char line[2048];
	int code = -1;

	while (fgets(line, sizeof(line), recv_out) != NULL) {
		const char *c = strstr(line, "\"exit_code\":");
		if (strstr(line, "\"event\":\"result\"") != NULL && c != NULL) {
			sscanf(c, "\"exit_code\":%d", &code);
			break;
		}
	}
	return code;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static bool host_empty(void)
{
	char reply[1024];
	int fd;

	if (smg_sim_client_connect(B, &fd) != 0)
		return false;
	int r = smg_sim_client_call(fd, "LIST", NULL, 0, reply, sizeof(reply), NULL);
	close(fd);
	return r == 0 && reply[0] == '\0';
}

#define CFG(name, mem, extra) "name = " name "\nmemory = " mem "\nvcpus = 1\n" extra

static const struct plan_spec cases[] = {
    {"disk path chosen by the sender", "web-1",
     CFG("web-1", "16M",
	 "nic = mac=52:54:00:10:00:01,ipv4=10.1.0.5\ndisk = /etc/shadow\n"),
     16 << 20, 1, 0, 0, "52:54:00:10:00:01", "10.1.0.5", "a disk that does not travel"},
    {"MAC outside the definition", "web-2",
     CFG("web-2", "16M", "nic = mac=52:54:00:99:00:01,ipv4=10.1.0.5\n"), 16 << 20, 1, 0,
     0, "52:54:00:99:00:01", "10.1.0.5", "MAC 52:54:00:99:00:01 is not one"},
    {"IP outside the definition", "web-3",
     CFG("web-3", "16M", "nic = mac=52:54:00:10:00:03,ipv4=10.9.9.9\n"), 16 << 20, 1, 0,
     0, "52:54:00:10:00:03", "10.9.9.9", "IPv4 10.9.9.9 is not one"},
    {"no definition for the domain", "db-1", CFG("db-1", "16M", ""), 16 << 20, 1, 0, 0,
     NULL, NULL, "no definition"},
    {"64 GiB of memory", "web-4", CFG("web-4", "64G", ""), 64ull << 30, 1, 0, 0, NULL,
     NULL, "memory: 65536 MiB requested"},
    {"10^6 vCPUs", "web-5", CFG("web-5", "16M", ""), 16 << 20, 1000000, 0, 0, NULL, NULL,
     "vcpus: 1000000 requested"},
    {"10^4 disks of 256 GiB", "web-6", CFG("web-6", "16M", ""), 16 << 20, 1, 10000,
     256ull << 30, NULL, NULL, "disks: 10000 requested"},
    {"one 256 GiB disk", "web-7", CFG("web-7", "16M", "disk = /x\n"), 16 << 20, 1, 1,
     256ull << 30, NULL, NULL, "disk 0: 262144 MiB requested"},
    {"over the VM's own definition", "tiny", CFG("tiny", "32M", ""), 32 << 20, 1, 0, 0,
     NULL, NULL, "memory: 32 MiB requested, this host offers at most 16"},
    {"config and plan disagree on the NIC", "web-8",
     CFG("web-8", "16M", "nic = mac=52:54:00:10:00:08,ipv4=10.1.0.5\n"), 16 << 20, 1, 0,
     0, "52:54:00:10:00:09", "10.1.0.5", "NIC 0 of the config differs"},
};

/* The sim destination in this process: a 256 MiB skeleton costs no RSS
 * at create, and zero pages -- for frames never written, or sent again
 * and again -- allocate nothing (issue 13: PLAN memory was populated at
 * create; zero records forced a memset per page each time). */
static void zero_pages_cost(void)
{
	static struct smg_hostdef_vm def = {.pattern = "zero-test"};
	struct smg_backend_opts bo = {.state_dir = B};
	struct smg_backend *be = NULL;
	struct smg_domain_info info;
	struct smg_vm_build b = {.def = &def, .memory_bytes = 256 << 20, .vcpus = 1};
	const char *cfg = "name = zero-test\nmemory = 256M\nvcpus = 1\n";
	static uint64_t pfns[4096];
	static uint8_t page[4096];
	long before, created, zeroed;

	before = rss_kb(getpid());
	CHECK_EQ(smg_backend_open("sim", &bo, &be), 0);
	if (be == NULL)
		return;
	CHECK_EQ(be->ops->domain_create(be, (const uint8_t *)cfg, strlen(cfg), &b, &info),
		 0);
	created = rss_kb(getpid());
	for (int pass = 0; pass < 3; pass++)
		for (uint64_t p = 0; p < info.pages; p += 4096) {
			for (unsigned i = 0; i < 4096; i++)
				pfns[i] = p + i;
			CHECK_EQ(be->ops->write_pages(be, pfns, 4096, NULL, true), 0);
		}
	/* a page of data, then zero it three times */
	memset(page, 0xa5, sizeof(page));
	CHECK_EQ(be->ops->write_pages(be, pfns, 1, page, false), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(be->ops->write_pages(be, pfns, 1, NULL, true), 0);
	zeroed = rss_kb(getpid());
	printf("sim skeleton of 256 MiB: RSS %ld kB before, %ld after create, %ld after "
	       "3 x 65536 zero pages\n",
	       before, created, zeroed);
	CHECK(created - before < 16 * 1024);
	CHECK(zeroed - before < 16 * 1024);
	be->ops->destroy(be);
	smg_backend_close(be);
}

int main(void)
{
	const char *b = getenv("SECMIG");
	long idle, peak = 0;

	if (b == NULL) {
		printf("SECMIG not set: skipped\n");
		return T_SKIP;
	}
	snprintf(bin, sizeof(bin), "%s", b);
	smg_log_set_level(SMG_LOG_ERROR);
	if (sodium_init() < 0 || setup() != 0) {
		fprintf(stderr, "setup failed\n");
		teardown();
		return 1;
	}
	idle = rss_kb(recv_pid);
	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		char detail[512], images[160], outcomes[160];
		int reason = rogue(&cases[i], detail, sizeof(detail));
		int code = recv_exit_code();
		long rss = rss_kb(recv_pid);

		snprintf(images, sizeof(images), "%s/images", B);
		snprintf(outcomes, sizeof(outcomes), "%s/outcomes", B);
		printf("%-38s -> reason %d exit %d rss %ld kB: %s\n", cases[i].what,
		       reason, code, rss, detail);
		CHECK_EQ(reason, SMG__ABORT_REASON__ABORT_POLICY);
		CHECK_EQ(code, 5);
		CHECK(strstr(detail, cases[i].want) != NULL);
		CHECK(host_empty());
		CHECK_EQ(count_entries(images), 0);
		CHECK_EQ(count_entries(outcomes), 0);
		if (rss > peak)
			peak = rss;
	}
	/* Capacity is what the host holds at once: two 256 MiB VMs fill
	 * "limit total memory=512M", a third asks for more than is left. */
	static const struct plan_spec big[] = {
	    {"first 256 MiB VM", "web-a", CFG("web-a", "256M", ""), 256 << 20, 1, 0, 0,
	     NULL, NULL, ""},
	    {"second 256 MiB VM", "web-b", CFG("web-b", "256M", ""), 256 << 20, 1, 0, 0,
	     NULL, NULL, ""},
	    {"third VM over the total", "web-c", CFG("web-c", "16M", ""), 16 << 20, 1, 0,
	     0, NULL, NULL,
	     "capacity: 16 MiB of memory requested, 0 MiB of 512 MiB free"},
	};
	struct smg_session *held[2] = {NULL, NULL};
	char detail[512];
	CHECK_EQ(rogue_keep(&big[0], detail, sizeof(detail), &held[0]), 100);
	CHECK_EQ(rogue_keep(&big[1], detail, sizeof(detail), &held[1]), 100);
	CHECK_EQ(rogue(&big[2], detail, sizeof(detail)), SMG__ABORT_REASON__ABORT_POLICY);
	printf("%-38s -> %s\n", big[2].what, detail);
	CHECK(strstr(detail, big[2].want) != NULL);
	CHECK_EQ(recv_exit_code(), 5);
	long held_rss = rss_kb(recv_pid);
	printf("receiver RSS with two accepted 256 MiB plans and no page sent: %ld kB\n",
	       held_rss);
	/* Memory comes as pages do: populated, the two claims would cost
	 * 512 MiB. What they may cost is fixed per session (channel receive
	 * buffers sized for protocol v2's 1 MiB frames, their ASan shadow,
	 * threads: ~4.5 MB per session, measured with 16 MiB plans) plus each
	 * VM's Merkle leaves (2 MiB per 256 MiB of guest): ~20 MB here. */
	CHECK(held_rss - idle < 32 * 1024);
	smg_session_free(held[0]);
	smg_session_free(held[1]);
	zero_pages_cost();
	/* Within a few MB of idle: nothing was sized by a claim. */
	printf("receiver RSS: idle %ld kB, peak after the rogue plans %ld kB\n", idle,
	       peak);
	CHECK(idle > 0 && peak - idle < 8 * 1024);
	teardown();
	return check_result("test_engine_rogue_plan");
}
