/* `secmig disk`: run the per-host disk service and manage its disks
 * (docs/storage.md "The disk service"). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/conf.h"
#include "cli/migrate.h"
#include "storage/storage.h"

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("disk"), fmt, arg);
}

static int exit_of(int err)
{
	return err == SMG_ERR_POLICY   ? SMG_EXIT_POLICY
	       : err == SMG_ERR_CONFIG ? SMG_EXIT_CONFIG
				       : SMG_EXIT_BACKEND;
}

/* One request; prints the reply's text (LIST) when print. */
static int call(const char *dir, const char *line, int fd, bool print)
{
	struct smg_dsvc_conn *c;
	struct smg_dsvc_reply rep;
	int r;

	if ((r = smg_dsvc_connect(dir, &c)) != SMG_OK) {
		fprintf(stderr,
			"secmig: no disk service at %s: %s (start one with 'secmig disk "
			"serve --state-dir DIR')\n",
			dir,
			r == SMG_ERR_SYS ? strerror(smg_err_errno()) : smg_strerror(r));
		return SMG_EXIT_BACKEND;
	}
	r = smg_dsvc_call(c, line, NULL, 0, fd, &rep);
	if (r != SMG_OK) {
		fprintf(stderr, "secmig: disk %s: %s\n", line, smg_dsvc_errmsg(c));
		smg_dsvc_close(c);
		return exit_of(r);
	}
	if (print)
		fwrite(rep.text, 1, rep.text_len, stdout);
	smg_dsvc_close(c);
	return SMG_EXIT_OK;
}

/* One source of truth (docs/hostdef.md): with --defs the service's storage
 * directory and limits are the host definitions' `storage`, `limit vm
 * disk=` and `limit total disk=`, the same file recv matches plans with. */
static int config_from_defs(const char *path, struct smg_dsvc_config *cfg,
			    struct smg_hostdef **hd)
{
	char err[512];

	if (cfg->storage_dir != NULL || cfg->max_disk != 0 || cfg->capacity != 0)
		return usage("disk serve: --defs gives the storage directory and limits; "
			     "no --storage-dir, --max-disk or --capacity with it%s",
			     "");
	if (smg_hostdef_load(path, hd, err, sizeof(err)) != SMG_OK) {
		fprintf(stderr, "secmig disk serve: %s\n", err);
		return SMG_EXIT_CONFIG;
	}
	cfg->storage_dir = (*hd)->storage;
	cfg->max_disk = (*hd)->vm.disk;
	cfg->capacity = (*hd)->total.disk;
	return SMG_EXIT_OK;
}

static int do_serve(struct smg_dsvc_config *cfg, const char *defs, int left)
{
	struct smg_hostdef *hd = NULL;
	int r;

	if (left != 0)
		return usage("disk serve takes no arguments%s", "");
	if (defs != NULL && (r = config_from_defs(defs, cfg, &hd)) != SMG_EXIT_OK)
		return r;
	r = smg_dsvc_run(cfg);
	smg_hostdef_free(hd);
	if (r != SMG_OK) {
		fprintf(stderr, "secmig: disk serve: %s\n",
			r == SMG_ERR_SYS ? strerror(smg_err_errno()) : smg_strerror(r));
		return r == SMG_ERR_CONFIG || r == SMG_ERR_PERM ? SMG_EXIT_CONFIG
								: SMG_EXIT_BACKEND;
	}
	return SMG_EXIT_OK;
}

static bool name_ok(const char *n)
{
	return smg_dsvc_name_valid(n, strlen(n));
}

static int do_import(const char *dir, const char *name, const char *file)
{
	char line[SMG_DSVC_LINE_MAX];
	int fd, rc;

	/* Opened here, by the operator: the service never opens a path it
	 * was handed, it copies from the descriptor. */
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "secmig: %s: %s\n", file, strerror(errno));
		return SMG_EXIT_CONFIG;
	}
	snprintf(line, sizeof(line), "IMPORT %s", name);
	rc = call(dir, line, fd, false);
	close(fd);
	if (rc == SMG_EXIT_OK)
		printf("imported %s as disk %s\n", file, name);
	return rc;
}

