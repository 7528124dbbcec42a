/* libFuzzer: the chunk-record frame decoder, then applying the frame to a
 * destination image (offsets must stay inside the disk) and its digest. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"

#define DISK_SIZE (4u << 20)

static struct smg_stg_dst *dst;
static struct smg_stg_frame frame;
static char path[] = "/tmp/smg-fuzz-rec-XXXXXX";

static void cleanup(void)
{
	smg_stg_dst_close(dst);
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t root[SMG_STG_DIGEST_LEN];

	if (dst == NULL) {
		int fd = mkstemp(path);

		/* dst_open creates the file itself, O_EXCL */
		if (fd >= 0)
			unlink(path);

		smg_log_set_level(SMG_LOG_ERROR);
		if (fd < 0)
			abort();
		close(fd);
		if (smg_stg_dst_open(path, DISK_SIZE, 64 * 1024, 0, &dst) != 0)
			abort();
		atexit(cleanup);
	}
	(void)smg_stg_frame_decode(data, size, 0, &frame);
	if (smg_stg_dst_apply(dst, data, size) == 0 && size % 7 == 0)
		(void)smg_stg_dst_digest(dst, root);
	return 0;
}
