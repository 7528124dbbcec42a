/* qemu backend, receiving side. The sender's plan carries a description
 * (qemu_vm.c) that is matched against this host's own definition of the
 * VM; everything the incoming QEMU is started with comes from that
 * definition. Pages go straight into a new RAM file; swtpm and QEMU are
 * started (`-incoming defer -S`) in a thread as soon as pages flow, off
 * PLAN's path and the downtime's, and gets the device state at restore_state. It never
 * runs before COMMIT: `cont` comes from resume(), and a receiver that dies before COMMIT
 * leaves a guard that kills the incoming QEMU. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"
#include "engine/engine.h"

#define RESUME_ATTACH_MS 5000u

/* The taps, down; swtpm starts with QEMU, off PLAN's path (launch_main). */
static int build_host_side(struct qemu_backend *q)
{
	uint64_t t0 = smg_now_ns();
	int r;

	for (unsigned i = 0; i < q->vm.n_nics; i++) {
		if ((r = smg_qemu_tap_create(q->vm.nics[i].tap, q->vm.nics[i].bridge)) !=
		    SMG_OK)
			return r;
		q->taps_made[i] = true;
	}
	smg_debug("qemu: taps in %.1f ms", (double)(smg_now_ns() - t0) / 1e6);
	return SMG_OK;
}

static int start_guard(struct qemu_backend *q)
{
	struct smg_qemu_guard_plan gp;
	int r;

	memset(&gp, 0, sizeof(gp));
	gp.dest = true;
	if ((r = smg_qemu_path(q->state_dir, q->vm.name, "qmp", gp.qmp,
			       sizeof(gp.qmp))) != SMG_OK ||
	    (r = smg_qemu_path(q->state_dir, q->vm.name, "tpm", gp.tpm_dir,
			       sizeof(gp.tpm_dir))) != SMG_OK)
		return r;
	if (!q->vm.vtpm)
		gp.tpm_dir[0] = '\0';
	if ((size_t)snprintf(gp.outcomes_dir, sizeof(gp.outcomes_dir), "%s/outcomes",
			     q->state_dir) >= sizeof(gp.outcomes_dir))
		return SMG_ERR_TOO_LONG;
	snprintf(gp.ram, sizeof(gp.ram), "%s", q->vm.ram);
	gp.n_taps = q->vm.n_nics;
	for (unsigned i = 0; i < q->vm.n_nics; i++)
		snprintf(gp.taps[i], sizeof(gp.taps[i]), "%s", q->vm.nics[i].tap);
	/* swtpm and QEMU are watched from launch_main, which starts them. */
	return smg_qemu_guard_start(&gp, &q->guard);
}

/* The sender's description is a request: parsed in PLAN mode (a key that
 * names a host resource is refused), matched against this host's own .vm
 * file, which is bound to the host definitions' build. The QEMU command
 * line comes from those two files only. */
static int check_plan(struct qemu_backend *q, const uint8_t *config, size_t len,
		      struct smg_vm_build *b)
{
	struct smg_qemu_vm plan;
	char err[192]; /* fits build->why with its prefix */
	int r;

	r = smg_qemu_vm_parse((const char *)config, len, SMG_QEMU_DEF_PLAN, &plan, err,
			      sizeof(err));
	if (r != SMG_OK) {
		smg_peer_log(SMG_LOG_ERROR, "qemu: the sender's description: %s", err);
		snprintf(b->why, sizeof(b->why), "qemu: the sender's description: %s",
			 err);
		return r == SMG_ERR_POLICY ? r : SMG_ERR_PROTO;
	}
	if ((r = smg_qemu_vm_load(q->state_dir, plan.name, &q->vm)) != SMG_OK) {
		snprintf(b->why, sizeof(b->why),
			 "qemu: this host has no QEMU definition of '%s' "
			 "(STATE_DIR/qemu/NAME.vm)",
			 plan.name);
		return r == SMG_ERR_NOT_FOUND ? SMG_ERR_POLICY : r;
	}
	if ((r = smg_qemu_vm_match(&q->vm, &plan, err, sizeof(err))) != SMG_OK) {
		smg_err("qemu: %s", err);
		snprintf(b->why, sizeof(b->why), "qemu: %s", err);
		return r;
	}
	if ((r = smg_qemu_vm_bind(&q->vm, b)) != SMG_OK)
		smg_err("%s", b->why);
	return r;
}

