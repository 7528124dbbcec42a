/* replay: each ticket starts one migration attempt per host. The digests
 * of used tickets are kept in a file (one "DIGEST NOT_AFTER" line each)
 * under the audit lock, written atomically and fsync-ed before the plan is
 * accepted, so a restart does not forget them; an entry is dropped once its
 * ticket has expired (it would be refused as expired anyway). A damaged
 * cache fails closed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"

#define LINE_LEN (2 * SMG_AUDIT_DIGEST_LEN + 1 + 20 + 1)

int audit_replay_scan(const char *text, size_t len,
		      const uint8_t digest[SMG_AUDIT_DIGEST_LEN], uint64_t now,
		      char *keep, size_t *keep_len, bool *seen)
{
	size_t off = 0;

	*keep_len = 0;
	*seen = false;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
		char line[LINE_LEN + 1], hex[2 * SMG_AUDIT_DIGEST_LEN + 1], *end;
		uint8_t d[SMG_AUDIT_DIGEST_LEN];
		unsigned long long na;

		if (nl == NULL || n >= sizeof(line) || n < sizeof(hex) + 1)
			return SMG_ERR_PROTO;
		memcpy(line, text + off, n);
		line[n] = '\0';
		off += n + 1;
		memcpy(hex, line, sizeof(hex) - 1);
		hex[sizeof(hex) - 1] = '\0';
		if (line[sizeof(hex) - 1] != ' ' ||
		    smg_hex_decode(hex, strlen(hex), d, sizeof(d)) != SMG_OK)
			return SMG_ERR_PROTO;
		na = strtoull(line + sizeof(hex), &end, 10);
		if (*end != '\0' || end == line + sizeof(hex))
			return SMG_ERR_PROTO;
		if (na + SMG_TICKET_SKEW >= now) {
			if (sodium_memcmp(d, digest, sizeof(d)) == 0)
				*seen = true;
			memcpy(keep + *keep_len, line, n);
			keep[*keep_len + n] = '\n';
			*keep_len += n + 1;
		}
	}
	return SMG_OK;
}

/* SMG_ERR_REPLAY if digest is in the cache; record: add it if not. */
static int replay(const char *path, const uint8_t digest[SMG_AUDIT_DIGEST_LEN],
		  uint64_t not_after, uint64_t now, bool record)
{
	char dir[600], *text = NULL, *keep = NULL, hex[2 * SMG_AUDIT_DIGEST_LEN + 1];
	const char *slash = strrchr(path, '/'), *name;
	size_t len = 0, keep_len;
	bool seen;
	int lk, r;

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
		return SMG_ERR_INVAL;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	name = slash + 1;
	if ((r = audit_lock(dir, &lk)) != SMG_OK)
		return r;
	r = audit_read_file(path, SMG_REPLAY_FILE_MAX, &text, &len);
	if (r == SMG_ERR_NOT_FOUND)
		r = SMG_OK;
	if (r == SMG_OK && (keep = malloc(len + LINE_LEN + 2)) == NULL)
		r = SMG_ERR_NOMEM;
	if (r == SMG_OK && (r = audit_replay_scan(text != NULL ? text : "", len, digest,
						  now, keep, &keep_len, &seen)) != SMG_OK)
		smg_err("audit: the ticket replay cache %s is damaged; refusing tickets "
			"until it is repaired",
			path);
	if (r == SMG_OK && seen)
		r = SMG_ERR_REPLAY;
	if (r == SMG_OK && record && keep_len + LINE_LEN + 1 > SMG_REPLAY_FILE_MAX)
		r = SMG_ERR_BUSY; /* more unexpired tickets than the cache holds */
	if (r == SMG_OK && record) {
		smg_hex_encode(digest, SMG_AUDIT_DIGEST_LEN, hex);
		keep_len += (size_t)snprintf(keep + keep_len, LINE_LEN + 2,
					     "%s %" PRIu64 "\n", hex, not_after);
		r = audit_write_atomic(dir, name, keep, keep_len);
	}
	audit_unlock(lk);
	free(text);
	free(keep);
	return r;
}

int smg_replay_use(const char *path, const uint8_t digest[SMG_AUDIT_DIGEST_LEN],
		   uint64_t not_after, uint64_t now)
{
	return replay(path, digest, not_after, now, true);
}

int smg_replay_check(const char *path, const uint8_t digest[SMG_AUDIT_DIGEST_LEN],
		     uint64_t now)
{
	return replay(path, digest, 0, now, false);
}
