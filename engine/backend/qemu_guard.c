/* A guard process per migration, forked by the backend, which outlives a
 * `secmig send` or `recv` that dies mid-way (SIGKILL, OOM, a crash): QEMU
 * keeps running without us, so something must put the VM right, as the sim
 * host's leases do for sim VMs and the kernel does for the XDP hold.
 *
 * The guard waits on a socket; the migration process tells it what it may
 * need (pidfds with SCM_RIGHTS, the migration id) and, at the end, that it
 * is not needed ('c': COMMIT, leave everything; 'x': finished). End of
 * file without either means the migration process is gone:
 *   source:      unless the durable COMMIT record exists (then the copy
 *                stays paused, in doubt, for `secmig resolve`): SIGCONT
 *                (throttle), taps up, QMP `migrate_cancel` + `cont`;
 *   destination: unless the engine's outcome record for the migration
 *                says committed/resumed (resolve then resumes it): SIGKILL
 *                the incoming QEMU and swtpm, delete the taps, the RAM
 *                file and the vTPM state.
 * The child runs only async-signal-safe system calls: it was forked from a
 * process with threads, whose locks (malloc's included) may be held. */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define GUARD_PIDFDS_MAX 4
#define GUARD_QMP_TRIES	 250 /* x 20 ms: the dead process's QMP link closes */
#define GUARD_ID_LEN	 32

struct gstate {
	const struct smg_qemu_guard_plan *p;
	int pidfds[GUARD_PIDFDS_MAX];
	unsigned n_pidfds;
	char id[GUARD_ID_LEN + 1];
	unsigned idx[SMG_DOMAIN_NICS_MAX]; /* tap ifindexes, looked up before fork */
};

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return n;
}

static void signal_all(struct gstate *g, int sig)
{
	for (unsigned i = 0; i < g->n_pidfds; i++)
		syscall(SYS_pidfd_send_signal, g->pidfds[i], sig, NULL, 0);
}

/* rtnetlink: link up (source) or delete (destination); no reply needed. */
static void link_op(unsigned idx, bool del)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	struct sockaddr_nl sa;
	char ack[256];
	int fd;

	if (idx == 0 || (fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)) < 0)
		return;
	memset(&req, 0, sizeof(req));
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = del ? RTM_DELLINK : RTM_NEWLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.ifi.ifi_family = AF_UNSPEC;
	req.ifi.ifi_index = (int)idx;
	req.ifi.ifi_flags = del ? 0 : IFF_UP;
	req.ifi.ifi_change = del ? 0 : IFF_UP;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) > 0)
		(void)!recv(fd, ack, sizeof(ack), 0);
	close(fd);
}

/* Wait for a line mentioning "return" or "error" (QMP's replies; events
 * and the greeting are skipped). */
static bool qmp_reply(int fd)
{
	char buf[4096];
	size_t have = 0;

	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			return false;
		have += (size_t)n;
		buf[have] = '\0';
		for (char *nl; (nl = memchr(buf, '\n', have)) != NULL;) {
			size_t len = (size_t)(nl - buf) + 1;
			bool hit = false;
			for (size_t i = 0; i + 7 <= len; i++)
				if (memcmp(buf + i, "\"return", 7) == 0 ||
				    memcmp(buf + i, "\"error\"", 7) == 0)
					hit = true;
			memmove(buf, buf + len, have - len);
			have -= len;
			if (hit)
				return true;
		}
		if (have == sizeof(buf) - 1)
			have = 0; /* an over-long line: drop it */
	}
}

static void qmp_cmd(int fd, const char *cmd)
{
	if (write(fd, cmd, slen(cmd)) == (ssize_t)slen(cmd))
		qmp_reply(fd);
}

static void qmp_resume(const char *path)
{
	struct sockaddr_un sa;
	char greet[512];
	int fd = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, slen(path) + 1);
	for (int i = 0; i < GUARD_QMP_TRIES; i++) {
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
			return;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(fd);
		fd = -1;
		nap_ms(20);
	}
	if (fd < 0)
		return;
	/* QEMU greets only once the previous client (the dead one) is gone. */
	if (read(fd, greet, sizeof(greet)) > 0) {
		qmp_cmd(fd, "{\"execute\":\"qmp_capabilities\"}\n");
		qmp_cmd(fd, "{\"execute\":\"migrate_cancel\"}\n");
		qmp_cmd(fd, "{\"execute\":\"cont\"}\n");
	}
	close(fd);
}

static bool file_exists(const char *path)
{
	return path[0] != '\0' && access(path, F_OK) == 0;
}

/* The engine's record for our migration: "committed ..." or "resumed ...". */
static bool outcome_committed(const struct gstate *g)
{
	char path[SMG_QEMU_VALUE_MAX + GUARD_ID_LEN + 2], rec[16];
	size_t dl = slen(g->p->outcomes_dir);
	ssize_t n;
	int fd;

	if (g->id[0] == '\0' || dl == 0)
		return false; /* the id comes before COMMIT can exist */
	memcpy(path, g->p->outcomes_dir, dl);
	path[dl] = '/';
	memcpy(path + dl + 1, g->id, GUARD_ID_LEN + 1);
	if ((fd = open(path, O_RDONLY)) < 0)
		return false;
	n = read(fd, rec, sizeof(rec));
	close(fd);
	return (n >= 9 && memcmp(rec, "committed", 9) == 0) ||
	       (n >= 7 && memcmp(rec, "resumed", 7) == 0);
}