int smg_qemu_dst_create(struct smg_backend *self, const uint8_t *config, size_t len,
			struct smg_vm_build *build, struct smg_domain_info *info)
{
	struct qemu_backend *q = QEMU_SELF(self);
	char qmp[SMG_QEMU_SUN_MAX];
	int r;

	memset(info, 0, sizeof(*info));
	if (build == NULL)
		return SMG_ERR_INVAL;
	if (q->is_dst || q->attached)
		return SMG_ERR_STATE;
	q->is_dst = true;
	pthread_mutex_init(&q->launch_lock, NULL);
	q->t_created_ms = smg_now_ms();
	if ((r = check_plan(q, config, len, build)) != SMG_OK)
		return r;
	if ((r = smg_qemu_path(q->state_dir, q->vm.name, "qmp", qmp, sizeof(qmp))) !=
	    SMG_OK)
		return r;
	if (smg_qmp_alive(qmp)) {
		smg_err("qemu: '%s' already runs on this host", q->vm.name);
		return SMG_ERR_EXISTS;
	}
	/* No QEMU runs it: a RAM file left by a copy that died is garbage. */
	if (unlink(q->vm.ram) == 0)
		smg_warn("qemu: removed a stale RAM file %s", q->vm.ram);
	if ((q->config = malloc(len ? len : 1)) == NULL)
		return SMG_ERR_NOMEM;
	memcpy(q->config, config, len);
	q->config_len = len;
	if ((r = smg_qemu_ram_open(q->vm.ram, q->vm.mem_bytes, true, true, &q->ram)) !=
	    SMG_OK)
		return r;
	q->have_ram = true;
	q->attached = true;
	if ((r = build_host_side(q)) != SMG_OK || (r = start_guard(q)) != SMG_OK)
		return r;
	snprintf(info->name, sizeof(info->name), "%s", q->vm.name);
	info->pages = q->ram.pages;
	info->page_size = SMG_QEMU_PAGE_SIZE;
	info->vcpus = q->vm.vcpus;
	info->config = (const uint8_t *)q->config;
	info->config_len = q->config_len;
	info->n_nics = q->vm.n_nics;
	for (unsigned i = 0; i < q->vm.n_nics; i++)
		info->nics[i] = q->vm.nics[i].id;
	info->n_labels = q->vm.n_labels;
	memcpy(info->labels, q->vm.labels, sizeof(info->labels));
	smg_info("qemu: receiving '%s' into %s (%llu MiB)", q->vm.name, q->vm.ram,
		 (unsigned long long)(q->vm.mem_bytes >> 20));
	return SMG_OK;
}

static void add_cap(struct json_object *l, const char *name)
{
	struct json_object *c = json_object_new_object();

	json_object_object_add(c, "capability", json_object_new_string(name));
	json_object_object_add(c, "state", json_object_new_boolean(1));
	json_object_array_add(l, c);
}

/* x-ignore-shared: RAM is ours to fill. late-block-activate: QEMU takes its
 * disks at `cont`, not when the state is loaded: an incoming disk of the
 * disk service holds I/O until COMMIT, and an uncommitted copy must not
 * touch its image anyway. */
static struct json_object *incoming_caps(void)
{
	struct json_object *a = json_object_new_object(), *l = json_object_new_array();

	add_cap(l, "x-ignore-shared");
	add_cap(l, "late-block-activate");
	json_object_object_add(a, "capabilities", l);
	return a;
}

