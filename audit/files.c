/* files: the audit directory's lock and durable small-file writes. Every
 * writer (the log, its head, the counters, the replay cache), in any
 * process on the host, takes the one lock file, which is never renamed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/internal.h"

#define LOCK_NAME "lock"

int audit_lock(const char *dir, int *fd)
{
	char path[600];

	*fd = -1;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		smg_err("audit: cannot create %s: %s", dir, strerror(errno));
		return smg_err_sys(errno);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, LOCK_NAME);
	if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		smg_err("audit: cannot open %s: %s", path, strerror(errno));
		return smg_err_sys(errno);
	}
	while (flock(*fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			int e = errno;
			close(*fd);
			*fd = -1;
			return smg_err_sys(e);
		}
	}
	return SMG_OK;
}

void audit_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = SMG_OK;

	if (fd < 0)
		return smg_err_sys(errno);
	if (fsync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	return r;
}

int audit_write_atomic(const char *dir, const char *name, const void *buf, size_t len)
{
	char tmp[600], path[600];
	const uint8_t *p = buf;
	int fd, r = SMG_OK;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) <
	    0)
		return smg_err_sys(errno);
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = smg_err_sys(errno);
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (r == SMG_OK && fsync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	if (r == SMG_OK && rename(tmp, path) != 0)
		r = smg_err_sys(errno);
	if (r != SMG_OK) {
		unlink(tmp);
		return r;
	}
	return fsync_dir(dir);
}

int audit_read_file(const char *path, size_t max, char **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	char *b;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return SMG_ERR_CONFIG;
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return SMG_ERR_TOO_LONG;
	}
	if ((b = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	b[got] = '\0';
	*buf = b;
	*len = got;
	return SMG_OK;
}
