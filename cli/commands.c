/* The subcommand table: one row per command, implemented in cmd_<name>.c. */
#include <stddef.h>

#include "cli/cli.h"

const struct smg_cmd smg_cmds[] = {
    {"version", "print version, backends and library versions",
     "usage: secmig version\n\n"
     "Print secmig's version, the compiled-in hypervisor backends and the\n"
     "versions of libsodium, liburing, protobuf-c and tpm2-tss.\n",
     smg_cmd_version},
    {"keygen", "create a software-mode identity key pair",
     "usage: secmig keygen [--force] PATH\n\n"
     "Write a new Ed25519 identity: the private key to PATH (mode 0600) and\n"
     "the public key to PATH.pub, and print the public key. Enrol it at the\n"
     "peer as a line 'NAME PUBKEY' of its peers file (docs/peers.md).\n"
     "Refuses to overwrite an existing key unless --force is given.\n",
     smg_cmd_keygen},
    {"help", "show help for a command", "usage: secmig help [COMMAND]\n", smg_cmd_help},
    {NULL, NULL, NULL, NULL},
};