static int run_sub(const char *dir, const char *sub, char **args, int left)
{
	char line[SMG_DSVC_LINE_MAX];
	uint64_t size;

	if (strcmp(sub, "list") == 0)
		return left == 0 ? call(dir, "LIST", -1, true)
				 : usage("disk list takes no arguments%s", "");
	if (left < 1 || !name_ok(args[0]))
		return usage("disk %s: a disk name ([A-Za-z0-9_.-], 1-80)", sub);
	if (strcmp(sub, "create") == 0 && left == 2) {
		if (smg_parse_size(args[1], &size) != SMG_OK)
			return usage("bad size '%s'", args[1]);
		snprintf(line, sizeof(line), "CREATE %s %llu", args[0],
			 (unsigned long long)size);
	} else if (strcmp(sub, "import") == 0 && left == 2) {
		return do_import(dir, args[0], args[1]);
	} else if (strcmp(sub, "delete") == 0 && left == 1) {
		snprintf(line, sizeof(line), "DELETE %s", args[0]);
	} else if (strcmp(sub, "resume") == 0 && left == 1) {
		snprintf(line, sizeof(line), "RESUME %s", args[0]);
	} else if (strcmp(sub, "settle") == 0 && left == 2 &&
		   (strcmp(args[1], "resumed") == 0 || strcmp(args[1], "aborted") == 0)) {
		snprintf(line, sizeof(line), "SETTLE %s %s", args[0], args[1]);
	} else if (strcmp(sub, "workload") == 0 && left == 2 &&
		   strlen(args[1]) < SMG_DSVC_LINE_MAX - SMG_DSVC_NAME_MAX - 16) {
		snprintf(line, sizeof(line), "WORKLOAD %s %s", args[0], args[1]);
	} else {
		return usage("disk: bad arguments for '%s'", sub);
	}
	return call(dir, line, -1, false);
}

int smg_cmd_disk(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"storage-dir", required_argument, NULL, 's'},
	    {"surrogate-dir", required_argument, NULL, 'w'},
	    {"capacity", required_argument, NULL, 'c'},
	    {"max-disk", required_argument, NULL, 'm'},
	    {"chunk", required_argument, NULL, 'k'},
	    {"direct", no_argument, NULL, 'D'},
	    {"defs", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct smg_dsvc_config cfg = {0};
	const char *sub = NULL, *defs = NULL, *serve_opt = NULL;
	uint64_t v;
	int c, li = 0;

	optind = 1;
	/* Options before and after the subcommand. */
	while (optind < argc) {
		if ((c = getopt_long(argc, argv, "+h", opts, &li)) == -1) {
			if (sub != NULL)
				break;
			sub = argv[optind++];
			continue;
		}
		/* serve's own options: on the command line of another
		 * subcommand a mistake, from secmig.conf's [disk] not. */
		if (c != 'd' && c != 'h' && c != '?' && optind - 1 > smg_conf_args())
			serve_opt = opts[li].name;
		switch (c) {
		case 'd':
			cfg.state_dir = optarg;
			break;
		case 's':
			cfg.storage_dir = optarg;
			break;
		case 'w':
			cfg.surrogate_dir = optarg;
			break;
		case 'c':
		case 'm':
		case 'k':
			if (smg_parse_size(optarg, &v) != SMG_OK ||
			    (c == 'k' && v > SMG_STG_CHUNK_MAX))
				return usage("bad size '%s'", optarg);
			if (c == 'c')
				cfg.capacity = v;
			else if (c == 'm')
				cfg.max_disk = v;
			else
				cfg.chunk = (uint32_t)v;
			break;
		case 'D':
			cfg.direct = true;
			break;
		case 'f':
			defs = optarg;
			break;
		case 'h':
			printf("%s", smg_cmd_find("disk")->usage);
			return SMG_EXIT_OK;
		default:
			return usage("bad option%s", "");
		}
	}
	if (sub == NULL)
		return usage("disk needs a subcommand%s", "");
	cfg.state_dir = smg_cli_state_dir(cfg.state_dir);
	if (strcmp(sub, "serve") == 0)
		return do_serve(&cfg, defs, argc - optind);
	if (serve_opt != NULL)
		return usage("--%s belongs to 'disk serve'", serve_opt);
	return run_sub(cfg.state_dir, sub, argv + optind, argc - optind);
}
