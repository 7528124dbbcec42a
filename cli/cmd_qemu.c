/* `secmig qemu`: run QEMU VMs from this host's definitions (docs/qemu.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "engine/engine.h"

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("qemu"), fmt, arg);
}

static int check_file(const char *path)
{
	struct smg_qemu_vm_info vm;
	char err[256], *buf;
	size_t n;
	FILE *f;
	int r;

	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		return SMG_EXIT_CONFIG;
	}
	if ((buf = malloc(SMG_DOMAIN_CONFIG_MAX + 1)) == NULL) {
		fclose(f);
		return SMG_EXIT_FAIL;
	}
	n = fread(buf, 1, SMG_DOMAIN_CONFIG_MAX + 1, f);
	fclose(f);
	r = smg_qemu_def_check(buf, n, &vm, err, sizeof(err));
	free(buf);
	if (r != SMG_OK) {
		fprintf(stderr, "%s: %s\n", path, err);
		return SMG_EXIT_CONFIG;
	}
	printf("%s: '%s', %llu MiB, %u vCPUs, %u NICs, %u disks, vtpm %s\n", path,
	       vm.name, (unsigned long long)(vm.mem_bytes >> 20), vm.vcpus, vm.n_nics,
	       vm.n_disks, vm.vtpm ? "yes" : "no");
	return SMG_EXIT_OK;
}

static int print_cmdline(const char *dir, const char *name)
{
	char *line;
	int r;

	if ((r = smg_qemu_cmdline(dir, name, &line)) != SMG_OK)
		return smg_exit_from_err(r);
	printf("%s\n", line);
	free(line);
	return SMG_EXIT_OK;
}

int smg_cmd_qemu(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"incoming", no_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *sub, *name;
	bool incoming = false;
	char status[32];
	pid_t pid;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:ih", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("%s", smg_cmd_find("qemu")->usage);
			return SMG_EXIT_OK;
		}
		if (c == 'i') {
			incoming = true;
			continue;
		}
		if (c != 'd')
			return usage("bad option%s", "");
		dir = optarg;
	}
	if (argc - optind != 2)
		return usage("qemu needs a subcommand and one argument%s", "");
	dir = smg_cli_state_dir(dir);
	sub = argv[optind];
	name = argv[optind + 1];
	if (strcmp(sub, "check") == 0)
		return check_file(name);
	if (!smg_qemu_name_ok(name))
		return usage("bad VM name '%s'", name);
	if (strcmp(sub, "cmdline") == 0)
		return print_cmdline(dir, name);
	if (strcmp(sub, "start") == 0)
		r = smg_qemu_vm_start(dir, name, incoming);
	else if (strcmp(sub, "stop") == 0)
		r = smg_qemu_vm_stop(dir, name);
	else if (strcmp(sub, "status") == 0) {
		if ((r = smg_qemu_vm_status(dir, name, status, sizeof(status), &pid)) ==
		    SMG_OK)
			printf("%s %d\n", status, (int)pid);
	} else
		return usage("unknown subcommand '%s'", sub);
	if (r != SMG_OK)
		fprintf(stderr, "secmig: qemu %s %s: %s\n", sub, name, smg_strerror(r));
	return smg_exit_from_err(r);
}
