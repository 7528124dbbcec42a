/* qemu backend, sending side: attach to the QEMU started from this host's
 * definition through its QMP socket, map its shared RAM file, track dirty
 * pages by digest (qemu_ram.c), and at pause stop the VM, silence its taps
 * and start taking its device state in a thread, while the engine's final
 * scan hashes RAM on every CPU: both are downtime. QEMU's save of a stopped
 * VM does not write guest RAM (`stop` returns after block I/O drained and
 * the vCPUs left); the tests' --check-memory re-hashes RAM after the state
 * was taken and compares it with what was sent, which would catch it.
 * Without COMMIT the VM always runs on: `cont` on abort, on close, and from
 * the guard if we die. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define ATTACH_MS  5000u
#define COMMIT_REC "commit"
#define RAM_OBJECT "/objects/secmig-ram"
#define RECORD_MAX 512

static struct json_object *qom_args(const char *prop)
{
	struct json_object *a = json_object_new_object();

	json_object_object_add(a, "path", json_object_new_string(RAM_OBJECT));
	json_object_object_add(a, "property", json_object_new_string(prop));
	return a;
}

/* The QEMU behind the socket must run this VM's RAM from the definition's
 * file, shared, at its size: otherwise what we copy is not the guest. */
static int check_ram(struct qemu_backend *q)
{
	struct json_object *path = NULL, *share = NULL, *size = NULL;
	int r;

	if ((r = smg_qmp_call(q->qmp, "qom-get", qom_args("mem-path"), -1,
			      SMG_QMP_TIMEOUT_MS, &path)) != SMG_OK ||
	    (r = smg_qmp_call(q->qmp, "qom-get", qom_args("share"), -1,
			      SMG_QMP_TIMEOUT_MS, &share)) != SMG_OK ||
	    (r = smg_qmp_call(q->qmp, "qom-get", qom_args("size"), -1, SMG_QMP_TIMEOUT_MS,
			      &size)) != SMG_OK) {
		smg_err("qemu: '%s' has no %s memory backend: start it with "
			"'secmig qemu start' (docs/qemu.md)",
			q->vm.name, RAM_OBJECT);
		goto out;
	}
	if (!json_object_is_type(path, json_type_string) ||
	    strcmp(json_object_get_string(path), q->vm.ram) != 0 ||
	    !json_object_is_type(share, json_type_boolean) ||
	    !json_object_get_boolean(share) ||
	    !json_object_is_type(size, json_type_int) ||
	    (uint64_t)json_object_get_int64(size) != q->vm.mem_bytes) {
		smg_err("qemu: '%s' runs its RAM elsewhere than its definition says (%s, "
			"share=on, %llu bytes)",
			q->vm.name, q->vm.ram, (unsigned long long)q->vm.mem_bytes);
		r = SMG_ERR_BACKEND;
	}
out:
	json_object_put(path);
	json_object_put(share);
	json_object_put(size);
	return r;
}

static int count_vcpus(struct qemu_backend *q, unsigned *n)
{
	struct json_object *ret;
	int r;

	*n = 0;
	if ((r = smg_qmp_call(q->qmp, "query-cpus-fast", NULL, -1, SMG_QMP_TIMEOUT_MS,
			      &ret)) != SMG_OK)
		return r;
	if (json_object_is_type(ret, json_type_array))
		*n = (unsigned)json_object_array_length(ret);
	json_object_put(ret);
	return *n > 0 ? SMG_OK : SMG_ERR_PROTO;
}

static int start_guard(struct qemu_backend *q)
{
	struct smg_qemu_guard_plan gp;
	int r;

	memset(&gp, 0, sizeof(gp));
	if ((r = smg_qemu_path(q->state_dir, q->vm.name, "qmp", gp.qmp,
			       sizeof(gp.qmp))) != SMG_OK ||
	    (r = smg_qemu_path(q->state_dir, q->vm.name, COMMIT_REC, gp.commit_rec,
			       sizeof(gp.commit_rec))) != SMG_OK)
		return r;
	gp.n_taps = q->vm.n_nics;
	for (unsigned i = 0; i < q->vm.n_nics; i++)
		snprintf(gp.taps[i], sizeof(gp.taps[i]), "%s", q->vm.nics[i].tap);
	if ((r = smg_qemu_guard_start(&gp, &q->guard)) != SMG_OK)
		return r;
	return smg_qemu_guard_watch(&q->guard, q->qemu.pidfd);
}