static void *launch_main(void *arg)
{
	struct qemu_backend *q = arg;
	struct json_object *p = json_object_new_object();
	int r;

	/* QEMU announces itself when an incoming migration completes, which
	 * is before COMMIT here: no rounds then; resume() announces. */
	uint64_t t0 = smg_now_ns(), t1, ts;
	json_object_object_add(p, "announce-rounds", json_object_new_int64(0));
	/* A fresh vTPM for QEMU to connect to, under the guard's watch. */
	r = !q->vm.vtpm ? SMG_OK
			: smg_qemu_vtpm_start(q->state_dir, q->vm.name, true, &q->swtpm);
	if (r == SMG_OK && q->swtpm.pidfd >= 0)
		r = smg_qemu_guard_watch(&q->guard, q->swtpm.pidfd);
	ts = smg_now_ns();
	if (r == SMG_OK)
		r = smg_qemu_launch(&q->vm, q->state_dir, true, &q->qemu, &q->qmp);
	t1 = smg_now_ns();
	if (r == SMG_OK)
		r = smg_qemu_guard_watch(&q->guard, q->qemu.pidfd);
	if (r == SMG_OK)
		r = smg_qmp_call(q->qmp, "migrate-set-capabilities", incoming_caps(), -1,
				 SMG_QMP_TIMEOUT_MS, NULL);
	if (r == SMG_OK) {
		r = smg_qmp_call(q->qmp, "migrate-set-parameters", p, -1,
				 SMG_QMP_TIMEOUT_MS, NULL);
		p = NULL;
	}
	json_object_put(p);
	q->launch_err = r;
	if (r == SMG_OK)
		smg_debug("qemu: incoming QEMU ready in %.1f ms (swtpm %.1f, start %.1f, "
			  "capabilities %.1f)",
			  (double)(smg_now_ns() - t0) / 1e6, (double)(ts - t0) / 1e6,
			  (double)(t1 - ts) / 1e6, (double)(smg_now_ns() - t1) / 1e6);
	return NULL;
}

static int start_launch(struct qemu_backend *q)
{
	int r = SMG_OK;

	pthread_mutex_lock(&q->launch_lock);
	if (!atomic_load(&q->launching)) {
		if (pthread_create(&q->launcher, NULL, launch_main, q) == 0)
			atomic_store(&q->launching, true);
		else
			r = SMG_ERR_SYS;
	}
	pthread_mutex_unlock(&q->launch_lock);
	return r;
}

static int join_launch(struct qemu_backend *q)
{
	if (atomic_load(&q->launching) && !q->launched) {
		pthread_join(q->launcher, NULL);
		q->launched = true;
	}
	return q->launched ? q->launch_err : SMG_ERR_STATE;
}

int smg_qemu_dst_write_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			     const uint8_t *data, bool zero_only)
{
	struct qemu_backend *q = QEMU_SELF(self);
	int r;

	/* The interface's order (backend.h): no page after the state. */
	if (!q->is_dst || !q->have_ram || q->restored)
		return SMG_ERR_STATE;
	if (!atomic_load(&q->launching) && (r = start_launch(q)) != SMG_OK)
		return r;
	return smg_qemu_ram_write(&q->ram, pfns, n, data, zero_only);
}

/* The engine's durable record of this migration (DIR/outcomes/ID, created
 * after domain_create): the guard reads it to tell whether COMMIT was
 * recorded before we died. The newest "receiving NAME" record is ours. */
