/* The subcommand table: one row per command, implemented in cmd_<name>.c. */
#include <stddef.h>

#include "cli/cli.h"

const struct smg_cmd smg_cmds[] = {
    {"version", "print version, backends and library versions",
     "usage: secmig version\n\n"
     "Print secmig's version, the compiled-in hypervisor backends and the\n"
     "versions of libsodium, liburing, protobuf-c and tpm2-tss.\n",
     smg_cmd_version},
    {"net", "network test bed: VM NIC identity, announce, capture, probe, proxy",
     "usage: secmig net nic prepare|up|down|remove --ns VMNS --vif VIF [--bridge BR]\n"
     "                  [--ifname eth0] [--mac MAC] [--addr CIDR]... [--announce]\n"
     "       secmig net announce --ns VMNS [--ifname eth0] --mac MAC [--addr CIDR]...\n"
     "                  [--rounds 5] [--initial-ms 50] [--step-ms 100] [--max-ms 550]\n"
     "       secmig net fdb-wait --bridge BR --port PORT --mac MAC [--timeout-ms MS]\n"
     "       secmig net capture --if IF [--mac MAC] [--count N] [--timeout-ms MS]\n"
     "       secmig net probe --to IP [--udp-port P] [--interval-ms 10] [--duration-ms "
     "MS]\n"
     "       secmig net udp-echo [--port P]\n"
     "       secmig net proxy --listen ADDR:PORT --to ADDR:PORT\n"
     "                  [--fault none|cut|corrupt|replay|delay] [--conn K]\n"
     "                  [--dir c2s|s2c] [--at-byte N] [--delay-ms MS]\n\n"
     "The VM's network identity on this host (a namespace holding its NIC,\n"
     "veth-paired with a vif on the host bridge), the network clean-up\n"
     "announcement (RARP, gratuitous ARP, unsolicited NA; QEMU's schedule),\n"
     "and the tools the two-host tests use. Events are JSON lines on stdout.\n"
     "See docs/network.md.\n",
     smg_cmd_net},
    {"help", "show help for a command", "usage: secmig help [COMMAND]\n", smg_cmd_help},
    {"sim", "run a sim host and manage its simulated domains",
     "usage: secmig sim [--state-dir DIR | --socket PATH] SUBCOMMAND\n\n"
     "  host              run the sim host daemon on DIR/sim.sock (foreground)\n"
     "  create CONFIG     create and start a domain from a config file\n"
     "  list              list domains: name state memory vcpus writes\n"
     "  verify NAME       check every page of NAME (lost, stale, misplaced,\n"
     "                    corrupted) and its vCPU state; exit 7 on damage\n"
     "  destroy NAME      destroy NAME\n"
     "  pause|unpause NAME\n\n"
     "DIR defaults to $SECMIG_STATE_DIR or /var/lib/secmig.\n"
     "Config file (key = value, # comments):\n"
     "  name = vm1            memory = 64M           vcpus = 2\n"
     "  workload = idle|uniform|hotspot|trace        dirty_rate = 50M  (bytes/s)\n"
     "  hot_writes = 90  hot_pages = 5   (X % of writes to Y % of pages)\n"
     "  zero_pct = 20     seed = 1        trace = FILE (page numbers, one a line)\n"
     "  disk = PATH       nic = mac=52:54:00:00:00:01,ipv4=10.0.0.2,ipv6=fd00::2\n",
     smg_cmd_sim},
    {NULL, NULL, NULL, NULL},
};