static void fill_info(struct qemu_backend *q, struct smg_domain_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", q->vm.name);
	info->pages = q->ram.pages;
	info->page_size = SMG_QEMU_PAGE_SIZE;
	info->vcpus = q->vm.vcpus;
	info->config = (const uint8_t *)q->config;
	info->config_len = q->config_len;
	info->n_nics = q->vm.n_nics;
	for (unsigned i = 0; i < q->vm.n_nics; i++)
		info->nics[i] = q->vm.nics[i].id;
	/* Disks that travel: the disk service's exports NAME.k, which the
	 * engine drives (storage/); shared ones stay where they are. */
	for (unsigned i = 0; i < q->vm.n_disks; i++)
		if (!q->vm.disks[i].shared)
			snprintf(info->disks[info->n_disks++].path, SMG_DOMAIN_PATH_MAX,
				 "%s", q->vm.disks[i].export_name);
	info->n_labels = q->vm.n_labels;
	memcpy(info->labels, q->vm.labels, sizeof(info->labels));
	/* The vTPM's state rides in QEMU's device state (qemu_vtpm.c). */
	info->has_vtpm = false;
}

int smg_qemu_src_open(struct smg_backend *self, const char *name,
		      struct smg_domain_info *info)
{
	struct qemu_backend *q = QEMU_SELF(self);
	char qmp[SMG_QEMU_SUN_MAX], status[32];
	unsigned vcpus;
	int r;

	if (q->attached || q->is_dst || !smg_qemu_name_ok(name))
		return SMG_ERR_INVAL;
	uint64_t t0 = smg_now_ns();
	if ((r = smg_qemu_vm_load(q->state_dir, name, &q->vm)) != SMG_OK)
		return r;
	if ((r = smg_qemu_path(q->state_dir, name, "qmp", qmp, sizeof(qmp))) != SMG_OK ||
	    (r = smg_qmp_open(qmp, ATTACH_MS, &q->qmp)) != SMG_OK ||
	    (r = smg_qmp_status(q->qmp, status, sizeof(status))) != SMG_OK)
		return r == SMG_OK ? r : SMG_ERR_BACKEND;
	if (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0) {
		smg_err("qemu: '%s' is %s, not running", name, status);
		return SMG_ERR_STATE;
	}
	if ((r = check_ram(q)) != SMG_OK || (r = count_vcpus(q, &vcpus)) != SMG_OK)
		return r;
	if (vcpus != q->vm.vcpus) {
		smg_err("qemu: '%s' has %u vCPUs, its definition %u", name, vcpus,
			q->vm.vcpus);
		return SMG_ERR_BACKEND;
	}
	if ((r = smg_qemu_proc_attach(smg_qmp_pid(q->qmp), &q->qemu)) != SMG_OK ||
	    (r = smg_qemu_ram_open(q->vm.ram, q->vm.mem_bytes, false, false, &q->ram)) !=
		SMG_OK)
		return r;
	q->have_ram = true;
	if ((r = smg_qemu_vm_describe(&q->vm, &q->config, &q->config_len)) != SMG_OK ||
	    (r = start_guard(q)) != SMG_OK)
		return r;
	q->attached = true;
	fill_info(q, info);
	smg_info("qemu: attached to '%s' (pid %d, %llu MiB, %u vCPUs, %s) in %.1f ms",
		 name, (int)q->qemu.pid, (unsigned long long)(q->vm.mem_bytes >> 20),
		 vcpus, status, (double)(smg_now_ns() - t0) / 1e6);
	return SMG_OK;
}

/* Round 0 sends the backed pages only: a hole is a zero page, and the
 * destination's RAM file starts all holes (tracking takes holes as sent). */
int smg_qemu_src_populated(struct smg_backend *self, uint64_t *bitmap, uint64_t *count)
{
	struct qemu_backend *q = QEMU_SELF(self);

	if (!q->attached)
		return SMG_ERR_STATE;
	return smg_qemu_ram_populated(&q->ram, bitmap, count);
}

