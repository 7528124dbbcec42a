/* `secmig init`: a host's first step (docs/operating.md "First start"):
 * the state directory (0700), the identity key and the config files, from
 * the very skeletons the package installs (dist/etc, compiled in by
 * cmake/skeletons.cmake), so `secmig config check` accepts the result.
 *
 * It never destroys an operator's work: an existing key or secmig.conf is
 * kept unless --force; the peers file, policy and host definitions (which
 * hold enrolments) are never replaced, except a file that is still the
 * untouched skeleton, which init personalises (host name, mode, paths). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/conf.h"
#include "cli/migrate.h"
#include "cli/opts.h"
#include "transport/transport.h"

#define INIT_PATH_MAX 512
#define SKEL_STATE    "/var/lib/secmig"
#define SKEL_ETC      "/etc/secmig"
#define SKEL_HOST     "host secmig-host\n"
#define SKEL_MODE     "mode tpm\n"

struct init_args {
	const char *dir, *config, *name, *mode;
	char etc[INIT_PATH_MAX];
	bool force;
};

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("init"), fmt, arg);
}

static const struct smg_skeleton *skeleton(const char *name)
{
	for (const struct smg_skeleton *s = smg_skeletons; s->name != NULL; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* s with every `from` replaced by `to`, appended to out (cap bytes). */
static int replace_all(const char *s, const char *from, const char *to, char *out,
		       size_t cap)
{
	size_t n = 0, fl = strlen(from), tl = strlen(to);

	while (*s != '\0') {
		bool hit = strncmp(s, from, fl) == 0;
		size_t w = hit ? tl : 1;
		if (n + w >= cap)
			return SMG_ERR_TOO_LONG;
		memcpy(out + n, hit ? to : s, w);
		n += w;
		s += hit ? fl : 1;
	}
	out[n] = '\0';
	return SMG_OK;
}

/* The skeleton as this host gets it: its paths, name and mode. */
static int render(const struct init_args *a, const struct smg_skeleton *sk, char **out)
{
	size_t cap = sk->len * 2 + 4 * INIT_PATH_MAX;
	char *x = malloc(cap), *y = malloc(cap);
	char host[SMG_PEER_NAME_MAX + 8], mode[32];
	int r;

	*out = NULL;
	if (x == NULL || y == NULL) {
		free(x);
		free(y);
		return SMG_ERR_NOMEM;
	}
	snprintf(host, sizeof(host), "host %s\n", a->name);
	snprintf(mode, sizeof(mode), "mode %s\n", a->mode);
	if ((r = replace_all(sk->text, SKEL_STATE, a->dir, x, cap)) == SMG_OK &&
	    (r = replace_all(x, SKEL_ETC, a->etc, y, cap)) == SMG_OK &&
	    (r = replace_all(y, SKEL_HOST, host, x, cap)) == SMG_OK)
		r = replace_all(x, SKEL_MODE, mode, y, cap);
	free(x);
	if (r != SMG_OK) {
		free(y);
		return r;
	}
	*out = y;
	return SMG_OK;
}

/* Does path hold exactly text? (an untouched skeleton) */
static bool holds(const char *path, const char *text)
{
	size_t n = strlen(text), got = 0;
	char *buf = malloc(n + 2);
	FILE *f = fopen(path, "r");
	bool same = false;

	if (f != NULL && buf != NULL) {
		got = fread(buf, 1, n + 1, f);
		same = got == n && memcmp(buf, text, n) == 0;
	}
	if (f != NULL)
		fclose(f);
	free(buf);
	return same;
}

/* Write text to path through a temporary file and rename (mode 0644: not
 * a secret, but never writable by anyone but root). */
static int write_file(const char *path, const char *text)
{
	char tmp[INIT_PATH_MAX + 16];
	size_t n = strlen(text);
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		goto fail;
	if (fchmod(fd, 0644) != 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) == 0)
		return SMG_OK;
	unlink(tmp);
