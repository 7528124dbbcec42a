/* A rogue source against the real destination: an authenticated peer,
 * built from the transport API (real loopback session, real keys), that
 * sends frames valid in type but impossible in sequence to `secmig recv`
 * (the sim backend on a real sim host). Each row of the table must end the
 * receiver's session at once with a protocol error: ABORT with reason
 * PROTOCOL to the peer, exit 10, the incoming copy discarded, and the
 * receiver gone (--once) or its only slot free again (service mode). A
 * control row plays the whole valid sequence (the receiver resumes the
 * VM), so the rogue is known to speak the protocol; a PING-only row and a
 * row of valid frames sent for ever check the liveness rule's progress limit
 * and session ceiling (docs/protocol.md, "Liveness"): exit 6, no hang.
 *
 * The receiver's idle limit is long (RECV_IDLE_MS) and the rogue waits at
 * most ROGUE_WAIT_MS for the ABORT: a receiver that hangs or waits for a
 * timeout instead of failing at once fails its row. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit/audit.h"
#include "base/base.h"
#include "check.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define RECV_IDLE_MS	 "60000" /* receiver's --io-timeout: far above any row */
#define RECV_PROGRESS_MS "2000"	 /* receiver's --progress-timeout (PING row) */
#define RECV_CEILING_MS	 "6000"	 /* its --session-timeout (ceiling row) */
#define ROGUE_WAIT_MS	 20000	 /* how long the rogue waits for the verdict */
#define REAP_TRIES	 400	 /* x 50 ms: the receiver must exit by then */
#define VM_NAME		 "rogue"
#define VM_MEM		 (4u << 20)
#define PAGE		 4096u
#define PFN_CH0		 0   /* (pfn >> 9) % 2 == 0 */
#define PFN_CH1		 512 /* (pfn >> 9) % 2 == 1 */
#define SCRIPT_MAX	 12
#define SERVICE_BUSY_MAX 100 /* x 50 ms: retries while the slot frees */

static const char *secmig;
static char dir[64], dir_a[96], dir_b[96], defs_b[128];
static pid_t host_a = -1, host_b = -1;
static struct smg_identity *id_src;
static struct smg_peers *peers_src;
static uint8_t *config, *state;
static size_t config_len, state_len;
static uint32_t vcpus;
static uint8_t config_hash[SMG_DIGEST_LEN], state_hash[SMG_DIGEST_LEN];
static uint8_t zero_root[SMG_DIGEST_LEN];

/* ---- the rogue's steps ------------------------------------------------------ */
enum op {
	END = 0,
	RS,	  /* ROUND_START{a, final b} on ch0 */
	RE,	  /* ROUND_END{a} on channel c */
	ZP,	  /* ZERO_PAGES tagged round a, one page of channel c */
	DS,	  /* DEVICE_STATE (the real saved state) */
	VT,	  /* VTPM_STATE */
	MF,	  /* MANIFEST (valid for a VM left all zero) */
	WAIT_RDY, /* read READY on ch0 */
	CM,	  /* COMMIT */
	PLAN,	  /* a second PLAN */
	RDY,	  /* READY, a destination's frame */
	PINGS,	  /* PINGs only, until the receiver gives up */
	FOREVER,  /* valid pages of round 0 on ch0, until the receiver gives up */
};

struct step {
	enum op op;
	unsigned c;
	uint32_t a;
	bool b;
};

enum want { W_PROTOCOL, W_DONE, W_TIMEOUT };

struct row {
	const char *what;
	enum want want;
	const char *recv_opt; /* one more receiver option, or NULL */
	struct step s[SCRIPT_MAX];
};

/* Steps, for the table below. */
#define RS_(r, fin)           \
	{                     \
		RS, 0, r, fin \
	}
#define RE_(c, r)               \
	{                       \
		RE, c, r, false \
	}
#define ZP_(c, r)               \
	{                       \
		ZP, c, r, false \
	}
#define OP_(op)                 \
	{                       \
		op, 0, 0, false \
	}
/* The valid stop-and-copy: final round 0 on both channels. */
#define FINAL0 RS_(0, true), RE_(0, 0), RE_(1, 0)

