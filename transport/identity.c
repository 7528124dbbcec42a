/* Static Ed25519 identities in 0600 files and the enrolled peers file
 * (docs/peers.md): `name BASE64-PUBKEY [options]`, '#' comments. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/internal.h"

#define KEY_MAGIC      "secmig-ed25519-private-v1"
#define KEY_FILE_MAX   256
#define PEERS_FILE_MAX (1024 * 1024)
#define PEERS_MAX      4096
#define B64_VARIANT    sodium_base64_VARIANT_ORIGINAL

static int write_file(const char *path, const char *text, mode_t mode, bool force)
{
	int fd, r = SMG_OK;
	size_t n = strlen(text);

	if (force && unlink(path) != 0 && errno != ENOENT)
		return smg_err_sys(errno);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == EEXIST ? SMG_ERR_EXISTS : smg_err_sys(errno);
	if (fchmod(fd, mode) != 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	if (r != 0)
		unlink(path);
	return r;
}

int smg_identity_generate(const char *path, bool force, char *pub_text, size_t pub_len)
{
	struct smg_identity *id;
	char b64sk[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES, B64_VARIANT)];
	char b64pk[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, B64_VARIANT)];
	char text[KEY_FILE_MAX], pubpath[4096];
	int r;

	if (path == NULL || pub_text == NULL || pub_len < sizeof(b64pk))
		return SMG_ERR_INVAL;
	if ((r = smg_sodium_ready()) != 0)
		return r;
	if (snprintf(pubpath, sizeof(pubpath), "%s.pub", path) >= (int)sizeof(pubpath))
		return SMG_ERR_INVAL;
	if (!force && (access(path, F_OK) == 0 || access(pubpath, F_OK) == 0))
		return SMG_ERR_EXISTS;
	if ((id = sodium_malloc(sizeof(*id))) == NULL)
		return SMG_ERR_NOMEM;
	crypto_sign_keypair(id->pk, id->sk);
	sodium_bin2base64(b64sk, sizeof(b64sk), id->sk, sizeof(id->sk), B64_VARIANT);
	sodium_bin2base64(b64pk, sizeof(b64pk), id->pk, sizeof(id->pk), B64_VARIANT);
	snprintf(text, sizeof(text), "%s\n%s\n", KEY_MAGIC, b64sk);
	r = write_file(path, text, 0600, force);
	sodium_memzero(text, sizeof(text));
	sodium_memzero(b64sk, sizeof(b64sk));
	sodium_free(id);
	if (r != 0)
		return r;
	snprintf(text, sizeof(text), "%s\n", b64pk);
	if ((r = write_file(pubpath, text, 0644, force)) != 0) {
		unlink(path);
		return r;
	}
	snprintf(pub_text, pub_len, "%s", b64pk);
	return SMG_OK;
}

static int read_small(const char *path, char *buf, size_t cap, bool private_key)
{
	struct stat st;
	ssize_t n;
	int fd, r = SMG_OK;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		smg_err("cannot open %s: %s", path, strerror(errno));
		return errno == ENOENT ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	}
	if (fstat(fd, &st) != 0) {
		r = smg_err_sys(errno);
		goto out;
	}
	if (private_key && (st.st_mode & 077) != 0) {
		smg_err("%s is accessible by group or others (mode %o): chmod 600 it",
			path, st.st_mode & 0777);
		r = SMG_ERR_PERM;
		goto out;
	}
	/* Keys and the peers file decide whom we trust: nobody else may
	 * rewrite them. */
	char why[512];
	if (smg_file_check_private(fd, path, why, sizeof(why)) != SMG_OK) {
		smg_err("%s", why);
		r = SMG_ERR_PERM;
		goto out;
	}
	if ((size_t)st.st_size >= cap) {
		smg_err("%s: file too large (%lld bytes, at most %zu)", path,
			(long long)st.st_size, cap - 1);
		r = SMG_ERR_CONFIG;
		goto out;
	}
	n = read(fd, buf, cap - 1);
	if (n < 0) {
		r = smg_err_sys(errno);
		goto out;
	}
	buf[n] = '\0';
