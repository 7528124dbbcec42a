/* The qemu backend: engine/backend.h on a running QEMU (KVM or TCG). This
 * file holds the ops table, opening and closing, and tearing a VM down
 * once it has left the host; qemu_src.c is the sending side, qemu_dst.c
 * the receiving side. See docs/qemu.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define DEFAULT_STATE_DIR "/var/lib/secmig"
#define QUIT_WAIT_MS	  10000u
#define SWTPM_WAIT_MS	  5000u

/* swtpm writes its pid file itself; only the owner's file is believed. */
static void end_swtpm(const char *state_dir, const char *name)
{
	char path[SMG_QEMU_VALUE_MAX + 64], buf[32];
	struct smg_qemu_proc p = {.pid = -1, .pidfd = -1};
	ssize_t n;
	long pid;
	int fd;

	if (smg_qemu_path(state_dir, name, "swtpm.pid", path, sizeof(path)) != SMG_OK ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(path);
	if (n <= 0)
		return;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid > 1 && smg_qemu_proc_attach((pid_t)pid, &p) == SMG_OK)
		smg_qemu_proc_end(&p, SWTPM_WAIT_MS); /* --terminate: it is leaving */
}

int smg_qemu_teardown(const char *state_dir, const struct smg_qemu_vm *vm,
		      struct smg_qmp *q, struct smg_qemu_proc *p)
{
	struct smg_qemu_proc own = {.pid = -1, .pidfd = -1};
	char path[SMG_QEMU_VALUE_MAX + 64];
	int r = SMG_OK;

	uint64_t t[5];

	t[0] = smg_now_ns();
	if ((p == NULL || p->pidfd < 0) && q != NULL &&
	    smg_qemu_proc_attach(smg_qmp_pid(q), &own) == SMG_OK)
		p = &own;
	if (q != NULL)
		(void)smg_qmp_call(q, "quit", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL);
	t[1] = smg_now_ns();
	if (p != NULL && (r = smg_qemu_proc_end(p, QUIT_WAIT_MS)) != SMG_OK)
		smg_err("qemu: '%s' does not exit; its RAM and vTPM stay", vm->name);
	smg_qemu_proc_close(&own);
	t[2] = smg_now_ns();
	for (unsigned i = 0; i < vm->n_nics; i++)
		(void)smg_qemu_tap_delete(vm->nics[i].tap);
	if (r != SMG_OK)
		return r;
	t[3] = smg_now_ns();
	end_swtpm(state_dir, vm->name);
	if (vm->vtpm)
		smg_qemu_vtpm_wipe(state_dir, vm->name);
	t[4] = smg_now_ns();
	/* the guest's memory, secrets and all, leaves with the guest */
	if (unlink(vm->ram) != 0 && errno != ENOENT)
		smg_warn("qemu: RAM file %s: %s", vm->ram, strerror(errno));
	if (smg_qemu_path(state_dir, vm->name, "qmp", path, sizeof(path)) == SMG_OK)
		unlink(path);
	smg_debug("qemu: '%s' torn down: quit %.1f ms, exit %.1f, taps %.1f, swtpm and "
		  "its state %.1f, RAM %.1f",
		  vm->name, (double)(t[1] - t[0]) / 1e6, (double)(t[2] - t[1]) / 1e6,
		  (double)(t[3] - t[2]) / 1e6, (double)(t[4] - t[3]) / 1e6,
		  (double)(smg_now_ns() - t[4]) / 1e6);
	return SMG_OK;
}

static void qemu_close(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);

	if (q->is_dst)
		smg_qemu_dst_close(q);
	else
		smg_qemu_src_close(q);
	smg_qemu_throttle_stop(&q->thr);
	smg_qmp_close(q->qmp);
	if (q->have_ram)
		smg_qemu_ram_close(&q->ram);
	smg_qemu_proc_close(&q->qemu);
	smg_qemu_proc_close(&q->swtpm);
	free(q->state);
	free(q->config);
	if (q->is_dst)
		pthread_mutex_destroy(&q->launch_lock);
	free(q);
}

static int qemu_destroy(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);

	return q->is_dst ? smg_qemu_dst_destroy(q) : smg_qemu_src_destroy(q);
}

static const struct smg_backend_ops qemu_ops = {
    .name = "qemu",
    .close = qemu_close,
    .domain_open = smg_qemu_src_open,
    .populated = smg_qemu_src_populated,
    .logdirty_enable = smg_qemu_src_logdirty_enable,
    .logdirty_peek_clear = smg_qemu_src_logdirty_peek_clear,
    .logdirty_disable = smg_qemu_src_logdirty_disable,
    .read_pages = smg_qemu_src_read_pages,
    .pause = smg_qemu_src_pause,
    .unpause = smg_qemu_src_unpause,
    .throttle = smg_qemu_src_throttle,
    .save_state = smg_qemu_src_save_state,
    .mark_commit = smg_qemu_src_mark_commit,
    .destroy = qemu_destroy,
    .domain_pending = smg_qemu_src_pending,
    .domain_settle = smg_qemu_src_settle,
    .domain_create = smg_qemu_dst_create,
    .write_pages = smg_qemu_dst_write_pages,
    .restore_state = smg_qemu_dst_restore_state,
    .mark_committed = smg_qemu_dst_mark_committed,
    .resume = smg_qemu_dst_resume,
    .resume_committed = smg_qemu_dst_resume_committed,
};

