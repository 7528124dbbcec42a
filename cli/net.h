/* `secmig net ...` (cmd_net.c): the VM NIC's identity, announce, fdb-wait,
 * vif-name. The test bed's capture, probe, udp-echo and proxy are a test
 * binary, smg-nettool (test/tools/). */
#ifndef SMG_CLI_NET_H
#define SMG_CLI_NET_H

/* Print one JSON line on stdout and flush (event streams for scripts). */
void smg_net_emit(const char *json);

struct smg_cli_out;
/* Announcement events as JSON lines on the --json stream (arg: the out). */
void smg_cli_announce_event(void *arg, const char *json);

#endif
