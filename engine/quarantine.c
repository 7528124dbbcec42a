/* Quarantine (DESIGN §6): an incoming copy whose digests do not match the
 * source's manifest is evidence (bad RAM, a bug, an attack), so it is kept
 * aside for the operator: DIR/quarantine/ID/ holds a reason file, the
 * planned config, the memory image and (moved there by the caller) the disk
 * images. The domain itself is then destroyed; nothing of it ever runs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/internal.h"

#define BATCH_PAGES 256

static int write_file(const char *dir, const char *name, const void *p, size_t len)
{
	char path[1024];
	int fd, r = SMG_OK;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return smg_err_sys(errno);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, (const uint8_t *)p + off, len - off);
		if (w < 0) {
			r = smg_err_sys(errno);
			break;
		}
		off += (size_t)w;
	}
	if (r == SMG_OK && fsync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	return r;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* The pages as the destination holds them; zero pages stay holes. */
static int save_memory(const char *dir, const struct smg_quarantine *q)
{
	char path[1024];
	uint64_t pfns[BATCH_PAGES];
	uint8_t *buf = malloc((size_t)BATCH_PAGES * q->page_size);
	int fd, r = buf == NULL ? SMG_ERR_NOMEM : SMG_OK;

	snprintf(path, sizeof(path), "%s/memory", dir);
	if (r != SMG_OK ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		free(buf);
		return r != SMG_OK ? r : smg_err_sys(errno);
	}
	if (ftruncate(fd, (off_t)(q->pages * q->page_size)) != 0)
		r = smg_err_sys(errno);
	for (uint64_t p = 0; r == SMG_OK && p < q->pages; p += BATCH_PAGES) {
		size_t n =
		    q->pages - p < BATCH_PAGES ? (size_t)(q->pages - p) : BATCH_PAGES;
		for (size_t i = 0; i < n; i++)
			pfns[i] = p + i;
		if ((r = q->be->ops->read_pages(q->be, pfns, n, buf)) != SMG_OK)
			break;
		for (size_t i = 0; i < n && r == SMG_OK; i++) {
			const uint8_t *pg = buf + i * q->page_size;
			if (!all_zero(pg, q->page_size) &&
			    pwrite(fd, pg, q->page_size,
				   (off_t)((p + i) * q->page_size)) !=
				(ssize_t)q->page_size)
				r = smg_err_sys(errno);
		}
	}
	if (r == SMG_OK && fsync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	free(buf);
	return r;
}

int smg_quarantine_save(const struct smg_quarantine *q, char *path, size_t n)
{
	char qdir[900], reason[1024], key[65], when[32];
	time_t now = time(NULL);
	struct tm tm;
	int r, mem;

	if (!smg_migration_id_valid(q->id))
		return SMG_ERR_INVAL;
	snprintf(qdir, sizeof(qdir), "%s/quarantine", q->state_dir);
	if (mkdir(qdir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if ((size_t)snprintf(path, n, "%s/%s", qdir, q->id) >= n)
		return SMG_ERR_TOO_LONG;
	if (mkdir(path, 0700) != 0)
		return smg_err_sys(errno);
	mem = q->be != NULL && q->pages > 0 ? save_memory(path, q) : SMG_ERR_NOT_FOUND;
	smg_hex_encode(q->source_key, 32, key);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(reason, sizeof(reason),
		 "migration %s\ndomain %s\nsource %s %s\nfailed %s\ntime %s\n"
		 "memory %s\nverdict not resumed; the source VM keeps running\n",
		 q->id, q->domain, q->source, key, q->what, when,
		 mem == SMG_OK ? "memory (raw image, zero pages are holes)"
			       : smg_strerror(mem));
	if ((r = write_file(path, "reason", reason, strlen(reason))) != SMG_OK)
		return r;
	if (q->config != NULL && q->config_len > 0)
		r = write_file(path, "config", q->config, q->config_len);
	return r;
}
