/* The subcommand table: one row per command, implemented in cmd_<name>.c. */
#include <stddef.h>

#include "cli/cli.h"

const struct smg_cmd smg_cmds[] = {
    {"version", "print version, backends and library versions",
     "usage: secmig version\n\n"
     "Print secmig's version, the compiled-in hypervisor backends and the\n"
     "versions of libsodium, liburing, protobuf-c and tpm2-tss.\n",
     smg_cmd_version},
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
     "usage: secmig config check FILE\n\n"
     "Parse FILE (docs/attestation.md) and report the first error as FILE:LINE.\n"
     "Exit 0 if valid, 11 if not.\n",
     smg_cmd_config},
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