fail:
	fprintf(stderr, "secmig init: cannot write %s: %s\n", path, strerror(errno));
	return SMG_ERR_CONFIG;
}

/* One config file: created when missing; replaced when it is still the
 * shipped skeleton, or when replaceable and --force. */
static int place(const struct init_args *a, const char *file, const char *path,
		 bool replaceable)
{
	const struct smg_skeleton *sk = skeleton(file);
	char *text = NULL;
	const char *what = "created";
	int r;

	if (sk == NULL)
		return SMG_ERR_INVAL;
	if ((r = render(a, sk, &text)) != SMG_OK)
		return r;
	if (access(path, F_OK) == 0) {
		if (holds(path, text))
			what = "up to date";
		else if (holds(path, sk->text))
			what = "personalised (it was the shipped skeleton)";
		else if (replaceable && a->force)
			what = "replaced (--force)";
		else
			what = NULL;
	}
	if (what == NULL)
		printf("  %-40s exists, kept%s\n", path,
		       replaceable ? " (--force replaces it)" : " (your enrolments)");
	else if (strcmp(what, "up to date") == 0 ||
		 (r = write_file(path, text)) == SMG_OK)
		printf("  %-40s %s\n", path, what);
	free(text);
	return r;
}

/* DIR (and its parents) exists, DIR itself 0700. */
static int make_dir(const char *dir, mode_t mode)
{
	char p[INIT_PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			goto fail;
		*s = '/';
	}
	if (mkdir(p, mode) != 0 && errno != EEXIST)
		goto fail;
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	if (mode == 0700 && (st.st_mode & 077) != 0) {
		if (chmod(p, 0700) != 0)
			goto fail;
		printf("  %-40s mode tightened to 0700\n", p);
	}
	return SMG_OK;
fail:
	fprintf(stderr, "secmig init: cannot create %s: %s\n", p, strerror(errno));
	return SMG_ERR_CONFIG;
}

/* The identity key: created, or kept with its public key printed. */
static int make_key(const struct init_args *a, char *pub, size_t n)
{
	char key[INIT_PATH_MAX + 16], pubpath[INIT_PATH_MAX + 32];
	FILE *f;
	int r;

	snprintf(key, sizeof(key), "%s/host.key", a->dir);
	r = smg_identity_generate(key, a->force, pub, n);
	if (r == SMG_OK) {
		printf("  %-40s %s\n", key, a->force ? "created (--force)" : "created");
		return SMG_OK;
	}
	snprintf(pubpath, sizeof(pubpath), "%s.pub", key);
	if (r == SMG_ERR_EXISTS && (f = fopen(pubpath, "r")) != NULL) {
		bool ok = fgets(pub, (int)n, f) != NULL;
		fclose(f);
		pub[strcspn(pub, "\n")] = '\0';
		if (ok) {
			printf("  %-40s exists, kept (--force replaces it)\n", key);
			return SMG_OK;
		}
	}
	fprintf(stderr, "secmig init: key %s: %s\n", key, smg_strerror(r));
	return SMG_ERR_CONFIG;
}

static void next_steps(const struct init_args *a, const char *pub)
{
	printf("\nThis host's public key (enrol it on every peer as '%s %s'):\n%s %s\n",
	       a->name, pub, a->name, pub);
	printf("\nNext (docs/operating.md):\n"
	       "  1. on each peer: echo '%s %s' >> its peers file; here the same for\n"
	       "     each peer, in %s/peers\n",
	       a->name, pub, a->etc);
	if (strcmp(a->mode, "tpm") == 0)
		printf(
		    "  2. TPM binding: secmig tpm-enroll --config %s/policy, and paste\n"
		    "     each peer's block into the other's policy\n",
		    a->etc);
	else
		printf("  2. software mode (no TPM): the peers file alone says who may "
		       "connect\n");
	printf("  3. a 'vm' block per VM this host may receive: %s/hostdefs\n"
	       "  4. secmig config check %s\n"
	       "  5. systemctl enable --now secmig-sim-host secmig-disk secmig-recv\n",
	       a->etc, a->config);
}