int smg_qemu_src_logdirty_enable(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);
	int r;

	if (!q->attached)
		return SMG_ERR_STATE;
	/* The device state's pipe and capabilities now, not in the downtime. */
	if (q->state_rd < 0 &&
	    (r = smg_qemu_state_prepare(q->qmp, &q->state_rd)) != SMG_OK)
		return r;
	if ((r = smg_qemu_ram_track_start(&q->ram)) == SMG_OK)
		q->tracking = true;
	return r;
}

int smg_qemu_src_logdirty_peek_clear(struct smg_backend *self, uint64_t *bitmap,
				     uint64_t *dirty)
{
	struct qemu_backend *q = QEMU_SELF(self);
	uint64_t ns0 = q->ram.scan_ns;
	int r;

	if (!q->tracking)
		return SMG_ERR_STATE;
	/* Stopped, the guest needs no CPU: the final scan takes them all. */
	unsigned threads = q->paused ? (unsigned)sysconf(_SC_NPROCESSORS_ONLN) : 1;
	if ((r = smg_qemu_ram_scan(&q->ram, bitmap, dirty, threads)) == SMG_OK)
		smg_debug(
		    "qemu: scan %llu: %llu dirty pages, %.1f ms (%.0f ms/GiB hashed)",
		    (unsigned long long)q->ram.scans, (unsigned long long)*dirty,
		    (double)(q->ram.scan_ns - ns0) / 1e6,
		    q->ram.scan_bytes > 0
			? (double)q->ram.scan_ns / 1e6 /
			      ((double)q->ram.scan_bytes / (double)(1u << 30))
			: 0.0);
	return r;
}

int smg_qemu_src_logdirty_disable(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);

	smg_qemu_ram_track_stop(&q->ram);
	q->tracking = false;
	return SMG_OK;
}

int smg_qemu_src_read_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			    uint8_t *out)
{
	struct qemu_backend *q = QEMU_SELF(self);

	if (!q->attached)
		return SMG_ERR_STATE;
	return smg_qemu_ram_read(&q->ram, pfns, n, out);
}

static void set_taps(struct qemu_backend *q, bool up)
{
	for (unsigned i = 0; i < q->vm.n_nics; i++)
		if (smg_qemu_tap_set(q->vm.nics[i].tap, up) != SMG_OK)
			smg_warn("qemu: could not switch tap %s %s", q->vm.nics[i].tap,
				 up ? "on" : "off");
	q->taps_down = !up;
}

static bool has_moving_disks(const struct qemu_backend *q)
{
	for (unsigned i = 0; i < q->vm.n_disks; i++)
		if (!q->vm.disks[i].shared)
			return true;
	return false;
}

static void *saver_main(void *arg)
{
	struct qemu_backend *q = arg;
	int rd = q->state_rd; /* the save closes it */

	q->state_rd = -1;
	q->state_err = smg_qemu_state_save(q->qmp, rd, &q->state, &q->state_len);
	return NULL;
}

/* The saver owns the QMP connection until it is joined. */
static int join_saver(struct qemu_backend *q)
{
	if (!q->saving)
		return SMG_OK;
	pthread_join(q->saver, NULL);
	q->saving = false;
	return q->state_err;
}

int smg_qemu_src_pause(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);
	int r;

	if (!q->attached || q->paused)
		return SMG_ERR_STATE;
	uint64_t t0 = smg_now_ns();
	smg_qemu_throttle_stop(&q->thr);
	if ((r = smg_qmp_call(q->qmp, "stop", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL)) !=
	    SMG_OK)
		return r;
	q->paused = true;
	uint64_t t1 = smg_now_ns();
	set_taps(q, false);
	smg_debug("qemu: stopped in %.1f ms, taps down in %.1f ms",
		  (double)(t1 - t0) / 1e6, (double)(smg_now_ns() - t1) / 1e6);
	free(q->state);
	q->state = NULL;
	q->state_err = SMG_OK;
	/* QEMU flushes its disks when the save completes; a disk of the disk
	 * service is held from the moment the engine pauses it, right after
	 * we return: with such disks the state is taken before that. */
	if (has_moving_disks(q) || pthread_create(&q->saver, NULL, saver_main, q) != 0) {
		saver_main(q);
		return q->state_err;
	}
	q->saving = true;
	return SMG_OK;
}