static void tell_guard_id(struct qemu_backend *q)
{
	char dir[SMG_QEMU_VALUE_MAX + 16], f[SMG_QEMU_VALUE_MAX + 300], rec[128],
	    best[SMG_MIGRATION_ID_LEN + 1] = "", want[SMG_DOMAIN_NAME_MAX + 16];
	time_t best_t = 0, since = (time_t)(q->t_created_ms / 1000) - 1;
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/outcomes", q->state_dir);
	snprintf(want, sizeof(want), "receiving %s ", q->vm.name);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		ssize_t n;
		int fd;

		if (!smg_migration_id_valid(e->d_name))
			continue;
		snprintf(f, sizeof(f), "%s/%s", dir, e->d_name);
		if ((fd = open(f, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		n = fstat(fd, &st) == 0 ? read(fd, rec, sizeof(rec) - 1) : -1;
		close(fd);
		if (n <= 0)
			continue;
		rec[n] = '\0';
		if (strncmp(rec, want, strlen(want)) == 0 && st.st_mtime >= since &&
		    st.st_mtime >= best_t) {
			best_t = st.st_mtime;
			memcpy(best, e->d_name, sizeof(best)); /* id: 32 + NUL */
		}
	}
	closedir(d);
	if (best[0] == '\0' || smg_qemu_guard_id(&q->guard, best) != SMG_OK)
		smg_warn("qemu: the guard does not know this migration's record; if "
			 "the receiver dies after COMMIT the incoming VM is killed");
}

int smg_qemu_dst_restore_state(struct smg_backend *self, const uint8_t *blob, size_t len)
{
	struct qemu_backend *q = QEMU_SELF(self);
	char status[32];
	uint8_t *raw = NULL;
	size_t rawlen;
	int r;

	if (!q->is_dst || !q->have_ram || q->restored)
		return SMG_ERR_STATE;
	q->restored = true; /* from here on write_pages refuses */
	if ((r = smg_qemu_state_decode(blob, len, &raw, &rawlen)) != SMG_OK) {
		smg_peer_log(SMG_LOG_ERROR,
			     "qemu: the sender's device state is malformed");
		return r;
	}
	uint64_t t0 = smg_now_ns();
	if (!atomic_load(&q->launching))
		r = start_launch(q);
	if (r == SMG_OK)
		r = join_launch(q);
	smg_debug("qemu: waited %.1f ms for the incoming QEMU",
		  (double)(smg_now_ns() - t0) / 1e6);
	tell_guard_id(q);
	if (r == SMG_OK)
		r = smg_qemu_state_load(q->qmp, raw, rawlen);
	free(raw);
	if (r == SMG_OK &&
	    (r = smg_qmp_status(q->qmp, status, sizeof(status))) == SMG_OK &&
	    strcmp(status, "paused") != 0) {
		smg_err("qemu: the incoming '%s' is %s after loading, not paused",
			q->vm.name, status);
		r = SMG_ERR_BACKEND;
	}
	if (r == SMG_OK)
		smg_info("qemu: '%s' loaded its device state (paused)", q->vm.name);
	return r;
}

int smg_qemu_dst_mark_committed(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);

	if (!q->is_dst || !q->restored || q->qmp == NULL)
		return SMG_ERR_STATE;
	q->dst_committed = true;
	smg_qemu_guard_stop(&q->guard, true); /* it must survive us now */
	return SMG_OK;
}

static int start_vm(struct smg_qmp *c, const struct smg_qemu_vm *vm)
{
	/* Taps first: the guest's first frames after cont must get out. */
	for (unsigned i = 0; i < vm->n_nics; i++)
		if (smg_qemu_tap_set(vm->nics[i].tap, true) != SMG_OK)
			smg_warn("qemu: tap %s stays down: the VM is unreachable",
				 vm->nics[i].tap);
	return smg_qmp_call(c, "cont", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL);
}

static void announce(struct smg_qmp *c, const struct smg_qemu_vm *vm,
		     struct smg_announce **ann)
{
	if (smg_qemu_announce(c, vm, ann) != SMG_OK)
		smg_warn("qemu: the VM was not announced; switches learn its port "
			 "when it sends");
}

static void *announcer_main(void *arg)
{
	struct qemu_backend *q = arg;

	announce(q->qmp, &q->vm, &q->ann);
	return NULL;
}

/* The VM runs from `cont` on; DONE (the end of the downtime the source
 * measures) should not wait for QEMU to answer announce-self: that goes to
 * a thread, which owns the QMP connection until close joins it. */
int smg_qemu_dst_resume(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);
	int r;

	if (!q->dst_committed)
		return SMG_ERR_STATE; /* never run an unverified copy */
	uint64_t t0 = smg_now_ns();
	if ((r = start_vm(q->qmp, &q->vm)) != SMG_OK)
		return r;
	q->resumed = true;
	smg_debug("qemu: taps up and cont in %.1f ms", (double)(smg_now_ns() - t0) / 1e6);
	if (pthread_create(&q->announcer, NULL, announcer_main, q) == 0)
		q->announcing = true;
	else
		announce(q->qmp, &q->vm, &q->ann);
	return SMG_OK;
}

