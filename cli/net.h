/* `secmig net ...`: the network test-bed tools (cmd_net.c dispatches). */
#ifndef SMG_CLI_NET_H
#define SMG_CLI_NET_H

int smg_net_capture(int argc, char **argv);
int smg_net_probe(int argc, char **argv);
int smg_net_udp_echo(int argc, char **argv);
int smg_net_proxy(int argc, char **argv);
/* Print one JSON line on stdout and flush (event streams for scripts). */
void smg_net_emit(const char *json);
/* Set by SIGINT/SIGTERM in the long-running tools. */
void smg_net_install_stop(void);
int smg_net_stopped(void);

#endif
