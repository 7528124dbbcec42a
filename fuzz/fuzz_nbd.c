/* libFuzzer: one whole NBD server session (handshake, options, requests)
 * from the input bytes, against a small disk in normal mode or in a WAIO
 * migration (first byte's low bit), through smg_nbd_serve_buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"

#define DISK_SIZE (1u << 20)

static struct smg_vdisk *disks[2];
static struct smg_stg_src *mig;
static char dir[] = "/tmp/smg-fuzz-nbd-XXXXXX";

static void cleanup(void)
{
	smg_stg_src_end(mig, false);
	smg_vdisk_close(disks[0]);
	smg_vdisk_close(disks[1]);
	rmdir(dir);
}

static struct smg_vdisk *mem_disk(void)
{
	struct smg_vdisk_opts o = {.chunk_size = 64 * 1024, .hot_threshold = 2};
	struct smg_vdisk *d = NULL;
	char path[64];
	int fd = memfd_create("smg-fuzz-disk", 0);

	if (fd < 0 || ftruncate(fd, DISK_SIZE) != 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	o.path = path;
	o.surrogate_dir = dir;
	if (smg_vdisk_open(&o, &d) != 0)
		abort();
	close(fd);
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (disks[0] == NULL) {
		struct smg_stg_src_opts so = {.mode = SMG_STG_MODE_WAIO};

		smg_log_set_level(SMG_LOG_ERROR);
		if (mkdtemp(dir) == NULL)
			abort();
		disks[0] = mem_disk();
		disks[1] = mem_disk();
		if (smg_stg_src_begin(disks[1], &so, &mig) != 0)
			abort();
		atexit(cleanup);
	}
	if (size == 0)
		return 0;
	(void)smg_nbd_serve_buffer(disks[data[0] & 1], data + 1, size - 1);
	return 0;
}