int smg_qemu_src_unpause(struct smg_backend *self)
{
	struct qemu_backend *q = QEMU_SELF(self);
	int r;

	if (!q->attached || q->committed)
		return SMG_ERR_STATE;
	(void)join_saver(q);
	/* From "paused" or "postmigrate" (the state was taken): QEMU takes
	 * its disks back and runs on. */
	if ((r = smg_qmp_call(q->qmp, "cont", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL)) !=
	    SMG_OK)
		return r;
	q->paused = false;
	if (q->taps_down)
		set_taps(q, true);
	free(q->state);
	q->state = NULL;
	return SMG_OK;
}

int smg_qemu_src_throttle(struct smg_backend *self, unsigned pct)
{
	struct qemu_backend *q = QEMU_SELF(self);

	if (!q->attached || q->paused)
		return pct == 0 ? SMG_OK : SMG_ERR_STATE;
	return smg_qemu_throttle_set(&q->thr, q->qemu.pidfd, pct);
}

int smg_qemu_src_save_state(struct smg_backend *self, uint8_t **blob, size_t *len)
{
	struct qemu_backend *q = QEMU_SELF(self);

	int r;

	*blob = NULL;
	*len = 0;
	if (!q->paused)
		return SMG_ERR_STATE;
	uint64_t t0 = smg_now_ns();
	bool waited = q->saving;
	if ((r = join_saver(q)) != SMG_OK)
		return r;
	if (waited)
		smg_debug("qemu: waited %.1f ms for the device state",
			  (double)(smg_now_ns() - t0) / 1e6);
	if (q->state == NULL)
		return SMG_ERR_STATE;
	*blob = q->state;
	*len = q->state_len;
	q->state = NULL;
	return SMG_OK;
}

/* The record outlives us: `resolve` reads it and the guard obeys it. */
static int write_record(const char *path, const char *text)
{
	char dir[SMG_QEMU_VALUE_MAX + 64], *slash;
	int fd, dfd, r = SMG_OK;
	size_t n = strlen(text);

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		       0600)) < 0)
		return smg_err_sys(errno);
	if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	snprintf(dir, sizeof(dir), "%s", path);
	if (r == SMG_OK && (slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			if (fsync(dfd) != 0)
				r = smg_err_sys(errno);
			close(dfd);
		}
	}
	return r;
}

int smg_qemu_src_mark_commit(struct smg_backend *self, const char *id, const char *peer)
{
	struct qemu_backend *q = QEMU_SELF(self);
	char path[SMG_QEMU_VALUE_MAX + 64], rec[RECORD_MAX];
	int r;

	if (!q->paused)
		return SMG_ERR_STATE;
	if ((r = smg_qemu_path(q->state_dir, q->vm.name, COMMIT_REC, path,
			       sizeof(path))) != SMG_OK)
		return r;
	snprintf(rec, sizeof(rec), "%s %s\n", id, peer);
	if ((r = write_record(path, rec)) != SMG_OK) {
		smg_err("qemu: cannot record COMMIT in %s: %s", path, smg_strerror(r));
		return r;
	}
	q->committed = true;
	smg_qemu_guard_stop(&q->guard, true);
	return SMG_OK;
}

static void drop_record(const char *state_dir, const char *name)
{
	char path[SMG_QEMU_VALUE_MAX + 64];

	if (smg_qemu_path(state_dir, name, COMMIT_REC, path, sizeof(path)) == SMG_OK)
		unlink(path);
}

int smg_qemu_src_destroy(struct qemu_backend *q)
{
	int r;

	if (!q->attached)
		return SMG_ERR_STATE;
	uint64_t t0 = smg_now_ns();
	(void)join_saver(q);
	smg_qemu_ram_close(&q->ram);
	q->have_ram = q->tracking = false;
	r = smg_qemu_teardown(q->state_dir, &q->vm, q->qmp, &q->qemu);
	smg_debug("qemu: source copy torn down in %.1f ms",
		  (double)(smg_now_ns() - t0) / 1e6);
	smg_qmp_close(q->qmp);
	q->qmp = NULL;
	if (r == SMG_OK)
		drop_record(q->state_dir, q->vm.name);
	q->attached = q->paused = false;
	return r;
}

