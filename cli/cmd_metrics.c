/* `secmig metrics [--output FILE]`: the counters of this host's migration
 * processes (the recv service, running sends), read over their control
 * sockets and summed, in the Prometheus text exposition format: on stdout,
 * or written atomically to FILE for node_exporter's textfile collector. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/opts.h"

struct metrics_acc {
	struct smg_metrics sum;
	unsigned processes;
};

static void collect(void *arg, const struct smg_ctl_reply *r)
{
	struct metrics_acc *a = arg;

	if (!r->ok || !r->has_metrics)
		return; /* an older binary's socket: no METRICS */
	smg_metrics_add(&a->sum, &r->metrics);
	a->processes++;
}

/* FILE.tmp then rename: a scraper never reads half a file. 0644: the
 * collector runs as another user, and counters are not secrets. */
static int write_file(const char *path, const struct metrics_acc *a)
{
	char tmp[4096];
	FILE *f;
	int fd, r = SMG_OK;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >=
	    sizeof(tmp))
		return SMG_ERR_TOO_LONG;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return smg_err_sys(errno);
	if ((f = fdopen(fd, "w")) == NULL) {
		r = smg_err_sys(errno);
		close(fd);
		unlink(tmp);
		return r;
	}
	smg_metrics_write_prom(f, &a->sum, a->processes);
	if (fflush(f) != 0 || fsync(fd) != 0)
		r = smg_err_sys(errno);
	if (fclose(f) != 0 && r == SMG_OK)
		r = smg_err_sys(errno);
	if (r == SMG_OK && rename(tmp, path) != 0)
		r = smg_err_sys(errno);
	if (r != SMG_OK)
		unlink(tmp);
	return r;
}

struct metrics_args {
	const char *output;
};

static const struct smg_opt own[] = {
    {.name = "output",
     .short_name = 'o',
     .kind = SMG_OPT_STR,
     .off = offsetof(struct metrics_args, output)},
};

static const struct smg_opt_spec spec = {
    .cmd = "metrics",
    .common = SMG_CO(STATE_DIR) | SMG_CO(HELP),
    .own = own,
    .n_own = SMG_ARRAY_LEN(own),
};

int smg_cmd_metrics(int argc, char **argv)
{
	struct smg_ctl_req rq = {.verb = SMG_CTL_METRICS};
	struct metrics_acc acc = {0};
	struct smg_cli_common co = {0};
	struct metrics_args a = {0};
	const char *output;
	int r;

	if ((r = smg_opts_parse(&spec, argc, argv, &co, &a)) >= 0)
		return r;
	output = a.output;
	r = smg_ctl_query_all(smg_cli_state_dir(co.dir), &rq, collect, &acc);
	if (r < 0) {
		fprintf(stderr, "secmig: metrics: %s\n", smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	if (output == NULL) {
		smg_metrics_write_prom(stdout, &acc.sum, acc.processes);
		return fflush(stdout) == 0 ? SMG_EXIT_OK : SMG_EXIT_FAIL;
	}
	if ((r = write_file(output, &acc)) != SMG_OK) {
		fprintf(stderr, "secmig: metrics: cannot write %s: %s\n", output,
			smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	return SMG_EXIT_OK;
}
