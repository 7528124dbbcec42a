/* The subcommand table: one row per command, implemented in cmd_<name>.c. */
#include <stddef.h>

#include "cli/cli.h"

const struct smg_cmd smg_cmds[] = {
    {"version", "print version, backends and library versions",
     "usage: secmig version\n\n"
     "Print secmig's version, the compiled-in hypervisor backends and the\n"
     "versions of libsodium, liburing, protobuf-c and tpm2-tss.\n",
     smg_cmd_version},
    {"net", "VM NIC identity, network announcement, fdb-wait, vif-name",
     "usage: secmig net nic prepare|up|down|remove --ns VMNS --vif VIF [--bridge BR]\n"
     "                  [--ifname eth0] [--mac MAC] [--addr CIDR]... [--announce]\n"
     "       secmig net announce --ns VMNS [--ifname eth0] --mac MAC [--addr CIDR]...\n"
     "                  [--rounds 5] [--initial-ms 50] [--step-ms 100] [--max-ms 550]\n"
     "       secmig net fdb-wait --bridge BR --port PORT --mac MAC [--timeout-ms MS]\n"
     "       secmig net vif-name DOMAIN [INDEX]\n\n"
     "The VM's network identity on this host (a namespace holding its NIC,\n"
     "veth-paired with a vif on the host bridge), the network clean-up\n"
     "announcement (RARP, gratuitous ARP, unsolicited NA; QEMU's schedule),\n"
     "and what a hotplug script or a switch needs. Events are JSON lines on\n"
     "stdout. (The test bed's capture, probe, udp-echo and proxy are the test\n"
     "binary smg-nettool.)\n"
     "See docs/network.md.\n",
     smg_cmd_net},
    {"tpm-enroll", "create this host's TPM keys and print its enrolment block",
     "usage: secmig tpm-enroll [--config FILE] [--tcti TCTI] [--pcrs LIST] [--name "
     "NAME]\n"
     "                         [--label KEY=VALUE]... [--force]\n\n"
     "Create once, under the TPM's storage primary key, a P-256 ECDH key usable only\n"
     "while PCRs LIST (default 0-3,7) hold today's values, and a restricted signing\n"
     "key (AK); both persist in the TPM. Prints the block a peer's policy file\n"
     "enrols. Re-running prints the same keys; --force replaces them. Exit 4 if the\n"
     "PCRs moved since enrolment (the TPM would refuse the key).\n"
     "TCTI examples: device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321.\n",
     smg_cmd_tpm_enroll},
    {"config", "validate a policy/config file",
     "usage: secmig config check [FILE.conf]\n"
     "       secmig config check --policy FILE | [--policy] FILE | --defs FILE\n\n"
     "Without FILE, or with a FILE named *.conf: the per-host config file\n"
     "(secmig.conf(5); default the file the other commands read: $SECMIG_CONFIG\n"
     "or /etc/secmig/secmig.conf): its syntax, every entry through its command's\n"
     "option parser, then the files it names as recv loads them (key, peers,\n"
     "policy and whether its TPM answers, host definitions and their 'from'\n"
     "peers), every problem as FILE:LINE. Otherwise parse a policy FILE\n"
     "(docs/attestation.md) or a host definitions FILE (docs/hostdef.md) and\n"
     "report the first error as FILE:LINE. Exit 0 if valid, 11 if not.\n",
     smg_cmd_config},
    {"keygen", "create a software-mode identity key pair",
     "usage: secmig keygen [--force] PATH\n\n"
     "Write a new Ed25519 identity: the private key to PATH (mode 0600; its\n"
     "directory is created with mode 0700 if missing) and\n"
     "the public key to PATH.pub, and print the public key. Enrol it at the\n"
     "peer as a line 'NAME PUBKEY' of its peers file (docs/peers.md).\n"
     "Refuses to overwrite an existing key unless --force is given.\n",
     smg_cmd_keygen},
    {"init", "set up this host: state directory, identity key, config files",
     "usage: secmig init [--name NAME] [--mode tpm|software] [--state-dir DIR]\n"
     "                   [--config FILE] [--force]\n\n"
     "A host's first step (docs/operating.md). Creates the state directory DIR\n"
     "(default $SECMIG_STATE_DIR or /var/lib/secmig) with mode 0700, the\n"
     "identity key DIR/host.key, and the config files the package ships:\n"
     "FILE (default $SECMIG_CONFIG or /etc/secmig/secmig.conf) and, next to\n"
     "it, peers, policy (its 'host' line NAME, default the hostname; its\n"
     "'mode' tpm or software) and hostdefs, their paths pointing at each other\n"
     "and at DIR. Prints the public key to enrol on the peers and the next\n"
     "steps. An existing key or FILE is kept unless --force; peers, policy\n"
     "and hostdefs are never replaced (a file still exactly as shipped is\n"
     "personalised). 'secmig config check' accepts the result (in TPM mode\n"
     "once 'secmig tpm-enroll' ran). Exit 11 if a file cannot be written.\n",
     smg_cmd_init},
    {"audit", "show and verify this host's signed, hash-chained audit log",
     "usage: secmig audit show [--state-dir DIR] [FILE...] [--json] [--since T] [--id "
     "ID]\n"
     "       secmig audit verify [--state-dir DIR] [FILE...] [--key PUB] [--head FILE]\n"
     "                           [--peer-log FILE]... [--peer-key PUB]\n"
     "       secmig audit rotate [--state-dir DIR] [--name NAME]\n"
     "       secmig audit counters [--state-dir DIR] [--json]\n\n"
     "Every migration attempt, refusal and suspicious event on this host is a\n"
     "record in DIR/audit/audit.log, signed with the host key and chained to the\n"
     "one before (docs/audit.md). show prints them (--json: the signed JSON;\n"
     "--since -1h, @UNIXTIME or YYYY-MM-DDTHH:MM:SSZ). verify checks the chain,\n"
     "every signature, the head (truncation) and the manifest and receipt\n"
     "signatures inside each record; with the peer's log (--peer-log, its files\n"
     "oldest first) it also checks that both halves of every migration agree.\n"
     "Each problem is printed as FILE:LINE: record N: what. Exit 0 if all holds,\n"
     "7 if anything was found. rotate starts a new log linked to the old one.\n"
     "counters prints the suspicious-activity counters (DIR/audit/counters).\n",
     smg_cmd_audit},
    {"ticket", "sign a migration ticket with an operator key",
     "usage: secmig ticket sign --key OPERATOR.key --operator NAME --vm NAME\n"
     "                          --from HOST --to HOST [--not-after T] [--out FILE]\n"
     "       secmig ticket show FILE\n\n"
     "A ticket lets `secmig send --ticket FILE` migrate one VM from one host to\n"
     "another, once, before --not-after (+30m, +2h, +1d, @UNIXTIME or\n"
     "YYYY-MM-DDTHH:MM:SSZ; default +1h). Both hosts check it at plan time\n"
     "against their operators file (signature, role, scope, expiry, single use)\n"
     "and refuse with exit 5. The key is an Ed25519 key from `secmig keygen`.\n",
     smg_cmd_ticket},
    {"operator", "enrol operators (and their roles) in a host's operators file",
     "usage: secmig operator admin --name NAME --key PUB [--file F | --state-dir DIR]\n"
     "       secmig operator enrol --admin NAME --admin-key KEY --name NAME --key PUB\n"
     "                             --vms GLOB[,GLOB] [--from SEL[,SEL]] [--to "
     "SEL[,SEL]]\n"
     "                             [--file F | --state-dir DIR]\n"
     "       secmig operator revoke --admin NAME --admin-key KEY --name NAME\n"
     "                             [--file F | --state-dir DIR]\n"
     "       secmig operator list [--file F | --state-dir DIR]\n\n"
     "Roles: an admin (a trust anchor root adds) may enrol and revoke operators;\n"
     "an operator may sign tickets for the VMs matching --vms between hosts\n"
     "matching --from / --to (a host-name glob or a host label key=value from the\n"
     "policy). enrol and revoke print a line signed with the admin's key; with\n"
     "--file or --state-dir it is appended to that operators file (DIR/operators)\n"
     "after the file with it validates. Paste the same lines on every host.\n",
     smg_cmd_operator},
    {"help", "show help for a command", "usage: secmig help [COMMAND]\n", smg_cmd_help},
    {"send", "migrate a running domain to a receiver",
     "usage: secmig send --to NAME[:PORT] --domain DOMAIN [--max-downtime MS]\n"
     "       secmig send --to HOST[:PORT] --peer NAME --domain DOMAIN ...\n"
     "                   [--on-no-converge abort|extend] [--bandwidth RATE]\n"
     "                   [--channels N] [--no-auto-converge] [--max-rounds N]\n"
     "                   [--json] [--state-dir DIR] [--backend sim] [--key FILE]\n"
     "                   [--peers FILE] [--name NAME]\n"
     "                   [--rule downtime|xen|stop-and-copy] [--check-memory]\n"
     "                   [--storage-mode waio|dbt] [--disk-socket PATH]\n"
     "                   [--disk-workload read-hot|write-heavy|mixed|trace:FILE]\n"
     "                   [--policy FILE [--tcti TCTI]] [--ticket FILE]\n"
     "                   [--operators FILE]\n\n"
     "--ticket FILE: an operator's migration ticket (secmig ticket sign); both\n"
     "hosts check it against their operators file (DIR/operators or\n"
     "--operators) before any VM byte, exit 5 if refused. Every attempt is\n"
     "recorded in DIR/audit (secmig audit); the manifest is signed with the\n"
     "host key and the destination's countersigned receipt checked before\n"
     "COMMIT (exit 7 if missing or wrong).\n\n"
     "The destination is an enrolled peer, pinned: --to NAME connects to the\n"
     "addr=HOST:PORT of NAME's line in the peers file (or to NAME itself), and\n"
     "--to HOST[:PORT] --peer NAME connects there; either way the handshake\n"
     "fails (exit 3) unless NAME's key answers. The COMMIT record keeps that\n"
     "key: only that host can later settle 'secmig resolve'.\n\n"
     "Pre-copy DOMAIN's memory (and disks) to the receiver; stop-and-copy\n"
     "starts only when the estimated downtime (remaining memory and disk\n"
     "delta over the measured bandwidth, plus the destination's load time)\n"
     "fits --max-downtime (default 300 ms). When the round cap\n"
     "(--max-rounds, default 30) or a maxed-out throttle comes first,\n"
     "--on-no-converge decides: abort (default, exit 8, the VM keeps running)\n"
     "or extend (stop-and-copy over the budget; the result says so).\n"
     "Dirtying that outpaces the link throttles the VM (auto-converge) unless\n"
     "--no-auto-converge. --bandwidth caps the rate (e.g. 100M bytes/s).\n"
     "Then verify end to end and hand over (READY / COMMIT / DONE).\n\n"
     "Ctrl-C, SIGTERM, SIGHUP, a closed output (SIGPIPE) or 'secmig cancel'\n"
     "before COMMIT abort in order: ABORT to the destination, the VM running\n"
     "here, a result, exit 13. From COMMIT to DONE they are deferred: the\n"
     "hand-over completes or ends in doubt (exit 9; run 'secmig resolve').\n"
     "'secmig status' shows it running; 'secmig tune' changes --bandwidth and\n"
     "--max-downtime live.\n\n"
     "--json prints one event per line (docs/events.md); the last is\n"
     "{\"event\":\"result\",...}. --policy FILE: TPM-bound session with quotes\n"
     "checked, the destination must carry the VM's placement labels (exit 4:\n"
     "attestation, 5: policy). Disks migrate with the memory (--storage-mode,\n"
     "default waio; docs/storage.md), driven through this host's disk service\n"
     "('secmig disk serve'; --disk-socket PATH, default DIR/disk.sock), which\n"
     "serves them over NBD throughout; --disk-workload adds synthetic guest disk\n"
     "I/O in the disk service (sim VMs). DIR (default $SECMIG_STATE_DIR or "
     "/var/lib/secmig) holds\n"
     "host.key, peers, the sim host socket and control/. --check-memory\n"
     "(tests) re-hashes the paused VM's memory. Exit codes: README table.\n",
     smg_cmd_send},
    {"precheck", "check that a migration would succeed, without moving the VM",
     "usage: secmig precheck --to NAME[:PORT] --domain DOMAIN [--json]\n"
     "       secmig precheck --to HOST[:PORT] --peer NAME --domain DOMAIN ...\n"
     "                   [--ticket FILE] [--operators FILE] [--policy FILE\n"
     "                   [--tcti TCTI]] [--state-dir DIR] [--backend sim]\n"
     "                   [--key FILE] [--peers FILE] [--name NAME]\n"
     "                   [--disk-socket PATH] [--io-timeout MS]\n\n"
     "Would 'secmig send' with these options succeed? Checks, in order, and\n"
     "stops at the first that cannot run: this host's backend and DOMAIN (and\n"
     "its disks), the authenticated handshake with the destination (in TPM\n"
     "mode with attestation), this host's policy (ACL, placement) and ticket,\n"
     "then the destination's: the plan, its backend, its policy, the ticket,\n"
     "its host definitions and its free capacity. Prints each check (--json:\n"
     "one {\"event\":\"precheck\",...} line, docs/events.md). The VM is not\n"
     "paused or copied; no ticket is used up and nothing is reserved on the\n"
     "destination (docs/protocol.md, PRECHECK). Exit 0 if all pass, else the\n"
     "code send would exit with: 3 authentication, 4 attestation, 5 policy,\n"
     "ticket or host definitions, 6 unreachable, 11 configuration, 12 backend\n"
     "or domain, 14 capacity (README \"Exit codes\").\n",
     smg_cmd_precheck},
    {"recv", "receive migrations (a service; --once for one)",
     "usage: secmig recv --listen ADDR[:PORT] [--once] [--max-concurrent N] [--json]\n"
     "                   [--channels N] [--state-dir DIR] [--backend sim] [--key FILE]\n"
     "                   [--peers FILE] [--name NAME] [--check-memory]\n"
     "                   [--disk-socket PATH] [--io-timeout MS]\n"
     "                   [--progress-timeout MS] [--session-timeout MS]\n"
     "                   (--policy FILE [--tcti TCTI] | --insecure-software-mode)\n"
     "                   --defs FILE [--operators FILE]\n\n"
     "Accept authenticated migrations and resolve queries. The first output line\n"
     "names the port and the name this host claims (--name, default the\n"
     "hostname): sources must enrol this host under that name.\n"
     "Liveness (docs/protocol.md): a session fails when no byte moved on any of\n"
     "its channels for --io-timeout (60000), when the peer sent nothing but\n"
     "keepalives for --progress-timeout (900000), and in any case after\n"
     "--session-timeout (86400000, one day).\n"
     "--policy FILE: TPM-bound sessions as for send; at PLAN the source must be\n"
     "enrolled with a 'send' line for the domain and this host must carry the VM's\n"
     "placement labels, else ABORT (exit 5) before any page moves. Without a\n"
     "policy recv refuses to start unless --insecure-software-mode is given.\n"
     "--defs FILE: this host's VM definitions and capacity (docs/hostdef.md; or a\n"
     "'defs FILE' line in the policy): every plan is matched against them, else\n"
     "ABORT (exit 5). Incoming disks go to this host's disk service (--disk-socket\n"
     "PATH, default DIR/disk.sock), which names them DOMAIN.INDEX, keeps them in\n"
     "the definitions' storage directory (start it with 'disk serve --defs FILE')\n"
     "and serves them over NBD.\n"
     "A refusal tells the source why (domain exists: exit 15, no room: 14,\n"
     "backend missing: 12, policy: 5). A copy that fails verification goes to\n"
     "DIR/quarantine/ID/ with a reason file (exit 7), never resumed. Runs until\n"
     "killed (at most N migrations at once, default 4; it refuses to start,\n"
     "exit 12, when its backend does not answer within 5 s); --once serves one\n"
     "session and exits with its code. Outcomes are recorded durably in\n"
     "DIR/outcomes/; a resolve query is answered only to that migration's source.\n"
     "Tickets (send --ticket) are checked against DIR/operators or --operators;\n"
     "every attempt, refusal and refused handshake is recorded in DIR/audit.\n",
     smg_cmd_recv},
    {"resolve", "settle an in-doubt migration by asking the destination",
     "usage: secmig resolve --domain NAME [--to HOST[:PORT]] [--json] [--state-dir DIR]\n"
     "                      [--backend sim] [--key FILE] [--peers FILE] [--name NAME]\n"
     "                      [--policy FILE [--tcti TCTI]]\n\n"
     "After 'send' exited 9 (in doubt), ask the host that took the COMMIT what\n"
     "happened: if it runs the VM the paused source copy is destroyed, otherwise\n"
     "it is resumed. Only that host (its name and key, kept with the COMMIT\n"
     "record) may answer: any other host is an error (exit 3) and nothing is\n"
     "settled. --to overrides the address recorded then. --policy as for send\n"
     "(TPM mode). The answer must carry the destination's signature\n"
     "(docs/audit.md). Exit 0 when settled, 9 while the destination cannot be\n"
     "reached, 7 when its answer is unsigned or wrongly signed (nothing settled).\n",
     smg_cmd_resolve},
    {"status", "list the migrations running on this host",
     "usage: secmig status [--json] [--state-dir DIR]\n\n"
     "Every migration running on this host, both directions (send and recv\n"
     "processes, through their control sockets in DIR/control/): id, role,\n"
     "domain, peer, phase, round (and how much of it is sent), % of memory\n"
     "and disks copied, rate, dirty rate, ETA of pre-copy, downtime budget.\n"
     "--json: one {\"event\":\"status\",\"migrations\":[...]} line (docs/events.md).\n"
     "Root only (the sockets are 0600 in a 0700 directory, peers checked).\n",
     smg_cmd_status},
    {"metrics", "print this host's migration counters (Prometheus text format)",
     "usage: secmig metrics [--output FILE] [--state-dir DIR]\n\n"
     "The counters of this host's migration processes (the recv service and\n"
     "running sends, through their control sockets in DIR/control/), summed,\n"
     "in the Prometheus text exposition format: migrations by outcome, refused\n"
     "attempts by reason, bytes, downtime and rounds histograms, active\n"
     "migrations, reloads. --output FILE writes FILE atomically (for\n"
     "node_exporter's textfile collector) instead of stdout. Names and\n"
     "labels: docs/operating.md. Root only, as status.\n",
     smg_cmd_metrics},
    {"cancel", "cancel a running migration (before COMMIT)",
     "usage: secmig cancel ID | --domain NAME [--json] [--state-dir DIR]\n\n"
     "Cancel a migration of this host (either direction) before COMMIT: it\n"
     "aborts in order and its send exits 13, the VM running on the source.\n"
     "Past COMMIT it is refused (exit 1): the hand-over completes or ends in\n"
     "doubt. Exit 12 if no such migration runs here.\n",
     smg_cmd_cancel},
    {"tune", "change a running migration's bandwidth cap or downtime budget",
     "usage: secmig tune ID | --domain NAME [--bandwidth RATE|none]\n"
     "                   [--max-downtime MS] [--json] [--state-dir DIR]\n\n"
     "Change a sending migration before stop-and-copy, like virsh\n"
     "migrate-setspeed and migrate-setmaxdowntime: the new bandwidth cap\n"
     "applies to the next frame, the new budget to the next stop decision.\n",
     smg_cmd_tune},
    {"demo", "migrate a 1 GiB sim VM between two local sim hosts",
     "usage: secmig demo [--json] [--memory SIZE] [--dirty-rate RATE]\n"
     "                   [--workload idle|uniform|hotspot] [--channels N] [--keep]\n\n"
     "Start two sim hosts, a receiver and a sender on loopback, create a VM\n"
     "(default 1G, hot-spot workload at 50M bytes/s), migrate it, verify it on\n"
     "the destination and print a summary. --keep leaves the temporary directory.\n",
     smg_cmd_demo},
    {"disk", "run the per-host disk service and manage its disks",
     "usage: secmig disk [--state-dir DIR] SUBCOMMAND\n\n"
     "  serve [--defs FILE | [--storage-dir SDIR] [--capacity SIZE]\n"
     "        [--max-disk SIZE]] [--surrogate-dir WDIR] [--chunk SIZE] [--direct]\n"
     "                    run the disk service (foreground): control socket\n"
     "                    DIR/disk.sock, NBD DIR/nbd.sock (export = disk name),\n"
     "                    images SDIR/NAME.img (default DIR/disks). --defs FILE:\n"
     "                    SDIR, --max-disk and --capacity are the host\n"
     "                    definitions' storage, 'limit vm disk=' and 'limit total\n"
     "                    disk=' (docs/hostdef.md), as recv --defs reads them\n"
     "  list              NAME SIZE STATE NBD-CLIENTS per disk\n"
     "  create NAME SIZE  a new empty (sparse) image\n"
     "  import NAME FILE  copy FILE in (holes kept)\n"
     "  delete NAME       remove a disk no migration or client uses\n"
     "  settle NAME resumed|aborted\n"
     "                    source, after 'secmig resolve': drop the handed-over\n"
     "                    copy, or merge it back and release its I/O\n"
     "  resume NAME       destination: release a committed incoming disk\n"
     "  workload NAME read-hot|write-heavy|mixed|trace:FILE|stop\n"
     "                    synthetic guest disk I/O (sim VMs)\n\n"
     "Disk i of domain D is named D.i; the sim config says 'disk = D.i'.\n"
     "qemu-io -f raw 'nbd+unix:///NAME?socket=DIR/nbd.sock'. See docs/storage.md.\n",
     smg_cmd_disk},
    {"sim", "run a sim host and manage its simulated domains",
     "usage: secmig sim [--state-dir DIR | --socket PATH] SUBCOMMAND\n\n"
     "  host              run the sim host daemon on DIR/sim.sock (foreground)\n"
     "  create CONFIG     create and start a domain from a config file\n"
     "  list              list domains: name state memory vcpus writes\n"
     "  verify NAME       check every page of NAME (lost, stale, misplaced,\n"
     "                    corrupted) and its vCPU state; exit 7 on damage\n"
     "  destroy NAME      destroy NAME\n"
     "  vtpm NAME         print CTRL-SOCKET TCTI of NAME's vTPM (tpm2-tools:\n"
     "                    TPM2TOOLS_TCTI=TCTI)\n"
     "  pause|unpause NAME\n\n"
     "DIR defaults to $SECMIG_STATE_DIR or /var/lib/secmig.\n"
     "Config file (key = value, # comments):\n"
     "  name = vm1            memory = 64M           vcpus = 2\n"
     "  workload = idle|uniform|hotspot|trace        dirty_rate = 50M  (bytes/s)\n"
     "  hot_writes = 90  hot_pages = 5   (X % of writes to Y % of pages)\n"
     "  zero_pct = 20     seed = 1        trace = FILE (page numbers, one a line)\n"
     "  disk = PATH       nic = mac=52:54:00:00:00:01,ipv4=10.0.0.2,ipv6=fd00::2\n"
     "  vtpm = yes        (a guest vTPM: an swtpm the sim host runs; it migrates)\n"
     "  placement = region=eu-west region=eu-central  (allowed destination labels)\n",
     smg_cmd_sim},
    {"qemu", "run QEMU VMs from this host's definitions",
     "usage: secmig qemu [--state-dir DIR] [--incoming] start|stop|status|cmdline NAME\n"
     "       secmig qemu check FILE\n\n"
     "  start NAME    start NAME as this host runs it (DIR/qemu/NAME.vm): its taps\n"
     "                on their bridges, its swtpm, then QEMU, detached; secmig\n"
     "                talks to it on DIR/qemu/NAME.qmp and maps its RAM file;\n"
     "                --incoming: wait for QEMU's own migration (-incoming\n"
     "                defer, a fresh vTPM) instead, for migrate-incoming\n"
     "  stop NAME     quit NAME's QEMU, remove its taps and RAM file (the vTPM\n"
     "                state stays)\n"
     "  status NAME   QEMU's run state (running, paused, ...) and pid, or\n"
     "                'absent -1'\n"
     "  cmdline NAME  print the QEMU command line NAME is started with\n"
     "  check FILE    validate a definition; exit 11 with FILE: line N: what\n\n"
     "A destination starts an incoming copy from its own NAME.vm with the same\n"
     "command line plus -incoming defer; see docs/qemu.md for the keys\n"
     "(name, memory, vcpus, machine, accel, qemu, kernel, initrd, cmdline,\n"
     "firmware, ram, serial, nic, disk, vtpm, placement).\n",
     smg_cmd_qemu},
    {NULL, NULL, NULL, NULL},
};
