/* The qemu backend's dirty tracking is exact (issue 14): a "guest" of
 * writer threads rewrites pages of a shared RAM file (through its own
 * mapping, as QEMU's vCPUs do) during every phase the guest runs in:
 * while round 0 copies everything, while later rounds copy the dirty set,
 * and while each scan hashes memory. Some writes put back a page's old
 * content (the ABA case), some write zeros, some punch the page back into
 * a hole. After the writers stop ("stop") one final scan and round must
 * leave the copy equal to memory, every page compared. As in the engine,
 * the copy starts all zero (a new RAM file) and round 0 sends only the
 * pages backed when the migration was planned (populated), taken while the
 * writers already run: a hole they fill before tracking starts must be
 * found by a scan.
 *
 * The negative control runs the same migration without the final scan
 * after stop and must find a stale page: the comparison would catch a
 * tracker that misses writes. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/qemu_internal.h"

#define PS	   SMG_QEMU_PAGE_SIZE
#define RAM_BYTES  (16u << 20)
#define WRITERS	   2
#define MIN_RACED  2000 /* writes that must land during the rounds */
#define MIN_ROUNDS 4

struct guest {
	uint8_t *mem; /* the writers' own mapping */
	int fd;
	uint64_t pages;
	atomic_bool stop;
	atomic_ullong writes;
};

struct warg {
	struct guest *g;
	unsigned seed;
};

static uint64_t rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 8) & 0xffffff;
}

static void *writer(void *arg)
{
	struct warg *a = arg;
	struct guest *g = a->g;
	unsigned s = a->seed;

	while (!atomic_load(&g->stop)) {
		uint64_t p = rnd(&s) % g->pages, kind = rnd(&s) % 16;
		uint8_t *pg = g->mem + p * PS;

		if (kind == 0) {
			memset(pg, 0, PS); /* a page that becomes zero */
		} else if (kind == 1) {
			/* the guest frees it (balloon, discard): a hole again */
			fallocate(g->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)(p * PS), PS);
		} else if (kind == 2) {
			/* ABA: change a word and put it back */
			uint64_t w;
			memcpy(&w, pg + 64, 8);
			uint64_t x = w ^ 0x5a5a5a5a5a5a5a5aull;
			memcpy(pg + 64, &x, 8);
			sched_yield();
			memcpy(pg + 64, &w, 8);
		} else {
			uint64_t v = rnd(&s) | (uint64_t)rnd(&s) << 24;
			memcpy(pg + (v % (PS / 8)) * 8, &v, 8);
		}
		atomic_fetch_add(&g->writes, 1);
	}
	return NULL;
}

static void copy_set(struct smg_qemu_ram *r, uint64_t *bm, uint8_t *copy)
{
	for (uint64_t w = 0; w < (r->pages + 63) / 64; w++) {
		while (bm[w] != 0) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bm[w]);
			bm[w] &= bm[w] - 1;
			CHECK(smg_qemu_ram_read(r, &p, 1, copy + p * PS) == SMG_OK);
		}
	}
}

/* One migration; returns how many pages of the copy differ from memory. */
static uint64_t migrate(const char *path, bool final_scan, unsigned threads)
{
	struct guest g = {0};
	struct warg wa[WRITERS];
	struct smg_qemu_ram r;
	pthread_t tid[WRITERS];
	uint64_t words = (RAM_BYTES / PS + 63) / 64, dirty, stale = 0;
	uint64_t *bm = calloc(words, sizeof(uint64_t)), n, w0;
	uint8_t *copy = calloc(1, RAM_BYTES); /* the destination: all zero */
	unsigned rounds = 0;

	CHECK(bm != NULL && copy != NULL);
	g.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(g.fd >= 0 && ftruncate(g.fd, RAM_BYTES) == 0);
	g.mem = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, g.fd, 0);
	CHECK(g.mem != MAP_FAILED);
	g.pages = RAM_BYTES / PS;
	for (uint64_t p = 0; p < g.pages; p += 3) /* some data, some holes */
		memset(g.mem + p * PS, (int)(p & 0xff) | 1, PS);
	CHECK(smg_qemu_ram_open(path, RAM_BYTES, false, false, &r) == SMG_OK);
	for (int i = 0; i < WRITERS; i++) {
		wa[i] = (struct warg){&g, 7u + 101u * (unsigned)i};
		pthread_create(&tid[i], NULL, writer, &wa[i]);
	}
	/* the plan: the backed pages; writes land before tracking starts */
	CHECK(smg_qemu_ram_populated(&r, bm, &n) == SMG_OK);
	CHECK(n > 0 && n < g.pages);
	w0 = atomic_load(&g.writes);
	while (atomic_load(&g.writes) < w0 + 256)
		sched_yield();
	CHECK(smg_qemu_ram_track_start(&r) == SMG_OK);
	/* round 0: the populated set, while the writers run */
	copy_set(&r, bm, copy);
	/* later rounds until the writers have really raced us (progress,
	 * not time: the machine may be loaded) */
	while (rounds < MIN_ROUNDS || atomic_load(&g.writes) < MIN_RACED) {
		CHECK(smg_qemu_ram_scan(&r, bm, &dirty, threads) == SMG_OK);
		copy_set(&r, bm, copy);
		rounds++;
	}
	/* The control stops only after one more write lands behind the last
	 * scan, so skipping the final scan must be visible. */
	uint64_t seen = atomic_load(&g.writes);
	while (!final_scan && atomic_load(&g.writes) < seen + 64)
		sched_yield();
	atomic_store(&g.stop, true); /* "stop": the guest is paused */
	for (int i = 0; i < WRITERS; i++)
		pthread_join(tid[i], NULL);
	if (final_scan) {
		CHECK(smg_qemu_ram_scan(&r, bm, &dirty, threads) == SMG_OK);
		copy_set(&r, bm, copy);
	}
	for (uint64_t p = 0; p < g.pages; p++)
		stale += memcmp(copy + p * PS, g.mem + p * PS, PS) != 0;
	printf(
	    "%s, %u scan threads: %u rounds, %llu guest writes during them, %llu stale "
	    "pages, scan %.0f ms/GiB hashed\n",
	    final_scan ? "exact" : "control (no final scan)", threads, rounds,
	    (unsigned long long)atomic_load(&g.writes), (unsigned long long)stale,
	    r.scan_bytes ? (double)r.scan_ns / 1e6 / ((double)r.scan_bytes / (1u << 30))
			 : 0.0);
	smg_qemu_ram_close(&r);
	munmap(g.mem, RAM_BYTES);
	close(g.fd);
	free(bm);
	free(copy);
	return stale;
}

