/* The per-host config file (cli/conf.c, secmig.conf(5)). */
#ifndef SMG_CLI_CONF_H
#define SMG_CLI_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define SMG_CONF_FILE_MAX    (64 * 1024)
#define SMG_CONF_LINE_MAX    1024
#define SMG_CONF_ENTRIES_MAX 256
#define SMG_CONF_KEY_MAX     32 /* an option name without its dashes */
#define SMG_CONF_SECTION_MAX 17 /* a command name, NUL included */
#define SMG_CONF_VALUE_MAX   512
#define SMG_CONF_DEFAULT     "/etc/secmig/secmig.conf"

struct smg_conf_entry {
	unsigned line;
	char section[SMG_CONF_SECTION_MAX]; /* "" before the first [command] */
	char key[SMG_CONF_KEY_MAX + 1];
	char value[SMG_CONF_VALUE_MAX + 1];
	bool has_value; /* a bare key is a flag */
};

struct smg_conf {
	unsigned n;
	struct smg_conf_entry v[SMG_CONF_ENTRIES_MAX];
};

/* Parse the bytes of a config file; on error "line N: what" in err and
 * SMG_ERR_CONFIG. Pure: no file, no environment. */
int smg_conf_parse(const char *text, size_t len, struct smg_conf **out, char *err,
		   size_t err_len);
void smg_conf_free(struct smg_conf *c);

/* The config file for a command: --config FILE (before the command), else
 * $SECMIG_CONFIG (empty: none), else SMG_CONF_DEFAULT when it exists.
 * NULL: none. */
const char *smg_conf_path(const char *flag);
/* Read and parse path (a file this host trusts: smg_file_read_private).
 * Errors are printed as "PATH:LINE: what"; SMG_ERR_CONFIG or SMG_ERR_PERM. */
int smg_conf_load(const char *path, struct smg_conf **out);
/* argv for cmd with the config's options first: the entries of cmd's
 * section, and the top-level ones cmd takes (smg_conf_common), as
 * --key[=value]; then argv[1..]. *out is malloc'd, its strings too
 * (smg_conf_argv_free). */
int smg_conf_argv(const struct smg_conf *c, const char *cmd, int argc, char **argv,
		  int *out_argc, char ***out_argv);
void smg_conf_argv_free(int argc, char **argv);
/* argv[1 .. smg_conf_args()] of the command running came from the file:
 * a command may ignore there what it would refuse on its command line
 * (`disk list` ignores the [disk] options only `disk serve` takes). */
int smg_conf_args(void);
/* The commands a top-level key applies to ("send recv ..."), NULL if the
 * key may not be top-level. */
const char *smg_conf_common(const char *key);
/* The shipped config skeletons (dist/etc: secmig.conf, peers, policy,
 * hostdefs), compiled in by cmake/skeletons.cmake for `secmig init`. */
struct smg_skeleton {
	const char *name, *text;
	size_t len;
};
extern const struct smg_skeleton smg_skeletons[];

/* `secmig config check [FILE]` (cli/conf_check.c): exit 0 or 11. */
int smg_cli_conf_check(const char *path);

#endif
