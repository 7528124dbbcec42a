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
#include "engine/internal.h"

#define RECORD_LEN 256 /* fixed width: an in-place update never changes the size */
#define KEY_HEX	   64

static const char *const names[] = {"none",	 "committed", "resumed",
				    "discarded", "receiving", "quarantined"};

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

/* "STATE DOMAIN SOURCE KEYHEX", space padded to RECORD_LEN - 1, newline. */
static int format_record(char text[RECORD_LEN], const struct smg_outcome_rec *rec)
{
	char key[KEY_HEX + 1];
	int n;

	if ((unsigned)rec->state >= SMG_ARRAY_LEN(names) || rec->state == 0 ||
	    (strcmp(rec->domain, "-") != 0 && !smg_domain_name_valid(rec->domain)) ||
	    !smg_name_ok(rec->source, SMG_ENGINE_PEER_MAX))
		return SMG_ERR_INVAL;
	smg_hex_encode(rec->source_key, sizeof(rec->source_key), key);
	n = snprintf(text, RECORD_LEN, "%s %s %s %s", names[rec->state], rec->domain,
		     rec->source, key);
	if (n < 0 || n >= RECORD_LEN - 1)
		return SMG_ERR_TOO_LONG;
	memset(text + n, ' ', (size_t)(RECORD_LEN - 1 - n));
	text[RECORD_LEN - 1] = '\n';
	return RECORD_LEN;
}

int smg_outcome_parse(const char *text, size_t len, struct smg_outcome_rec *rec)
{
	char buf[RECORD_LEN], *tok[5], *save = NULL;
	unsigned ntok = 0;

	memset(rec, 0, sizeof(*rec));
	if (len == 0 || len >= sizeof(buf))
		return SMG_ERR_CONFIG;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (strlen(buf) != len) /* a NUL inside */
		return SMG_ERR_CONFIG;
	buf[strcspn(buf, "\n")] = '\0';
	for (char *t = strtok_r(buf, " ", &save); t != NULL && ntok < 5;
	     t = strtok_r(NULL, " ", &save))
		tok[ntok++] = t;
	if (ntok != 4)
		return SMG_ERR_CONFIG;
	for (unsigned i = 1; i < SMG_ARRAY_LEN(names); i++)
		if (strcmp(tok[0], names[i]) == 0)
			rec->state = (enum smg_outcome)i;
	if (rec->state == SMG_OUTCOME_NONE ||
	    (strcmp(tok[1], "-") != 0 && !smg_domain_name_valid(tok[1])) ||
	    !smg_name_ok(tok[2], SMG_ENGINE_PEER_MAX) ||
	    smg_hex_decode(tok[3], strlen(tok[3]), rec->source_key,
			   sizeof(rec->source_key)) != SMG_OK) {
		memset(rec, 0, sizeof(*rec));
		return SMG_ERR_CONFIG;
	}
	snprintf(rec->domain, sizeof(rec->domain), "%s", tok[1]);
	snprintf(rec->source, sizeof(rec->source), "%s", tok[2]);
	return SMG_OK;
}

static int write_sync(int fd, const char *d, const struct smg_outcome_rec *rec)
{
	char text[RECORD_LEN];
	int n = format_record(text, rec), r = SMG_OK, dfd;

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

int smg_outcome_create(const char *dir, const char *id, const struct smg_outcome_rec *rec)
{
	char d[512], f[600];
	int fd, r;

	if ((r = paths(dir, id, d, sizeof(d), f, sizeof(f))) != SMG_OK)
		return r;
	if ((fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return errno == EEXIST ? SMG_ERR_EXISTS : smg_err_sys(errno);
	r = write_sync(fd, d, rec);
	close(fd);
	if (r != SMG_OK)
		unlink(f); /* no half record: resolve must never read one */
	return r;
}

int smg_outcome_read(const char *dir, const char *id, struct smg_outcome_rec *rec)
{
	char d[512], f[600], text[RECORD_LEN];
	ssize_t n;
	int fd, r;

	memset(rec, 0, sizeof(*rec));
	if ((r = paths(dir, id, d, sizeof(d), f, sizeof(f))) != SMG_OK)
		return r;
	if ((fd = open(f, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? SMG_OK : smg_err_sys(errno);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return SMG_ERR_CONFIG;
	return smg_outcome_parse(text, (size_t)n, rec);
}

/* The hand-over's hot path: the record was created (and its directory
 * entry made durable) when the migration began; COMMIT only rewrites it in
 * place and syncs its data, under a lock that also serialises resolve. */
int smg_outcome_transition(const char *dir, const char *id, enum smg_outcome from,
			   enum smg_outcome to)
{
	char d[512], f[600], text[RECORD_LEN], rec_text[RECORD_LEN];
	struct smg_outcome_rec rec;
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
	if (n <= 0 || smg_outcome_parse(text, (size_t)n, &rec) != SMG_OK) {
		r = SMG_ERR_CONFIG;
		goto out;
	}
	if (rec.state != from) {
		r = SMG_ERR_EXISTS; /* someone else moved it first */
		goto out;
	}
	rec.state = to;
	if ((r = format_record(rec_text, &rec)) < 0)
		goto out;
	r = pwrite(fd, rec_text, RECORD_LEN, 0) == RECORD_LEN && fdatasync(fd) == 0
		? SMG_OK
		: smg_err_sys(errno);
out:
	close(fd); /* drops the lock */
	return r;
}