/* A page read while it is a hole goes out as zeros, without the read
 * allocating it in the file. */
static void holes_stay_holes(const char *path)
{
	struct smg_qemu_ram r;
	uint8_t page[PS], zero[PS] = {0};
	uint64_t p = 5, bm[(RAM_BYTES / PS + 63) / 64] = {0}, dirty;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && ftruncate(fd, RAM_BYTES) == 0);
	CHECK(smg_qemu_ram_open(path, RAM_BYTES, false, false, &r) == SMG_OK);
	CHECK(smg_qemu_ram_track_start(&r) == SMG_OK);
	CHECK(smg_qemu_ram_read(&r, &p, 1, page) == SMG_OK);
	CHECK(memcmp(page, zero, PS) == 0);
	CHECK(lseek(fd, 0, SEEK_DATA) < 0); /* still no data anywhere */
	/* holes are what the destination starts with: nothing is dirty */
	CHECK(smg_qemu_ram_scan(&r, bm, &dirty, 2) == SMG_OK);
	CHECK_EQ(dirty, 0);
	/* a hole the guest fills is found; one filled with zeros needs nothing */
	memset(page, 0x3c, PS);
	CHECK(pwrite(fd, page, PS, 7 * PS) == PS && pwrite(fd, zero, PS, 9 * PS) == PS);
	CHECK(smg_qemu_ram_scan(&r, bm, &dirty, 2) == SMG_OK);
	CHECK_EQ(dirty, 1);
	CHECK(bm[0] == 1ull << 7);
	smg_qemu_ram_close(&r);
	close(fd);
}

/* The destination: pages land in a new file; a page that turns zero later
 * is punched out again. */
static void destination(const char *path)
{
	struct smg_qemu_ram r;
	uint8_t page[PS], back[PS];
	uint64_t p = 9;

	unlink(path);
	memset(page, 0xab, PS);
	CHECK(smg_qemu_ram_open(path, RAM_BYTES, true, true, &r) == SMG_OK);
	CHECK(smg_qemu_ram_open(path, RAM_BYTES, true, true, &(struct smg_qemu_ram){0}) ==
	      SMG_ERR_EXISTS);
	CHECK(smg_qemu_ram_write(&r, &p, 1, page, false) == SMG_OK);
	CHECK(pread(r.fd, back, PS, (off_t)(p * PS)) == PS &&
	      memcmp(back, page, PS) == 0);
	CHECK(smg_qemu_ram_write(&r, &p, 1, NULL, true) == SMG_OK);
	CHECK(lseek(r.fd, 0, SEEK_DATA) < 0);
	p = RAM_BYTES / PS;
	CHECK(smg_qemu_ram_write(&r, &p, 1, page, false) == SMG_ERR_INVAL);
	smg_qemu_ram_close(&r);
}

int main(void)
{
	char path[] = "/dev/shm/smg-test-ram.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		fprintf(stderr, "no /dev/shm: skipped\n");
		return T_SKIP;
	}
	close(fd);
	CHECK(sodium_init() >= 0);
	CHECK_EQ(migrate(path, true, 1), 0);
	CHECK_EQ(migrate(path, true, 3), 0); /* parts of unequal size */
	CHECK(migrate(path, false, 1) > 0);
	holes_stay_holes(path);
	destination(path);
	unlink(path);
	return check_result("test_qemu_dirty");
}