int smg_qemu_dst_destroy(struct qemu_backend *q)
{
	if (!q->is_dst || q->dst_committed)
		return SMG_ERR_STATE;
	if (!q->attached)
		return SMG_OK;
	if (atomic_load(&q->launching))
		(void)join_launch(q);
	if (q->have_ram)
		smg_qemu_ram_close(&q->ram);
	q->have_ram = false;
	/* kill, not quit: this copy never ran and must not */
	(void)smg_qemu_proc_end(&q->qemu, 0);
	(void)smg_qemu_proc_end(&q->swtpm, 0);
	for (unsigned i = 0; i < q->vm.n_nics; i++)
		if (q->taps_made[i] && smg_qemu_tap_delete(q->vm.nics[i].tap) == SMG_OK)
			q->taps_made[i] = false;
	unlink(q->vm.ram);
	if (q->vm.vtpm)
		smg_qemu_vtpm_wipe(q->state_dir, q->vm.name);
	smg_qmp_close(q->qmp);
	q->qmp = NULL;
	q->attached = false;
	smg_qemu_guard_stop(&q->guard, false);
	smg_info("qemu: discarded the incoming copy of '%s'", q->vm.name);
	return SMG_OK;
}

/* A committed incoming VM whose receiver died before resuming it. */
int smg_qemu_dst_resume_committed(struct smg_backend *self, const char *name)
{
	struct qemu_backend *q = QEMU_SELF(self);
	struct smg_announce *ann = NULL;
	char qmp[SMG_QEMU_SUN_MAX], status[32];
	struct smg_qmp *c = NULL;
	int r = SMG_ERR_INVAL;

	if (!smg_qemu_name_ok(name) ||
	    (r = smg_qemu_vm_load(q->state_dir, name, &q->vm)) ||
	    (r = smg_qemu_path(q->state_dir, name, "qmp", qmp, sizeof(qmp))) ||
	    (r = smg_qmp_open(qmp, RESUME_ATTACH_MS, &c)))
		return r;
	if ((r = smg_qmp_status(c, status, sizeof(status))) == SMG_OK &&
	    strcmp(status, "running") != 0 && (r = start_vm(c, &q->vm)) == SMG_OK)
		announce(c, &q->vm, &ann);
	if (ann != NULL)
		(void)smg_announce_join(ann);
	smg_qmp_close(c);
	return r;
}

void smg_qemu_dst_close(struct qemu_backend *q)
{
	if (!q->is_dst)
		return;
	if (atomic_load(&q->launching))
		(void)join_launch(q);
	if (q->attached && !q->dst_committed) {
		smg_warn("qemu: destroying the uncommitted incoming copy of '%s'",
			 q->vm.name);
		smg_qemu_dst_destroy(q);
	}
	if (q->announcing)
		pthread_join(q->announcer, NULL);
	q->announcing = false;
	if (q->ann != NULL && smg_announce_join(q->ann) != SMG_OK)
		smg_warn("qemu: some announcements were not sent");
	q->ann = NULL;
	smg_qemu_guard_stop(&q->guard, q->dst_committed);
}
