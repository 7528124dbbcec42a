/* bench_qemu_scan [--size-mib N] [--scans K] [--dir D]: what the qemu
 * backend's exact dirty tracking costs (engine/backend/qemu_ram.c). A RAM
 * file of N MiB (default 1024) in D (default /dev/shm), every page backed
 * with random bytes, then: round 0 (copy + tag every page, as read_pages
 * does for the engine), and K full scans (tag every page, compare with the
 * sent tag) on T threads (-t, default 1; the final scan uses every CPU). Prints ms per
 * GiB for each, next to memcpy of the same memory as the floor; the last line is JSON.
 * Run it on a quiet machine. */
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

static double per_gib(uint64_t ns, uint64_t bytes)
{
	return (double)ns / 1e6 / ((double)bytes / (double)(1u << 30));
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024, scans = 5, t0, dirty;
	unsigned threads = 1;
	const char *dir = "/dev/shm";
	char path[512];
	int c, fd;

	while ((c = getopt(argc, argv, "s:k:d:t:")) != -1) {
		if (c == 's')
			mib = strtoull(optarg, NULL, 10);
		else if (c == 'k')
			scans = strtoull(optarg, NULL, 10);
		else if (c == 'd')
			dir = optarg;
		else if (c == 't')
			threads = (unsigned)strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (sodium_init() < 0 || mib == 0 || scans == 0)
		return 1;
	uint64_t bytes = mib << 20, pages = bytes / SMG_QEMU_PAGE_SIZE;
	snprintf(path, sizeof(path), "%s/smg-bench-scan.XXXXXX", dir);
	if ((fd = mkstemp(path)) < 0 || ftruncate(fd, (off_t)bytes) != 0)
		return 1;
	uint8_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint8_t *copy = malloc(bytes), *page = malloc(SMG_QEMU_PAGE_SIZE);
	uint64_t *bm = calloc((pages + 63) / 64, 8);
	struct smg_qemu_ram r;

	if (m == MAP_FAILED || copy == NULL || page == NULL || bm == NULL)
		return 1;
	randombytes_buf(m, bytes);
	memset(copy, 1, bytes); /* fault it in: the floor is the copy alone */
	t0 = smg_now_ns();
	memcpy(copy, m, bytes);
	uint64_t copy_ns = smg_now_ns() - t0;
	if (smg_qemu_ram_open(path, bytes, false, false, &r) != SMG_OK ||
	    smg_qemu_ram_track_start(&r) != SMG_OK)
		return 1;
	t0 = smg_now_ns();
	for (uint64_t p = 0; p < pages; p++)
		smg_qemu_ram_read(&r, &p, 1, page);
	uint64_t read_ns = smg_now_ns() - t0;
	for (uint64_t k = 0; k < scans; k++)
		if (smg_qemu_ram_scan(&r, bm, &dirty, threads) != SMG_OK || dirty != 0)
			return 1;
	printf("RAM %llu MiB: memcpy %.0f ms/GiB, round 0 (copy + tag) %.0f ms/GiB, "
	       "scan %.0f ms/GiB (mean of %llu, %u threads)\n",
	       (unsigned long long)mib, per_gib(copy_ns, bytes), per_gib(read_ns, bytes),
	       per_gib(r.scan_ns, r.scan_bytes), (unsigned long long)scans, threads);
	printf("{\"scan_ms_per_gib\":%.0f,\"round0_ms_per_gib\":%.0f,\"memcpy_ms_per_"
	       "gib\":%.0f,"
	       "\"mib\":%llu}\n",
	       per_gib(r.scan_ns, r.scan_bytes), per_gib(read_ns, bytes),
	       per_gib(copy_ns, bytes), (unsigned long long)mib);
	smg_qemu_ram_close(&r);
	munmap(m, bytes);
	close(fd);
	unlink(path);
	free(copy);
	free(page);
	free(bm);
	return 0;
}
