/* smg-nettool: the network test bed's tools (capture, probe, udp-echo,
 * proxy), a test binary, not part of the product (test/tools/nettool.c). */
#ifndef SMG_TEST_NETTOOL_H
#define SMG_TEST_NETTOOL_H

enum {
	NETTOOL_EXIT_OK = 0,
	NETTOOL_EXIT_FAIL = 1,
	NETTOOL_EXIT_USAGE = 2,
	NETTOOL_EXIT_NETWORK = 6, /* secmig's codes, which the tests read */
	NETTOOL_EXIT_BACKEND = 12,
};

int nettool_capture(int argc, char **argv);
int nettool_probe(int argc, char **argv);
int nettool_udp_echo(int argc, char **argv);
int nettool_proxy(int argc, char **argv);
/* One JSON line on stdout, flushed (event streams for the scripts). */
void nettool_emit(const char *json);
/* Set by SIGINT/SIGTERM in the long-running tools. */
void nettool_install_stop(void);
int nettool_stopped(void);
/* "smg-nettool: MSG" and the usage on stderr; NETTOOL_EXIT_USAGE. */
int nettool_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