static const struct row rows[] = {
    {"valid migration (control)",
     W_DONE,
     NULL,
     {RS_(0, false), ZP_(0, 0), ZP_(1, 0), RE_(0, 0), RE_(1, 0), RS_(1, true), RE_(0, 1),
      RE_(1, 1), OP_(DS), OP_(MF), OP_(WAIT_RDY), OP_(CM)}},
    /* The case: on channel 0 it can never be waited for. */
    {"ROUND_END for a future round on channel 0",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), RE_(0, 1)}},
    {"ROUND_END before any ROUND_START (channel 0)", W_PROTOCOL, NULL, {RE_(0, 0)}},
    {"ROUND_END twice (channel 0)",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), RE_(0, 0), RE_(0, 0)}},
    {"ROUND_END for a future round on a data channel",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), RE_(1, 1)}},
    {"ROUND_END twice on a data channel",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), RE_(1, 0), RE_(1, 0)}},
    {"pages of a future round (channel 0)", W_PROTOCOL, NULL, {RS_(0, false), ZP_(0, 1)}},
    {"pages of a future round on a data channel",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), ZP_(1, 1)}},
    {"pages of a round the data channel has ended",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), RE_(1, 0), ZP_(1, 0)}},
    {"pages before any ROUND_START (channel 0)", W_PROTOCOL, NULL, {ZP_(0, 0)}},
    {"ROUND_START out of order (1 first)", W_PROTOCOL, NULL, {RS_(1, false)}},
    {"ROUND_START twice", W_PROTOCOL, NULL, {RS_(0, false), RS_(0, false)}},
    {"ROUND_START before channel 0 ended the round",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), RS_(1, false)}},
    {"ROUND_START after the final round", W_PROTOCOL, NULL, {FINAL0, RS_(1, false)}},
    {"DEVICE_STATE before the final round", W_PROTOCOL, NULL, {RS_(0, false), OP_(DS)}},
    {"DEVICE_STATE twice", W_PROTOCOL, NULL, {FINAL0, OP_(DS), OP_(DS)}},
    {"VTPM_STATE before the final round (VM without vTPM)",
     W_PROTOCOL,
     NULL,
     {RS_(0, false), OP_(VT)}},
    {"MANIFEST before the final round", W_PROTOCOL, NULL, {RS_(0, false), OP_(MF)}},
    {"MANIFEST before DEVICE_STATE", W_PROTOCOL, NULL, {FINAL0, OP_(MF)}},
    {"MANIFEST twice",
     W_PROTOCOL,
     NULL,
     {FINAL0, OP_(DS), OP_(MF), OP_(WAIT_RDY), OP_(MF)}},
    {"COMMIT before READY", W_PROTOCOL, NULL, {RS_(0, false), OP_(CM)}},
    {"pages after the final round (channel 0)", W_PROTOCOL, NULL, {FINAL0, ZP_(0, 0)}},
    {"pages after the final round on a data channel",
     W_PROTOCOL,
     NULL,
     {FINAL0, ZP_(1, 0), OP_(DS), OP_(MF)}},
    {"PLAN twice", W_PROTOCOL, NULL, {OP_(PLAN)}},
    {"READY from the source", W_PROTOCOL, NULL, {OP_(RDY)}},
    {"PINGs only (no progress)", W_TIMEOUT, NULL, {OP_(PINGS)}},
    {"valid frames for ever (session ceiling)",
     W_TIMEOUT,
     "--session-timeout=" RECV_CEILING_MS,
     {RS_(0, false), OP_(FOREVER)}},
};