out:
	close(fd);
	return r;
}

int smg_identity_load(const char *path, struct smg_identity **out)
{
	char buf[KEY_FILE_MAX];
	struct smg_identity *id = NULL;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], seed[crypto_sign_SEEDBYTES];
	size_t bin_len;
	const char *end;
	char *b64;
	int r;

	*out = NULL;
	if ((r = smg_sodium_ready()) != 0)
		return r;
	if ((r = read_small(path, buf, sizeof(buf), true)) != 0)
		return r;
	r = SMG_ERR_CONFIG;
	if (strncmp(buf, KEY_MAGIC "\n", strlen(KEY_MAGIC) + 1) != 0) {
		smg_err("%s: not a secmig private key (run secmig keygen)", path);
		goto out;
	}
	b64 = buf + strlen(KEY_MAGIC) + 1;
	b64[strcspn(b64, "\r\n")] = '\0';
	if ((id = sodium_malloc(sizeof(*id))) == NULL) {
		r = SMG_ERR_NOMEM;
		goto out;
	}
	if (sodium_base642bin(id->sk, sizeof(id->sk), b64, strlen(b64), NULL, &bin_len,
			      &end, B64_VARIANT) != 0 ||
	    bin_len != sizeof(id->sk) || *end != '\0') {
		smg_err("%s: bad private key encoding", path);
		goto out;
	}
	/* The stored key is seed || public key: re-derive and compare. */
	memcpy(seed, id->sk, sizeof(seed));
	crypto_sign_ed25519_sk_to_pk(pk, id->sk);
	crypto_sign_seed_keypair(id->pk, id->sk, seed);
	sodium_memzero(seed, sizeof(seed));
	if (sodium_memcmp(pk, id->pk, sizeof(pk)) != 0) {
		smg_err("%s: private key is inconsistent", path);
		goto out;
	}
	*out = id;
	id = NULL;
	r = SMG_OK;
out:
	sodium_memzero(buf, sizeof(buf));
	if (id != NULL)
		sodium_free(id);
	return r;
}

void smg_identity_public(const struct smg_identity *id, uint8_t pub[SMG_PUBKEY_LEN])
{
	memcpy(pub, id->pk, SMG_PUBKEY_LEN);
}

int smg_identity_sign(const struct smg_identity *id, const void *msg, size_t len,
		      uint8_t sig[SMG_SIG_LEN])
{
	if (id == NULL)
		return SMG_ERR_INVAL;
	if (crypto_sign_detached(sig, NULL, msg, len, id->sk) != 0)
		return SMG_ERR_CRYPTO;
	return SMG_OK;
}

void smg_identity_free(struct smg_identity *id)
{
	if (id != NULL)
		sodium_free(id);
}

bool smg_peer_name_ok(const char *s, size_t n)
{
	return smg_name_valid(s, n, SMG_PEER_NAME_MAX);
}

/* One line, NUL-terminated, comments stripped. */
static int parse_line(char *line, unsigned lineno, struct smg_peer *p)
{
	char *name, *key, *opts, *save = NULL;
	size_t bin_len;
	const char *end;

	if ((name = strtok_r(line, " \t", &save)) == NULL)
		return 1; /* blank */
	if (!smg_peer_name_ok(name, strlen(name))) {
		smg_err("peers line %u: bad peer name '%.80s' (1-%d of A-Za-z0-9._-, not "
			"starting with . or -)",
			lineno, name, SMG_PEER_NAME_MAX);
		return SMG_ERR_CONFIG;
	}
	if ((key = strtok_r(NULL, " \t", &save)) == NULL) {
		smg_err("peers line %u: peer '%s' has no public key", lineno, name);
		return SMG_ERR_CONFIG;
	}
	if (sodium_base642bin(p->pubkey, sizeof(p->pubkey), key, strlen(key), NULL,
			      &bin_len, &end, B64_VARIANT) != 0 ||
	    bin_len != sizeof(p->pubkey) || *end != '\0') {
		smg_err("peers line %u: peer '%s': public key is not 32 bytes of base64",
			lineno, name);
		return SMG_ERR_CONFIG;
	}
	opts = save != NULL ? save + strspn(save, " \t") : "";
	if (strlen(opts) > SMG_PEER_OPTS_MAX) {
		smg_err("peers line %u: options longer than %d bytes", lineno,
			SMG_PEER_OPTS_MAX);
		return SMG_ERR_CONFIG;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->options, sizeof(p->options), "%s", opts);
	p->line = lineno;
	return SMG_OK;
}