static int mode_opt(void *target, const char *arg)
{
	struct init_args *a = target;

	if (strcmp(arg, "tpm") != 0 && strcmp(arg, "software") != 0)
		return -1;
	a->mode = arg;
	return 0;
}

static const struct smg_opt own[] = {
    {.name = "config", .kind = SMG_OPT_STR, .off = offsetof(struct init_args, config)},
    {.name = "mode",
     .kind = SMG_OPT_FN,
     .fn = mode_opt,
     .bad = "--mode: tpm or software, not '%s'"},
    {.name = "force", .kind = SMG_OPT_SET, .off = offsetof(struct init_args, force)},
};

static const struct smg_opt_spec spec = {
    .cmd = "init",
    .common = SMG_CO(STATE_DIR) | SMG_CO(NAME) | SMG_CO(HELP),
    .own = own,
    .n_own = SMG_ARRAY_LEN(own),
};

static int parse(int argc, char **argv, struct init_args *a, char *hostname, size_t hn)
{
	struct smg_cli_common co = {0};
	int r;

	if ((r = smg_opts_parse(&spec, argc, argv, &co, a)) >= 0)
		return r;
	a->dir = co.dir;
	a->name = co.name;
	if (a->config == NULL)
		a->config = getenv("SECMIG_CONFIG") != NULL && getenv("SECMIG_CONFIG")[0]
				? getenv("SECMIG_CONFIG")
				: SMG_CONF_DEFAULT;
	if (a->name == NULL) {
		if (gethostname(hostname, hn) != 0)
			snprintf(hostname, hn, "localhost");
		hostname[hn - 1] = '\0';
		a->name = hostname;
	}
	if (!smg_name_ok(a->name, SMG_PEER_NAME_MAX + 1))
		return usage("--name: 1..64 of [A-Za-z0-9._-], not '%s'", a->name);
	a->dir = smg_cli_state_dir(a->dir);
	if (a->dir[0] != '/' || a->config[0] != '/' || strlen(a->dir) >= 256 ||
	    strlen(a->config) >= 256)
		return usage("--state-dir and --config: absolute paths under 256 bytes "
			     "(the files name each other)%s",
			     "");
	snprintf(a->etc, sizeof(a->etc), "%s", a->config);
	*strrchr(a->etc, '/') = '\0';
	if (a->etc[0] == '\0')
		snprintf(a->etc, sizeof(a->etc), "/");
	return -1;
}

int smg_cmd_init(int argc, char **argv)
{
	struct init_args a = {.mode = "tpm"};
	char hostname[SMG_PEER_NAME_MAX + 1], pub[SMG_PUBKEY_TEXT_LEN], path[600];
	static const char *const files[] = {"peers", "policy", "hostdefs"};
	int code;

	if ((code = parse(argc, argv, &a, hostname, sizeof(hostname))) >= 0)
		return code;
	printf("secmig init: host '%s', state %s, config %s\n", a.name, a.dir, a.config);
	if (make_dir(a.dir, 0700) != SMG_OK || make_dir(a.etc, 0755) != SMG_OK)
		return SMG_EXIT_CONFIG;
	if (make_key(&a, pub, sizeof(pub)) != SMG_OK)
		return SMG_EXIT_CONFIG;
	for (size_t i = 0; i < SMG_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", a.etc, files[i]);
		if (place(&a, files[i], path, false) != SMG_OK)
			return SMG_EXIT_CONFIG;
	}
	if (place(&a, "secmig.conf", a.config, true) != SMG_OK)
		return SMG_EXIT_CONFIG;
	next_steps(&a, pub);
	return SMG_EXIT_OK;
}
