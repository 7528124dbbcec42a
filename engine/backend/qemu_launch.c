/* Starting QEMU from a VM definition. The command line is built here, from
 * this host's definition only (the destination never sees the sender's),
 * and is the same for a VM started by `secmig qemu start` and for an
 * incoming copy (plus `-incoming defer -S`), so both sides present the
 * same devices to a migration stream. QEMU and swtpm are detached (their
 * own session, parented to init) because a VM outlives the secmig process
 * that started it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define ARGV_MAX      (64 + 4 * SMG_DOMAIN_NICS_MAX + 4 * SMG_DOMAIN_DISKS_MAX)
#define QEMU_START_MS 30000u
#define START_POLL_NS 10000000L /* 10 ms */
#define RAM_OBJECT_ID "secmig-ram"

extern char **environ;

struct argv_b {
	char **v;
	size_t n;
	int err;
};

static void add(struct argv_b *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add(struct argv_b *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->err != SMG_OK)
		return;
	if (a->n + 1 >= ARGV_MAX) {
		a->err = SMG_ERR_TOO_LONG;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		a->err = SMG_ERR_NOMEM;
	else
		a->v[a->n++] = s;
	va_end(ap);
}

void smg_qemu_argv_free(char **argv)
{
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

static void add_devices(struct argv_b *a, const struct smg_qemu_vm *vm,
			const char *tpm_sock)
{
	for (unsigned i = 0; i < vm->n_nics; i++) {
		const struct smg_qemu_nic *n = &vm->nics[i];
		const uint8_t *m = n->id.mac;

		add(a, "-netdev");
		add(a, "tap,id=net%u,ifname=%s,script=no,downscript=no", i, n->tap);
		add(a, "-device");
		/* romfile= : no option ROM, a smaller device state stream */
		add(a, "%s,netdev=net%u,mac=%02x:%02x:%02x:%02x:%02x:%02x,romfile=",
		    n->model, i, m[0], m[1], m[2], m[3], m[4], m[5]);
	}
	for (unsigned i = 0; i < vm->n_disks; i++) {
		const struct smg_qemu_disk *d = &vm->disks[i];

		add(a, "-blockdev");
		add(a,
		    "driver=nbd,node-name=disk%u,server.type=unix,server.path=%s,export=%"
		    "s",
		    i, d->nbd, d->export_name);
		add(a, "-device");
		/* A fixed geometry: without one QEMU reads sector 0 to guess it
		 * when the device is created, and an incoming disk of the disk
		 * service holds every I/O until COMMIT (docs/storage.md). */
		add(a, "virtio-blk-pci,drive=disk%u,id=vd%u,cyls=16383,heads=16,secs=63",
		    i, i);
	}
	if (vm->vtpm) {
		add(a, "-chardev");
		add(a, "socket,id=secmig-tpm,path=%s", tpm_sock);
		add(a, "-tpmdev");
		add(a, "emulator,id=tpm0,chardev=secmig-tpm");
		add(a, "-device");
		add(a, "tpm-tis,tpmdev=tpm0");
	}
}

int smg_qemu_argv(const struct smg_qemu_vm *vm, const char *state_dir, bool incoming,
		  char ***argv)
{
	char qmp[SMG_QEMU_SUN_MAX], tpm[SMG_QEMU_SUN_MAX];
	struct argv_b a = {0};
	int r;

	*argv = NULL;
	if ((r = smg_qemu_path(state_dir, vm->name, "qmp", qmp, sizeof(qmp))) != SMG_OK ||
	    (r = smg_qemu_path(state_dir, vm->name, "tpm.sock", tpm, sizeof(tpm))) !=
		SMG_OK) {
		smg_err("qemu: state dir %s makes socket paths over %u bytes", state_dir,
			SMG_QEMU_SUN_MAX);
		return r;
	}
	if ((a.v = calloc(ARGV_MAX, sizeof(char *))) == NULL)
		return SMG_ERR_NOMEM;
	add(&a, "%s", vm->qemu);
	add(&a, "-name");
	add(&a, "guest=%s", vm->name);
	add(&a, "-nodefaults");
	add(&a, "-no-user-config");
	add(&a, "-machine");
	add(&a, "%s,memory-backend=" RAM_OBJECT_ID, vm->machine);
	add(&a, "-accel");
	add(&a, "%s", vm->accel);
	add(&a, "-m");
	add(&a, "%" PRIu64 "M", vm->mem_bytes >> 20);
	add(&a, "-smp");
	add(&a, "%u", vm->vcpus);
	add(&a, "-object");
	add(&a,
	    "memory-backend-file,id=" RAM_OBJECT_ID ",size=%" PRIu64
	    ",mem-path=%s,share=on",
	    vm->mem_bytes, vm->ram);
	add(&a, "-display");
	add(&a, "none");
	add(&a, "-qmp");
	add(&a, "unix:%s,server=on,wait=off", qmp);
	if (vm->serial[0] != '\0') {
		/* appended: the destination's console log continues the source's */
		add(&a, "-chardev");
		add(&a, "file,id=secmig-serial,path=%s,append=on", vm->serial);
		add(&a, "-serial");
		add(&a, "chardev:secmig-serial");
	}
	if (vm->kernel[0] != '\0') {
		add(&a, "-kernel");
		add(&a, "%s", vm->kernel);
	}
	if (vm->initrd[0] != '\0') {
		add(&a, "-initrd");
		add(&a, "%s", vm->initrd);
	}
	if (vm->cmdline[0] != '\0') {
		add(&a, "-append");
		add(&a, "%s", vm->cmdline);
	}
	if (vm->firmware[0] != '\0') {
		add(&a, "-bios");
		add(&a, "%s", vm->firmware);
	}
	add_devices(&a, vm, tpm);
	if (incoming) {
		add(&a, "-incoming");
		add(&a, "defer");
		add(&a, "-S");
	}
	if (a.err != SMG_OK) {
		smg_qemu_argv_free(a.v);
		return a.err;
	}
	*argv = a.v;
	return SMG_OK;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* fork, setsid, fork again and exec: the grandchild runs detached and the
 * intermediate child reports its pid through a pipe. Between fork and exec
 * only async-signal-safe calls: we may have threads. */
int smg_qemu_spawn(char *const *argv, const char *log_path, struct smg_qemu_proc *p)
{
	int pp[2], log, st;
	pid_t mid, pid = -1;

	p->pid = -1;
	p->pidfd = -1;
	if ((log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		smg_err("qemu: log %s: %s", log_path, strerror(errno));
		return smg_err_sys(errno);
	}
	if (pipe2(pp, O_CLOEXEC) != 0) {
		close(log);
		return smg_err_sys(errno);
	}
	if ((mid = fork()) < 0) {
		close(log);
		close(pp[0]);
		close(pp[1]);
		return smg_err_sys(errno);
	}
	if (mid == 0) {
		int null = open("/dev/null", O_RDONLY);
		pid_t g;

		setsid();
		if ((g = fork()) == 0) {
			sigset_t none;

			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			if (null < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 ||
			    dup2(log, 2) < 0)
				_exit(127);
			/* Nothing of ours leaks into the VM's process: a session
			 * socket held open there would hide our death from the peer. */
			syscall(SYS_close_range, 3u, ~0u, 0u);
			execve(argv[0], argv, environ);
			_exit(127);
		}
		(void)!write(pp[1], &g, sizeof(g));
		_exit(0);
	}
	close(pp[1]);
	close(log);
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	if (read(pp[0], &pid, sizeof(pid)) != (ssize_t)sizeof(pid) || pid <= 0) {
		close(pp[0]);
		return SMG_ERR_SYS;
	}
	close(pp[0]);
	p->pid = pid;
	if ((p->pidfd = pidfd_open_(pid)) < 0) {
		smg_err("qemu: %s exited at once (see %s)", argv[0], log_path);
		return SMG_ERR_BACKEND;
	}
	return SMG_OK;
}

static bool exited(const struct smg_qemu_proc *p, int wait_ms)
{
	struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};

	return p->pidfd >= 0 && poll(&pf, 1, wait_ms) == 1;
}

bool smg_qemu_proc_exited(const struct smg_qemu_proc *p)
{
	return exited(p, 0);
}

int smg_qemu_proc_attach(pid_t pid, struct smg_qemu_proc *p)
{
	p->pid = pid;
	if ((p->pidfd = pidfd_open_(pid)) < 0) {
		p->pid = -1;
		return errno == ESRCH ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	}
	return SMG_OK;
}

int smg_qemu_proc_end(struct smg_qemu_proc *p, unsigned timeout_ms)
{
	if (p->pidfd < 0)
		return SMG_OK;
	if (!exited(p, (int)timeout_ms)) {
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
		if (!exited(p, 5000)) {
			smg_err("qemu: process %d does not die", (int)p->pid);
			return SMG_ERR_BACKEND;
		}
	}
	smg_qemu_proc_close(p);
	return SMG_OK;
}

void smg_qemu_proc_close(struct smg_qemu_proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->pid = -1;
}

static int wait_socket(const struct smg_qemu_proc *p, const char *path, const char *log)
{
	struct timespec nap = {0, START_POLL_NS};
	uint64_t deadline = smg_now_ms() + QEMU_START_MS;
	struct stat st;

	while (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		if (exited(p, 0)) {
			smg_err("qemu: QEMU exited while starting; its log: %s", log);
			return SMG_ERR_BACKEND;
		}
		if (smg_now_ms() > deadline) {
			smg_err("qemu: QEMU did not open %s in %u s", path,
				QEMU_START_MS / 1000);
			return SMG_ERR_TIMEOUT;
		}
		nanosleep(&nap, NULL);
	}
	return SMG_OK;
}

int smg_qemu_launch(const struct smg_qemu_vm *vm, const char *state_dir, bool incoming,
		    struct smg_qemu_proc *p, struct smg_qmp **qmp)
{
	char qmp_path[SMG_QEMU_SUN_MAX], log[SMG_QEMU_VALUE_MAX + 64], **argv;
	int r;

	*qmp = NULL;
	if ((r = smg_qemu_path(state_dir, vm->name, "qmp", qmp_path, sizeof(qmp_path))) !=
		SMG_OK ||
	    (r = smg_qemu_path(state_dir, vm->name, "log", log, sizeof(log))) != SMG_OK ||
	    (r = smg_qemu_argv(vm, state_dir, incoming, &argv)) != SMG_OK)
		return r;
	unlink(qmp_path); /* a dead QEMU's socket; a live one was ruled out */
	r = smg_qemu_spawn(argv, log, p);
	smg_qemu_argv_free(argv);
	if (r == SMG_OK)
		r = wait_socket(p, qmp_path, log);
	if (r == SMG_OK)
		r = smg_qmp_open(qmp_path, QEMU_START_MS, qmp);
	if (r != SMG_OK) {
		smg_qemu_proc_end(p, 0);
		return r;
	}
	smg_info("qemu: started '%s' (pid %d)%s", vm->name, (int)p->pid,
		 incoming ? ", waiting for the incoming state" : "");
	return SMG_OK;
}