static void act_source(struct gstate *g)
{
	if (file_exists(g->p->commit_rec))
		return; /* in doubt: the paused copy waits for resolve */
	signal_all(g, SIGCONT);
	for (unsigned i = 0; i < g->p->n_taps; i++)
		link_op(g->idx[i], false);
	qmp_resume(g->p->qmp);
}

static void act_dest(struct gstate *g)
{
	if (outcome_committed(g))
		return;
	signal_all(g, SIGKILL);
	for (unsigned i = 0; i < g->p->n_taps; i++)
		link_op(g->idx[i], true);
	if (g->p->ram[0] != '\0')
		unlink(g->p->ram);
	unlink(g->p->qmp);
	/* swtpm's files: its state is the vTPM's secret */
	if (g->p->tpm_dir[0] != '\0') {
		static const char *const files[] = {"tpm2-00.permall",
						    "tpm2-00.volatilestate",
						    "tpm2-00.savestate", ".lock"};
		char f[SMG_QEMU_VALUE_MAX + 32];
		size_t dl = slen(g->p->tpm_dir);
		for (size_t i = 0; i < SMG_ARRAY_LEN(files); i++) {
			memcpy(f, g->p->tpm_dir, dl);
			f[dl] = '/';
			memcpy(f + dl + 1, files[i], slen(files[i]) + 1);
			unlink(f);
		}
		rmdir(g->p->tpm_dir);
	}
}

/* One message: a tag byte, maybe a descriptor or an id. */
static int take(struct gstate *g, int sock)
{
	char buf[1 + GUARD_ID_LEN], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	ssize_t n = recvmsg(sock, &mh, 0);
	struct cmsghdr *c;

	if (n < 0)
		return errno == EINTR ? 1 : 0;
	if (n == 0)
		return 0; /* the migration process is gone */
	c = CMSG_FIRSTHDR(&mh);
	if (c != NULL && c->cmsg_type == SCM_RIGHTS && g->n_pidfds < GUARD_PIDFDS_MAX)
		memcpy(&g->pidfds[g->n_pidfds++], CMSG_DATA(c), sizeof(int));
	if (buf[0] == 'i' && n == 1 + GUARD_ID_LEN) {
		memcpy(g->id, buf + 1, GUARD_ID_LEN);
		g->id[GUARD_ID_LEN] = '\0';
	}
	return buf[0] == 'c' || buf[0] == 'x' ? 2 : 1;
}

static void guard_main(struct gstate *g, int sock)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2};
	struct sigaction ign;
	sigset_t none;
	int r;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	for (size_t i = 0; i < SMG_ARRAY_LEN(sigs); i++)
		sigaction(sigs[i], &ign, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	prctl(PR_SET_NAME, "secmig-guard", 0, 0, 0);
	/* Keep only our end of the socket: a copy of a session socket here
	 * would hide the migration process's death from its peer. */
	if (sock != 3 && dup2(sock, 3) < 0)
		_exit(1);
	syscall(SYS_close_range, 4u, ~0u, 0u);
	for (int fd = 0; fd < 3; fd++)
		close(fd);
	while ((r = take(g, 3)) == 1)
		;
	if (r == 0)
		g->p->dest ? act_dest(g) : act_source(g);
	_exit(0);
}

int smg_qemu_guard_start(const struct smg_qemu_guard_plan *plan, struct smg_qemu_guard *g)
{
	struct gstate gs;
	int sv[2];
	pid_t pid;

	g->pid = -1;
	g->sock = -1;
	memset(&gs, 0, sizeof(gs));
	gs.p = plan;
	for (unsigned i = 0; i < plan->n_taps; i++)
		gs.idx[i] = if_nametoindex(plan->taps[i]);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return smg_err_sys(errno);
	if ((pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		return smg_err_sys(errno);
	}
	if (pid == 0)
		guard_main(&gs, sv[1]);
	close(sv[1]);
	g->pid = pid;
	g->sock = sv[0];
	return SMG_OK;
}

static int send_msg(struct smg_qemu_guard *g, const char *msg, size_t len, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {(void *)msg, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (g->sock < 0)
		return SMG_ERR_STATE;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(g->sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? SMG_OK
								   : smg_err_sys(errno);
}

int smg_qemu_guard_watch(struct smg_qemu_guard *g, int pidfd)
{
	return send_msg(g, "p", 1, pidfd);
}

int smg_qemu_guard_id(struct smg_qemu_guard *g, const char *id)
{
	char m[1 + GUARD_ID_LEN];

	if (strlen(id) != GUARD_ID_LEN)
		return SMG_ERR_INVAL;
	m[0] = 'i';
	memcpy(m + 1, id, GUARD_ID_LEN);
	return send_msg(g, m, sizeof(m), -1);
}

void smg_qemu_guard_stop(struct smg_qemu_guard *g, bool committed)
{
	int st;

	if (g->sock < 0)
		return;
	(void)send_msg(g, committed ? "c" : "x", 1, -1);
	close(g->sock);
	g->sock = -1;
	/* The guard was forked from us: reap it. */
	if (g->pid > 0)
		while (waitpid(g->pid, &st, 0) < 0 && errno == EINTR)
			;
	g->pid = -1;
}
