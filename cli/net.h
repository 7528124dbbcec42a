/* `secmig net ...` (cmd_net.c): the VM NIC's identity, announce, fdb-wait,
 * vif-name. The test bed's capture, probe, udp-echo and proxy are a test
 * binary, smg-nettool (test/tools/). */
#ifndef SMG_CLI_NET_H
#define SMG_CLI_NET_H

/* Print one JSON line on stdout and flush (event streams for scripts). */
void smg_net_emit(const char *json);

/* --net-bridge BR / --net-ns-prefix P on send and recv: where the VM's
 * NICs live on this host (engine/netid_handover.c). */
struct smg_netid_host;
struct smg_cli_out;
/* --io-timeout MS: a stalled peer fails after MS, in the handshake and
 * after it (fault tests; the transport's defaults are
 * SMG_HANDSHAKE_TIMEOUT_MS and SMG_IO_TIMEOUT_MS). */
enum {
	SMG_CLI_OPT_NET_BRIDGE = 0x300,
	SMG_CLI_OPT_NET_NS_PREFIX,
	SMG_CLI_OPT_IO_TIMEOUT
};
#define SMG_CLI_NET_OPTIONS                                                        \
	{"net-bridge", required_argument, NULL, SMG_CLI_OPT_NET_BRIDGE},           \
	    {"net-ns-prefix", required_argument, NULL, SMG_CLI_OPT_NET_NS_PREFIX}, \
	{                                                                          \
		"io-timeout", required_argument, NULL, SMG_CLI_OPT_IO_TIMEOUT      \
	}
/* Parse --io-timeout: 100..3600000 ms. */
int smg_cli_io_timeout(const char *arg, unsigned *out);
int smg_cli_net_opt(int c, const char *arg, struct smg_netid_host *h);
/* Announcement events as JSON lines on the --json stream (arg: the out). */
void smg_cli_announce_event(void *arg, const char *json);

#endif
