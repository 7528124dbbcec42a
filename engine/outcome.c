/* Durable outcome records on the destination (DESIGN §7): one file per
 * migration id under DIR/outcomes/, written with fsync on the file and the
 * directory, so `secmig resolve` gets the truth even after a crash. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"

#define RECORD_MAX 256
#define RECORD_LEN 128 /* fixed width: an in-place update never changes the size */

static const char *const names[] = {"none", "committed", "resumed", "discarded",
				    "receiving"};

bool smg_migration_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n != SMG_MIGRATION_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

static int paths(const char *dir, const char *id, char *d, size_t dn, char *f, size_t fn)
{
	if (!smg_migration_id_valid(id))
		return SMG_ERR_INVAL;
	if ((size_t)snprintf(d, dn, "%s/outcomes", dir) >= dn ||
	    (size_t)snprintf(f, fn, "%s/outcomes/%s", dir, id) >= fn)
		return SMG_ERR_TOO_LONG;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if (mkdir(d, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	return SMG_OK;
}

static int format_record(char text[RECORD_LEN], enum smg_outcome o, const char *domain)
{
	int n = snprintf(text, RECORD_LEN, "%s %s", names[o], domain);

	if (n < 0 || n >= RECORD_LEN - 1)
		return SMG_ERR_TOO_LONG;
	memset(text + n, ' ', (size_t)(RECORD_LEN - 1 - n));
	text[RECORD_LEN - 1] = '\n';
	return RECORD_LEN;
}

static int write_sync(int fd, const char *d, enum smg_outcome o, const char *domain)
{
	char text[RECORD_LEN];
	int n = format_record(text, o, domain), r = SMG_OK, dfd;

	if (n < 0)
		return n;
	if (write(fd, text, (size_t)n) != n || fsync(fd) != 0)
		r = smg_err_sys(errno);
	if (r == SMG_OK && (dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(dfd) != 0)
			r = smg_err_sys(errno);
		close(dfd);
	}
	return r;
}

int smg_outcome_create(const char *dir, const char *id, enum smg_outcome o,
		       const char *domain)
{
	char d[512], f[600];
	int fd, r;

	if ((r = paths(dir, id, d, sizeof(d), f, sizeof(f))) != SMG_OK)
		return r;
	if ((fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return errno == EEXIST ? SMG_ERR_EXISTS : smg_err_sys(errno);
	r = write_sync(fd, d, o, domain);
	close(fd);
	return r;
}

int smg_outcome_update(const char *dir, const char *id, enum smg_outcome o,
		       const char *domain)
{
	char d[512], f[600], tmp[620];
	int fd, r;

	if ((r = paths(dir, id, d, sizeof(d), f, sizeof(f))) != SMG_OK)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.tmp", f);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return smg_err_sys(errno);
	r = write_sync(fd, d, o, domain);
	close(fd);
	if (r == SMG_OK && rename(tmp, f) != 0)
		r = smg_err_sys(errno);
	return r;
}

int smg_outcome_read(const char *dir, const char *id, enum smg_outcome *o, char *domain,
		     size_t dlen)
{
	char d[512], f[600], text[RECORD_MAX], *sp;
	ssize_t n;
	int fd, r;

	*o = SMG_OUTCOME_NONE;
	if ((r = paths(dir, id, d, sizeof(d), f, sizeof(f))) != SMG_OK)
		return r;
	if ((fd = open(f, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? SMG_OK : smg_err_sys(errno);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return SMG_ERR_CONFIG;
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	for (size_t k = strlen(text); k > 0 && text[k - 1] == ' '; k--)
		text[k - 1] = '\0';
	if ((sp = strchr(text, ' ')) == NULL)
		return SMG_ERR_CONFIG;
	*sp = '\0';
	for (unsigned i = 1; i < SMG_ARRAY_LEN(names); i++)
		if (strcmp(text, names[i]) == 0)
			*o = (enum smg_outcome)i;
	if (*o == SMG_OUTCOME_NONE)
		return SMG_ERR_CONFIG;
	snprintf(domain, dlen, "%s", sp + 1);
	return SMG_OK;
}

/* The hand-over's hot path: the record was created (and its directory
 * entry made durable) when the migration began; COMMIT only rewrites it in
 * place and syncs its data, under a lock that also serialises resolve. */
int smg_outcome_transition(const char *dir, const char *id, enum smg_outcome from,
			   enum smg_outcome to, const char *domain)
{
	char d[512], f[600], text[RECORD_MAX], rec[RECORD_LEN], *sp;
	enum smg_outcome cur = SMG_OUTCOME_NONE;
	ssize_t n;
	int fd, r;

	if ((r = paths(dir, id, d, sizeof(d), f, sizeof(f))) != SMG_OK)
		return r;
	if ((fd = open(f, O_RDWR | O_CLOEXEC)) < 0)
		return errno == ENOENT ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	if (flock(fd, LOCK_EX) != 0) {
		r = smg_err_sys(errno);
		goto out;
	}
	n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	if ((sp = strchr(text, ' ')) != NULL)
		*sp = '\0';
	for (unsigned i = 1; i < SMG_ARRAY_LEN(names); i++)
		if (strcmp(text, names[i]) == 0)
			cur = (enum smg_outcome)i;
	if (cur != from) {
		r = SMG_ERR_EXISTS; /* someone else moved it first */
		goto out;
	}
	if ((r = format_record(rec, to, domain)) < 0)
		goto out;
	r = pwrite(fd, rec, RECORD_LEN, 0) == RECORD_LEN && fdatasync(fd) == 0
		? SMG_OK
		: smg_err_sys(errno);
out:
	close(fd); /* drops the lock */
	return r;
}
