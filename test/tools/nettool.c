/* smg-nettool: the tools the network tests and bench/network.sh run in
 * their namespaces -- a link-cutting proxy, an announcement capture, an
 * ICMP/UDP probe and its echo. Test tooling: it lives here and is built
 * with the tests, not in the product binary (issue 19). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "nettool.h"

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

void nettool_install_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop; /* no SA_RESTART: blocking calls return EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int nettool_stopped(void)
{
	return stop;
}

void nettool_emit(const char *json)
{
	printf("%s\n", json);
	fflush(stdout);
}

static const char usage[] =
    "usage: smg-nettool capture --if IF [--mac MAC] [--count N] [--timeout-ms MS]\n"
    "       smg-nettool probe --to IP [--udp-port P] [--interval-ms MS] "
    "[--duration-ms MS]\n"
    "       smg-nettool udp-echo --port P\n"
    "       smg-nettool proxy --listen ADDR:PORT --to ADDR:PORT [--fault F ...]\n";

int nettool_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("smg-nettool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s", usage);
	return NETTOOL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int, char **);
	} tools[] = {
	    {"capture", nettool_capture},
	    {"probe", nettool_probe},
	    {"udp-echo", nettool_udp_echo},
	    {"proxy", nettool_proxy},
	};
	int a = 1;

	if (a < argc && (strcmp(argv[a], "-q") == 0 || strcmp(argv[a], "--quiet") == 0)) {
		smg_log_set_level(SMG_LOG_WARN);
		a++;
	}
	if (a >= argc)
		return nettool_usage("no tool given");
	for (size_t i = 0; i < SMG_ARRAY_LEN(tools); i++)
		if (strcmp(argv[a], tools[i].name) == 0)
			return tools[i].run(argc - a, argv + a);
	return nettool_usage("unknown tool '%s'", argv[a]);
}