int smg_peers_parse(const char *text, size_t len, struct smg_peers **out)
{
	struct smg_peers *ps;
	unsigned lineno = 0;
	size_t off = 0;
	char line[2048];
	int r = SMG_OK;

	*out = NULL;
	if (smg_sodium_ready() != 0)
		return SMG_ERR_CRYPTO;
	if (len > PEERS_FILE_MAX)
		return SMG_ERR_TOO_LONG;
	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return SMG_ERR_NOMEM;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
		struct smg_peer p;

		lineno++;
		if (n >= sizeof(line)) {
			smg_err("peers line %u: longer than %zu bytes", lineno,
				sizeof(line) - 1);
			r = SMG_ERR_CONFIG;
			goto out;
		}
		memcpy(line, text + off, n);
		line[n] = '\0';
		off += n + 1;
		if (memchr(line, '\0', n) != NULL) {
			smg_err("peers line %u: NUL byte", lineno);
			r = SMG_ERR_CONFIG;
			goto out;
		}
		line[strcspn(line, "#\r")] = '\0';
		memset(&p, 0, sizeof(p));
		if ((r = parse_line(line, lineno, &p)) == 1) {
			r = SMG_OK;
			continue;
		}
		if (r != 0)
			goto out;
		if (smg_peers_find(ps, p.name) != NULL) {
			smg_err("peers line %u: peer '%s' listed twice", lineno, p.name);
			r = SMG_ERR_CONFIG;
			goto out;
		}
		if (ps->n >= PEERS_MAX) {
			smg_err("peers line %u: more than %d peers", lineno, PEERS_MAX);
			r = SMG_ERR_CONFIG;
			goto out;
		}
		if (ps->n % 16 == 0) {
			struct smg_peer *v = realloc(ps->v, (ps->n + 16) * sizeof(*v));

			if (v == NULL) {
				r = SMG_ERR_NOMEM;
				goto out;
			}
			ps->v = v;
		}
		ps->v[ps->n++] = p;
	}
	*out = ps;
	ps = NULL;
out:
	smg_peers_free(ps);
	return r;
}

int smg_peers_load(const char *path, struct smg_peers **out)
{
	char *buf;
	int r;

	*out = NULL;
	if ((buf = malloc(PEERS_FILE_MAX + 1)) == NULL)
		return SMG_ERR_NOMEM;
	if ((r = read_small(path, buf, PEERS_FILE_MAX + 1, false)) == 0) {
		r = smg_peers_parse(buf, strlen(buf), out);
		if (r != 0)
			smg_err("peers file %s rejected", path);
	} else if (r == SMG_ERR_NOT_FOUND || r == SMG_ERR_SYS) {
		r = SMG_ERR_CONFIG;
	}
	free(buf);
	return r;
}

const struct smg_peer *smg_peers_find(const struct smg_peers *peers, const char *name)
{
	if (peers == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < peers->n; i++)
		if (strcmp(peers->v[i].name, name) == 0)
			return &peers->v[i];
	return NULL;
}

void smg_peers_free(struct smg_peers *peers)
{
	if (peers == NULL)
		return;
	free(peers->v);
	free(peers);
}
