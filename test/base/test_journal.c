/* Logging to the journal: when $JOURNAL_STREAM names stderr's dev:ino (as
 * systemd sets it for a service whose stderr is the journal), each line
 * goes through libsystemd's sd_journal_sendv with structured fields; when
 * it names another file, lines stay on stderr.
 *
 * No journald runs here (systemd is not PID 1), so the test plays its
 * socket: in a private mount namespace it mounts a tmpfs over /run/systemd
 * and binds a datagram socket at /run/systemd/journal/socket, the address
 * libsystemd sends to, then parses the native protocol datagrams it gets
 * (KEY=VALUE lines; KEY, a 64-bit little-endian length and the bytes for a
 * value with a newline; systemd's JOURNAL_NATIVE_PROTOCOL). Real libsystemd
 * client, real socket; only the daemon is ours. Needs root (skips
 * otherwise). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"

#define DGRAM_MAX   65536
#define FIELDS_MAX  32
#define JOURNAL_DIR "/run/systemd/journal"

struct entry {
	unsigned n;
	char *key[FIELDS_MAX];
	char *val[FIELDS_MAX];
};

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* One datagram of the native protocol into e (strings point into buf, which
 * gets NULs); -1 if it does not follow the protocol. */
static int parse(char *buf, size_t len, struct entry *e)
{
	size_t i = 0;

	e->n = 0;
	while (i < len) {
		char *nl = memchr(buf + i, '\n', len - i), *eq;
		if (nl == NULL || e->n == FIELDS_MAX)
			return -1;
		*nl = '\0';
		e->key[e->n] = buf + i;
		if ((eq = strchr(buf + i, '=')) != NULL) {
			*eq = '\0';
			e->val[e->n++] = eq + 1;
			i = (size_t)(nl - buf) + 1;
			continue;
		}
		/* KEY\n <le64 size> <bytes> \n */
		size_t at = (size_t)(nl - buf) + 1;
		if (len - at < 8)
			return -1;
		uint64_t sz = le64((unsigned char *)buf + at);
		if (sz > len - at - 8 - 1 || buf[at + 8 + sz] != '\n')
			return -1;
		memmove(buf + at, buf + at + 8, sz); /* in place, NUL-terminated */
		buf[at + sz] = '\0';
		e->val[e->n++] = buf + at;
		i = at + 8 + sz + 1;
	}
	return 0;
}

static const char *field(const struct entry *e, const char *key)
{
	for (unsigned i = 0; i < e->n; i++)
		if (strcmp(e->key[i], key) == 0)
			return e->val[i];
	return NULL;
}

static bool streq(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static int journal_socket(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/run/systemd", "tmpfs", 0, "mode=0755") != 0 ||
	    mkdir(JOURNAL_DIR, 0755) != 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/socket", JOURNAL_DIR);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* stderr to a fresh file; JOURNAL_STREAM to its dev:ino, or off by one ino */
static void point_stderr(const char *path, bool matching)
{
	char v[64];
	struct stat sb;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	dup2(fd, 2);
	close(fd);
	fstat(2, &sb);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)sb.st_dev,
		 (unsigned long long)sb.st_ino + (matching ? 0 : 1));
	setenv("JOURNAL_STREAM", v, 1);
	smg_log_detect_journal();
}

static ssize_t next(int fd, char *buf)
{
	return recv(fd, buf, DGRAM_MAX, MSG_DONTWAIT);
}

static off_t file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void restore_stderr(int saved)
{
	dup2(saved, 2);
	unsetenv("JOURNAL_STREAM");
	smg_log_detect_journal();
}

int main(void)
{
	char dir[] = "/tmp/smg-journal.XXXXXX", path[64], *buf[3];
	ssize_t n[3], leftover;
	off_t size_journal, size_text;
	struct entry e[3];
	bool ok[3];
	int fd, saved;

	if (geteuid() != 0 || (fd = journal_socket()) < 0) {
		fprintf(stderr, "skip: needs root and a private mount namespace (%s)\n",
			strerror(errno));
		return T_SKIP;
	}
	if (mkdtemp(dir) == NULL)
		return 1;
	for (int i = 0; i < 3; i++)
		if ((buf[i] = malloc(DGRAM_MAX)) == NULL)
			return 1;
	snprintf(path, sizeof(path), "%s/stderr", dir);
	saved = dup(2);

	/* 1. stderr is the journal stream: structured fields, nothing on
	 * stderr; a message with a newline travels in the binary-safe form;
	 * outside a migration no SECMIG_ fields */
	point_stderr(path, true);
	smg_log_ctx_set("0123456789abcdef0123456789abcdef", "src", "vm1");
	smg_warn("slow round %d", 7);
	n[0] = next(fd, buf[0]);
	smg_err("two\nlines");
	n[1] = next(fd, buf[1]);
	smg_log_ctx_clear();
	smg_info("listening");
	n[2] = next(fd, buf[2]);
	size_journal = file_size(path);
	/* 2. JOURNAL_STREAM names another file (a shell redirected stderr):
	 * text on stderr, nothing to the journal */
	point_stderr(path, false);
	smg_info("to stderr");
	leftover = next(fd, buf[0] + DGRAM_MAX / 2);
	size_text = file_size(path);
	restore_stderr(saved);

	CHECK_EQ(size_journal, 0);
	CHECK(leftover < 0);
	CHECK(size_text > 0);
	for (int i = 0; i < 3; i++) {
		ok[i] = n[i] > 0 && parse(buf[i], (size_t)n[i], &e[i]) == 0;
		CHECK(ok[i]);
	}
	if (ok[0]) {
		CHECK(streq(field(&e[0], "MESSAGE"), "slow round 7"));
		CHECK(streq(field(&e[0], "PRIORITY"), "4"));
		CHECK(streq(field(&e[0], "SECMIG_MIGRATION_ID"),
			    "0123456789abcdef0123456789abcdef"));
		CHECK(streq(field(&e[0], "SECMIG_PEER"), "src"));
		CHECK(streq(field(&e[0], "SECMIG_DOMAIN"), "vm1"));
		CHECK(streq(field(&e[0], "CODE_FILE"), "test_journal.c"));
		CHECK(field(&e[0], "CODE_LINE") != NULL &&
		      atoi(field(&e[0], "CODE_LINE")) > 0);
		CHECK(streq(field(&e[0], "SYSLOG_IDENTIFIER"), "secmig"));
	}
	if (ok[1]) {
		CHECK(streq(field(&e[1], "MESSAGE"), "two\nlines"));
		CHECK(streq(field(&e[1], "PRIORITY"), "3"));
	}
	if (ok[2]) {
		CHECK(streq(field(&e[2], "MESSAGE"), "listening"));
		CHECK(streq(field(&e[2], "PRIORITY"), "6"));
		CHECK(field(&e[2], "SECMIG_MIGRATION_ID") == NULL);
		CHECK(field(&e[2], "SECMIG_PEER") == NULL);
	}
	close(saved);
	close(fd);
	unlink(path);
	rmdir(dir);
	for (int i = 0; i < 3; i++)
		free(buf[i]);
	return check_result("journal");
}
