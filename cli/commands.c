/* The subcommand table: one row per command, implemented in cmd_<name>.c. */
#include <stddef.h>

#include "cli/cli.h"

const struct smg_cmd smg_cmds[] = {
    {"version", "print version, backends and library versions",
     "usage: secmig version\n\n"
     "Print secmig's version, the compiled-in hypervisor backends and the\n"
     "versions of libsodium, liburing, protobuf-c and tpm2-tss.\n",
     smg_cmd_version},
    {"help", "show help for a command", "usage: secmig help [COMMAND]\n", smg_cmd_help},
    {NULL, NULL, NULL, NULL},
};