/* ---- processes -------------------------------------------------------------- */
static pid_t spawn(const char *const argv[], int out_fd)
{
	pid_t p = fork();

	if (p == 0) {
		if (out_fd >= 0)
			dup2(out_fd, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return p;
}

static int run(const char *const argv[])
{
	int st;
	pid_t p = spawn(argv, -1);

	if (p < 0 || waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Exit code of pid, waiting at most REAP_TRIES x 50 ms; -1 if it hung. */
static int reap(pid_t pid)
{
	int st;

	for (int i = 0; i < REAP_TRIES; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		nanosleep(&(struct timespec){0, 50000000}, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

/* Read what the receiver printed so far (non-blocking) into buf. */
static void drain_out(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n;

	while (*len + 1 < cap && (n = read(fd, buf + *len, cap - 1 - *len)) > 0)
		*len += (size_t)n;
	buf[*len] = '\0';
}

struct recv_proc {
	pid_t pid;
	int out; /* its stdout, non-blocking */
	uint16_t port;
	char text[16384];
	size_t len;
};

static int recv_start(struct recv_proc *rp, bool once, const char *opt)
{
	const char *argv[] = {secmig,
			      "--quiet",
			      "recv",
			      "--listen",
			      "127.0.0.1:0",
			      "--json",
			      "--state-dir",
			      dir_b,
			      "--name",
			      "dst",
			      "--insecure-software-mode",
			      "--defs",
			      defs_b,
			      "--io-timeout",
			      RECV_IDLE_MS,
			      "--progress-timeout",
			      RECV_PROGRESS_MS,
			      once ? "--once" : "--max-concurrent",
			      once ? opt : "1",
			      NULL};
	int pfd[2];
	char *p;

	memset(rp, 0, sizeof(*rp));
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	rp->pid = spawn(argv, pfd[1]);
	close(pfd[1]);
	rp->out = pfd[0];
	fcntl(rp->out, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 200; i++) {
		struct pollfd q = {rp->out, POLLIN, 0};
		poll(&q, 1, 50);
		drain_out(rp->out, rp->text, sizeof(rp->text), &rp->len);
		if ((p = strstr(rp->text, "\"port\":")) != NULL) {
			rp->port = (uint16_t)atoi(p + 7);
			return 0;
		}
	}
	return -1;
}

/* The receiver's verdict for migration id: the exit_code of its result line. */
static int result_code(struct recv_proc *rp, const char *id)
{
	char *p;

	drain_out(rp->out, rp->text, sizeof(rp->text), &rp->len);
	for (p = rp->text; (p = strstr(p, "\"event\":\"result\"")) != NULL; p++) {
		char *end = strchr(p, '\n'), *code = strstr(p, "\"exit_code\":");
		if (end != NULL && code != NULL && code < end && strstr(p, id) != NULL &&
		    strstr(p, id) < end)
			return atoi(code + 12);
	}
	return -1;
}

/* ---- setup ------------------------------------------------------------------ */
static int wait_sock(const char *d)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/sim.sock", d);
	for (int i = 0; i < 200; i++) {
		if (stat(path, &st) == 0)
			return 0;
		nanosleep(&(struct timespec){0, 50000000}, NULL);
	}
	return -1;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int r = f != NULL && fputs(text, f) >= 0 ? 0 : -1;

	if (f != NULL && fclose(f) != 0)
		r = -1;
	return r == 0 ? chmod(path, 0600) : -1;
}

/* Keys and peers for "src" (the rogue, on A) and "dst" (B), two sim hosts,
 * a VM on A whose config and saved device state the rogue sends. */
static int setup(void)
{
	char key[160], pub_a[SMG_PUBKEY_TEXT_LEN], pub_b[SMG_PUBKEY_TEXT_LEN];
	char text[512], path[160];
	struct smg_backend_opts bo = {0};
	struct smg_backend *be = NULL;
	struct smg_domain_info info;
	struct smg_merkle *mk;
	int r;

	snprintf(dir, sizeof(dir), "/tmp/smg-rogue.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dir_a, sizeof(dir_a), "%s/a", dir);
	snprintf(dir_b, sizeof(dir_b), "%s/b", dir);
	if (mkdir(dir_a, 0700) != 0 || mkdir(dir_b, 0700) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s/host.key", dir_a);
	if (smg_identity_generate(key, false, pub_a, sizeof(pub_a)) != 0 ||
	    smg_identity_load(key, &id_src) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s/host.key", dir_b);
	if (smg_identity_generate(key, false, pub_b, sizeof(pub_b)) != 0)
		return -1;
	snprintf(text, sizeof(text), "src %s\n", pub_a);
	snprintf(path, sizeof(path), "%s/peers", dir_b);
	if (write_file(path, text) != 0)
		return -1;
	snprintf(text, sizeof(text), "dst %s\n", pub_b);
	if (smg_peers_parse(text, strlen(text), &peers_src) != 0)
		return -1;
	/* B's definitions (docs/hostdef.md): the rogue's VM is one B takes. */
	snprintf(defs_b, sizeof(defs_b), "%s/defs", dir_b);
	snprintf(text, sizeof(text), "storage %s\nvm %s\n  from src\n", dir_b, VM_NAME);
	if (write_file(defs_b, text) != 0)
		return -1;

	host_a = spawn((const char *const[]){secmig, "--quiet", "sim", "host",
					     "--state-dir", dir_a, NULL},
		       -1);
	host_b = spawn((const char *const[]){secmig, "--quiet", "sim", "host",
					     "--state-dir", dir_b, NULL},
		       -1);
	if (wait_sock(dir_a) != 0 || wait_sock(dir_b) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/vm.cfg", dir);
	snprintf(text, sizeof(text),
		 "name = %s\nmemory = %uM\nvcpus = 2\nworkload = idle\nseed = 7\n",
		 VM_NAME, VM_MEM >> 20);
	if (write_file(path, text) != 0 ||
	    run((const char *const[]){secmig, "--quiet", "sim", "--state-dir", dir_a,
				      "create", path, NULL}) != 0)
		return -1;
	/* The source side of the backend, as the real sender uses it. */
	bo.state_dir = dir_a;
	if ((r = smg_backend_open("sim", &bo, &be)) != 0 ||
	    (r = be->ops->domain_open(be, VM_NAME, &info)) != 0 ||
	    (r = be->ops->pause(be)) != 0 ||
	    (r = be->ops->save_state(be, &state, &state_len)) != 0) {
		smg_backend_close(be);
		return -1;
	}
	be->ops->unpause(be);
	config_len = info.config_len;
	config = malloc(config_len);
	memcpy(config, info.config, config_len);
	vcpus = info.vcpus;
	smg_backend_close(be);
	crypto_generichash(config_hash, sizeof(config_hash), config, config_len, NULL, 0);
	crypto_generichash(state_hash, sizeof(state_hash), state, state_len, NULL, 0);
	/* The destination's memory root when no page has arrived: all zero. */
	if (smg_merkle_new(VM_MEM / PAGE, PAGE, &mk) != 0)
		return -1;
	smg_merkle_root(mk, zero_root);
	smg_merkle_free(mk);
	return 0;
}

static void teardown(void)
{
	char cmd[128];

	stop(&host_a);
	stop(&host_b);
	smg_identity_free(id_src);
	smg_peers_free(peers_src);
	free(config);
	free(state);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* ---- one row ---------------------------------------------------------------- */
struct rogue {
	struct smg_session *s;
	char id[SMG_MIGRATION_ID_LEN + 1];
	uint8_t manifest_hash[SMG_DIGEST_LEN];
};

static int send_plan(struct rogue *g)
{
	Smg__Plan p = SMG__PLAN__INIT;

	p.migration_id = g->id;
	p.domain_name = VM_NAME;
	p.domain_config = (ProtobufCBinaryData){config_len, config};
	p.memory_bytes = VM_MEM;
	p.page_size = PAGE;
	p.vcpus = vcpus;
	p.backend = "sim";
	p.config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, config_hash};
	return smg_chan_send_msg(g->s, 0, SMG_FT_PLAN, &p.base);
}

/* Next frame from the receiver on the control channel. */
static int recv_ctrl(struct rogue *g, struct smg_frame *f)
{
	return smg_chan_recv(g->s, 0, f);
}

static int plan_accepted(struct rogue *g, bool *busy)
{
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	*busy = false;
	if ((r = send_plan(g)) != 0 || (r = recv_ctrl(g, &f)) != 0)
		return r;
	if (f.type == SMG_FT_ABORT) {
		if (smg_frame_unpack(&f, &smg__abort__descriptor, &m) == 0) {
			*busy = ((Smg__Abort *)m)->reason ==
				SMG__ABORT_REASON__ABORT_RESOURCES;
			smg_frame_msg_free(m);
		}
		return SMG_ERR_ABORTED;
	}
	if (f.type != SMG_FT_PLAN_ACK ||
	    smg_frame_unpack(&f, &smg__plan_ack__descriptor, &m) != 0)
		return SMG_ERR_STATE;
	r = ((Smg__PlanAck *)m)->accepted ? 0 : SMG_ERR_ABORTED;
	smg_frame_msg_free(m);
	return r;
}

static int send_zero(struct rogue *g, unsigned c, uint32_t round)
{
	uint8_t *p;
	int r;

	if ((r = smg_chan_bulk_begin(g->s, c, SMG_PAGES_HDR_LEN + 8, &p)) != 0)
		return r;
	smg_pages_put_hdr(p, round, 1);
	smg_store_be64(p + SMG_PAGES_HDR_LEN, c == 0 ? PFN_CH0 : PFN_CH1);
	return smg_chan_bulk_submit(g->s, c, SMG_FT_ZERO_PAGES, SMG_PAGES_HDR_LEN + 8);
}

static int send_manifest(struct rogue *g)
{
	Smg__Manifest mf = SMG__MANIFEST__INIT;
	struct smg_audit_mig am;
	uint8_t *packed;
	size_t len;

	mf.migration_id = g->id;
	mf.memory_root = (ProtobufCBinaryData){SMG_DIGEST_LEN, zero_root};
	mf.config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, config_hash};
	mf.device_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, state_hash};
	mf.transcript = (ProtobufCBinaryData){SMG_TRANSCRIPT_LEN,
					      (uint8_t *)smg_session_transcript(g->s)};
	/* Signed as a real source signs it (audit/): the destination refuses
	 * an unsigned manifest with an integrity error before READY. */
	smg_audit_mig_init(&am, true);
	if (smg_audit_manifest_sign(&am, g->s, &mf) != SMG_OK)
		return SMG_ERR_INTERNAL;
	len = protobuf_c_message_get_packed_size(&mf.base);
	if ((packed = malloc(len)) == NULL)
		return SMG_ERR_NOMEM;
	protobuf_c_message_pack(&mf.base, packed);
	crypto_generichash(g->manifest_hash, SMG_DIGEST_LEN, packed, len, NULL, 0);
	free(packed);
	return smg_chan_send_msg(g->s, 0, SMG_FT_MANIFEST, &mf.base);
}

static int wait_ready(struct rogue *g)
{
	struct smg_frame f;
	int r;

	if ((r = recv_ctrl(g, &f)) != 0)
		return r;
	return f.type == SMG_FT_READY ? 0 : SMG_ERR_STATE;
}

static int pings(struct rogue *g)
{
	/* Keep pinging both channels until the receiver drops the session. */
	for (int i = 0; i < ROGUE_WAIT_MS / 100; i++) {
		int r = smg_chan_send(g->s, i % 2, SMG_FT_PING, NULL, 0);
		if (r == 0)
			r = smg_chan_flush(g->s, i % 2);
		if (r != 0)
			return 0;
		nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	return SMG_ERR_INTERNAL; /* the receiver never gave up */
}

static int forever(struct rogue *g)
{
	/* The same zero page again and again, each frame valid in round 0. */
	for (int i = 0; i < ROGUE_WAIT_MS / 20; i++) {
		int r = send_zero(g, 0, 0);
		if (r == 0)
			r = smg_chan_flush(g->s, 0);
		if (r != 0)
			return 0;
		nanosleep(&(struct timespec){0, 20000000}, NULL);
	}
	return SMG_ERR_INTERNAL; /* the receiver never gave up */
}

static int play(struct rogue *g, const struct step *st)
{
	Smg__RoundStart rs = SMG__ROUND_START__INIT;
	Smg__RoundEnd re = SMG__ROUND_END__INIT;
	Smg__DeviceState ds = SMG__DEVICE_STATE__INIT;
	Smg__VtpmState vt = SMG__VTPM_STATE__INIT;
	Smg__Commit cm = SMG__COMMIT__INIT;
	Smg__Ready rd = SMG__READY__INIT;
	uint8_t junk[SMG_DIGEST_LEN] = {1};

	switch (st->op) {
	case RS:
		rs.round = st->a;
		rs.final = st->b;
		return smg_chan_send_msg(g->s, 0, SMG_FT_ROUND_START, &rs.base);
	case RE:
		re.round = st->a;
		return smg_chan_send_msg(g->s, st->c, SMG_FT_ROUND_END, &re.base);
	case ZP:
		return send_zero(g, st->c, st->a);
	case DS:
		ds.vcpu_count = vcpus;
		ds.device_context = (ProtobufCBinaryData){state_len, state};
		return smg_chan_send_msg(g->s, 0, SMG_FT_DEVICE_STATE, &ds.base);
	case VT:
		vt.state = (ProtobufCBinaryData){sizeof(junk), junk};
		vt.state_hash = (ProtobufCBinaryData){sizeof(junk), junk};
		return smg_chan_send_msg(g->s, 0, SMG_FT_VTPM_STATE, &vt.base);
	case MF:
		return send_manifest(g);
	case WAIT_RDY:
		return wait_ready(g);
	case CM:
		cm.migration_id = g->id;
		return smg_chan_send_msg(g->s, 0, SMG_FT_COMMIT, &cm.base);
	case PLAN:
		return send_plan(g);
	case RDY:
		rd.migration_id = g->id;
		rd.manifest_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, junk};
		return smg_chan_send_msg(g->s, 0, SMG_FT_READY, &rd.base);
	case PINGS:
		return pings(g);
	case FOREVER:
		return forever(g);
	case END:
		break;
	}
	return 0;
}

/* After the script: the receiver's ABORT (reason) or DONE. */
static int verdict(struct rogue *g, Smg__AbortReason *reason)
{
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	while ((r = recv_ctrl(g, &f)) == 0) {
		if (f.type == SMG_FT_DONE)
			return SMG_OK;
		if (f.type != SMG_FT_ABORT)
			continue; /* READY of a row that goes on past it */
		if ((r = smg_frame_unpack(&f, &smg__abort__descriptor, &m)) != 0)
			return r;
		*reason = ((Smg__Abort *)m)->reason;
		smg_frame_msg_free(m);
		return SMG_ERR_ABORTED;
	}
	return r;
}

static const char *vm_state_on_b(char *buf, size_t cap)
{
	const char *argv[] = {secmig, "--quiet", "sim", "--state-dir",
			      dir_b,  "list",	 NULL};
	int pfd[2], st;
	size_t len = 0;
	ssize_t n;
	pid_t p;
	char *line;

	snprintf(buf, cap, "absent");
	if (pipe(pfd) != 0)
		return buf;
	p = spawn(argv, pfd[1]);
	close(pfd[1]);
	char out[4096];
	while (len + 1 < sizeof(out) &&
	       (n = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pfd[0]);
	waitpid(p, &st, 0);
	for (line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
		if (strncmp(line, VM_NAME " ", strlen(VM_NAME) + 1) == 0) {
			snprintf(buf, cap, "%s", line + strlen(VM_NAME) + 1);
			buf[strcspn(buf, " ")] = '\0';
		}
	return buf;
}

/* Connect and get the plan accepted; in service mode retry while the
 * receiver's only slot is still held by the previous session. */
static int rogue_open(struct rogue *g, uint16_t port)
{
	struct smg_session_opts o = {.identity = id_src,
				     .peers = peers_src,
				     .name = "src",
				     .expect_peer = "dst",
				     .channels = 2,
				     .io_timeout_ms = ROGUE_WAIT_MS};
	uint8_t idb[SMG_MIGRATION_ID_LEN / 2];
	bool busy = false;
	int r = SMG_ERR_BUSY;

	for (int i = 0; i < SERVICE_BUSY_MAX; i++) {
		randombytes_buf(idb, sizeof(idb));
		smg_hex_encode(idb, sizeof(idb), g->id);
		if ((r = smg_session_connect("127.0.0.1", port, &o, &g->s)) != 0)
			return r;
		if ((r = plan_accepted(g, &busy)) == 0 || !busy)
			return r;
		smg_session_free(g->s);
		g->s = NULL;
		nanosleep(&(struct timespec){0, 50000000}, NULL);
	}
	return r;
}

/* Play one row against the receiver; check what the receiver did. */
static void run_row(const struct row *row, struct recv_proc *rp, bool once)
{
	struct rogue g = {0};
	Smg__AbortReason reason = SMG__ABORT_REASON__ABORT_UNSPECIFIED;
	int r, sent = 0, want_code, code;
	char st[64];
	size_t i;

	printf("row: %s\n", row->what);
	fflush(stdout);
	if ((r = rogue_open(&g, rp->port)) != 0) {
		fprintf(stderr, "  plan not accepted: %s\n", smg_strerror(r));
		CHECK(!"plan accepted");
		smg_session_free(g.s);
		return;
	}
	for (i = 0; i < SCRIPT_MAX && row->s[i].op != END && sent == 0; i++)
		sent = play(&g, &row->s[i]);
	for (unsigned c = 0; c < 2 && sent == 0; c++)
		smg_chan_flush(g.s, c);
	if (row->want == W_DONE) {
		CHECK_EQ(sent, 0);
		CHECK_EQ(verdict(&g, &reason), SMG_OK);
		CHECK_EQ(smg_session_close(g.s), 0);
		want_code = 0;
	} else if (row->want == W_TIMEOUT) {
		CHECK_EQ(sent, 0); /* the pings stopped because the receiver left */
		smg_session_free(g.s);
		want_code = 6;
	} else {
		r = verdict(&g, &reason);
		if (r != SMG_ERR_ABORTED)
			fprintf(stderr, "  no ABORT from the receiver: %s\n",
				smg_strerror(r));
		CHECK_EQ(r, SMG_ERR_ABORTED);
		CHECK_EQ(reason, SMG__ABORT_REASON__ABORT_PROTOCOL);
		smg_session_free(g.s);
		want_code = 10;
	}
	if (once) {
		code = reap(rp->pid);
		if (code != want_code)
			fprintf(stderr,
				"  receiver exit %d (-1: still running), want %d\n", code,
				want_code);
		CHECK_EQ(code, want_code);
	}
	/* The verdict line (service mode: it precedes the slot's release). */
	for (int k = 0; k < REAP_TRIES && (code = result_code(rp, g.id)) < 0; k++)
		nanosleep(&(struct timespec){0, 50000000}, NULL);
	CHECK_EQ(code, want_code);
	vm_state_on_b(st, sizeof(st));
	if (row->want == W_DONE) {
		CHECK(strcmp(st, "running") == 0);
		run((const char *const[]){secmig, "--quiet", "sim", "--state-dir", dir_b,
					  "destroy", VM_NAME, NULL});
	} else {
		if (strcmp(st, "absent") != 0)
			fprintf(stderr, "  incoming copy left on the receiver: %s\n", st);
		CHECK(strcmp(st, "absent") == 0);
	}
}

int main(void)
{
	struct recv_proc rp;

	signal(SIGPIPE, SIG_IGN);
	if ((secmig = getenv("SECMIG")) == NULL) {
		fprintf(stderr, "SECMIG not set\n");
		return T_SKIP;
	}
	if (sodium_init() < 0 || setup() != 0) {
		fprintf(stderr, "set-up failed\n");
		teardown();
		return 1;
	}
	/* One `recv --once` per row: it must exit with the row's code. */
	for (size_t i = 0; i < SMG_ARRAY_LEN(rows); i++) {
		if (recv_start(&rp, true, rows[i].recv_opt) != 0) {
			CHECK(!"receiver started");
			break;
		}
		run_row(&rows[i], &rp, true);
		close(rp.out);
	}
	/* Service mode, one slot: the case, then the valid migration
	 * gets that slot (the first session released it). */
	if (recv_start(&rp, false, NULL) == 0) {
		run_row(&rows[1], &rp, false);
		run_row(&rows[0], &rp, false);
		stop(&rp.pid);
		close(rp.out);
	} else {
		CHECK(!"service started");
	}
	teardown();
	return check_result("rogue");
}