int smg_backend_qemu_open(const struct smg_backend_opts *opts, struct smg_backend **out);

int smg_backend_qemu_open(const struct smg_backend_opts *opts, struct smg_backend **out)
{
	const char *dir =
	    opts != NULL && opts->state_dir != NULL ? opts->state_dir : DEFAULT_STATE_DIR;
	struct qemu_backend *q;

	*out = NULL;
	if (strlen(dir) >= sizeof(q->state_dir) - 64)
		return SMG_ERR_TOO_LONG;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return SMG_ERR_NOMEM;
	q->be.ops = &qemu_ops;
	snprintf(q->state_dir, sizeof(q->state_dir), "%s", dir);
	q->qemu = q->swtpm = (struct smg_qemu_proc){.pid = -1, .pidfd = -1};
	q->ram.fd = -1;
	q->state_rd = -1;
	q->guard = (struct smg_qemu_guard){.pid = -1, .sock = -1};
	*out = &q->be;
	return SMG_OK;
}

/* `secmig qemu start`: the VM as this host runs it, from its definition:
 * taps on their bridges (up), its swtpm (state kept across restarts), then
 * QEMU with the very command line an incoming copy gets. incoming: wait
 * for QEMU's own migration instead (`-incoming defer`, a fresh vTPM): the
 * operator's fallback, and the peer the benchmark compares against. */
int smg_qemu_vm_start(const char *state_dir, const char *name, bool incoming)
{
	struct smg_qemu_proc qp = {.pid = -1, .pidfd = -1}, tp = {.pid = -1, .pidfd = -1};
	struct smg_qmp *c = NULL;
	struct smg_qemu_vm vm;
	char qmp[SMG_QEMU_SUN_MAX];
	int r;

	if ((r = smg_qemu_vm_load(state_dir, name, &vm)) != SMG_OK ||
	    (r = smg_qemu_path(state_dir, name, "qmp", qmp, sizeof(qmp))) != SMG_OK)
		return r;
	if (smg_qmp_alive(qmp)) {
		smg_err("qemu: '%s' already runs here", name);
		return SMG_ERR_EXISTS;
	}
	for (unsigned i = 0; i < vm.n_nics; i++)
		if ((r = smg_qemu_tap_create(vm.nics[i].tap, vm.nics[i].bridge)) !=
			SMG_OK ||
		    (r = smg_qemu_tap_set(vm.nics[i].tap, true)) != SMG_OK)
			return r;
	if (vm.vtpm &&
	    (r = smg_qemu_vtpm_start(state_dir, name, incoming, &tp)) != SMG_OK)
		return r;
	r = smg_qemu_launch(&vm, state_dir, incoming, &qp, &c);
	/* QEMU's own migration starts the VM when it completes (no -S) */
	if (r == SMG_OK && incoming)
		r = smg_qmp_call(c, "cont", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL);
	if (r != SMG_OK)
		smg_qemu_proc_end(&tp, 0);
	smg_qmp_close(c);
	smg_qemu_proc_close(&qp);
	smg_qemu_proc_close(&tp);
	return r;
}

/* `secmig qemu stop`: shut the VM down here (its vTPM state stays). */
int smg_qemu_vm_stop(const char *state_dir, const char *name)
{
	struct smg_qemu_proc p = {.pid = -1, .pidfd = -1};
	struct smg_qmp *c = NULL;
	struct smg_qemu_vm vm;
	char qmp[SMG_QEMU_SUN_MAX];
	int r;

	if ((r = smg_qemu_vm_load(state_dir, name, &vm)) != SMG_OK ||
	    (r = smg_qemu_path(state_dir, name, "qmp", qmp, sizeof(qmp))) != SMG_OK ||
	    (r = smg_qmp_open(qmp, 2000, &c)) != SMG_OK)
		return r;
	if (smg_qemu_proc_attach(smg_qmp_pid(c), &p) == SMG_OK) {
		(void)smg_qmp_call(c, "quit", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL);
		r = smg_qemu_proc_end(&p, QUIT_WAIT_MS);
	}
	smg_qmp_close(c);
	end_swtpm(state_dir, name);
	for (unsigned i = 0; i < vm.n_nics; i++)
		(void)smg_qemu_tap_delete(vm.nics[i].tap);
	unlink(vm.ram);
	unlink(qmp);
	return r;
}

int smg_qemu_vm_status(const char *state_dir, const char *name, char *status, size_t cap,
		       pid_t *pid)
{
	struct smg_qmp *c = NULL;
	char qmp[SMG_QEMU_SUN_MAX];
	int r;

	snprintf(status, cap, "absent");
	*pid = -1;
	if ((r = smg_qemu_path(state_dir, name, "qmp", qmp, sizeof(qmp))) != SMG_OK)
		return r;
	if (!smg_qmp_alive(qmp) || smg_qmp_open(qmp, 2000, &c) != SMG_OK)
		return SMG_OK;
	r = smg_qmp_status(c, status, cap);
	*pid = smg_qmp_pid(c);
	smg_qmp_close(c);
	return r;
}