static int read_record(const char *state_dir, const char *name, char *id, size_t id_len,
		       char *peer, size_t peer_len)
{
	char path[SMG_QEMU_VALUE_MAX + 64], rec[RECORD_MAX], *sp;
	ssize_t n;
	int fd, r;

	if ((r = smg_qemu_path(state_dir, name, COMMIT_REC, path, sizeof(path))) !=
	    SMG_OK)
		return r;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	n = read(fd, rec, sizeof(rec) - 1);
	close(fd);
	if (n <= 0)
		return SMG_ERR_CONFIG;
	rec[n] = '\0';
	rec[strcspn(rec, "\n")] = '\0';
	if ((sp = strchr(rec, ' ')) == NULL)
		return SMG_ERR_CONFIG;
	*sp = '\0';
	snprintf(id, id_len, "%s", rec);
	snprintf(peer, peer_len, "%s", sp + 1);
	return SMG_OK;
}

int smg_qemu_src_pending(struct smg_backend *self, const char *name, char *id,
			 size_t id_len, char *peer, size_t peer_len)
{
	if (!smg_qemu_name_ok(name))
		return SMG_ERR_INVAL;
	return read_record(QEMU_SELF(self)->state_dir, name, id, id_len, peer, peer_len);
}

/* After `resolve`: the destination runs the VM (ours goes) or discarded
 * its copy (ours runs on). */
int smg_qemu_src_settle(struct smg_backend *self, const char *name, bool resumed)
{
	struct qemu_backend *q = QEMU_SELF(self);
	char id[128], peer[256], qmp[SMG_QEMU_SUN_MAX];
	struct smg_qmp *c = NULL;
	int r = SMG_ERR_INVAL;

	if (!smg_qemu_name_ok(name) ||
	    (r = read_record(q->state_dir, name, id, sizeof(id), peer, sizeof(peer))) !=
		SMG_OK ||
	    (r = smg_qemu_vm_load(q->state_dir, name, &q->vm)) != SMG_OK ||
	    (r = smg_qemu_path(q->state_dir, name, "qmp", qmp, sizeof(qmp))) != SMG_OK)
		return r;
	if (smg_qmp_open(qmp, ATTACH_MS, &c) != SMG_OK && !resumed) {
		smg_err("qemu: the paused copy of '%s' is gone; nothing to resume", name);
		return SMG_ERR_NOT_FOUND;
	}
	if (resumed) {
		r = smg_qemu_teardown(q->state_dir, &q->vm, c, NULL);
	} else {
		r = smg_qmp_call(c, "cont", NULL, -1, SMG_QMP_TIMEOUT_MS, NULL);
		for (unsigned i = 0; r == SMG_OK && i < q->vm.n_nics; i++)
			(void)smg_qemu_tap_set(q->vm.nics[i].tap, true);
	}
	smg_qmp_close(c);
	if (r == SMG_OK)
		drop_record(q->state_dir, name);
	return r;
}

/* Leaving without COMMIT: the guest runs on here exactly as before. */
void smg_qemu_src_close(struct qemu_backend *q)
{
	smg_qemu_throttle_stop(&q->thr);
	(void)join_saver(q);
	if (q->state_rd >= 0) /* QEMU's end goes with the next getfd or QEMU */
		close(q->state_rd);
	q->state_rd = -1;
	if (q->attached && !q->committed && q->paused &&
	    smg_qemu_src_unpause(&q->be) != SMG_OK)
		smg_err("qemu: '%s' could not be resumed; the guard tries again",
			q->vm.name);
	if (q->tracking)
		smg_qemu_src_logdirty_disable(&q->be);
	/* If the VM is still paused here, closing the guard without a word
	 * lets it try `cont` once more. */
	if (!(q->attached && !q->committed && q->paused))
		smg_qemu_guard_stop(&q->guard, q->committed);
	else if (q->guard.sock >= 0) {
		close(q->guard.sock);
		q->guard.sock = -1;
	}
}
