/* storage/ internals shared by disk.c, waio.c, dbt.c and src.c. */
#ifndef SMG_STORAGE_INTERNAL_H
#define SMG_STORAGE_INTERNAL_H

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>

#include "base/base.h"
#include "storage/storage.h"

/* Read popularity is counted always (the I/O agent watches the workload
 * before a migration starts); every AGE_READS guest reads all counts halve,
 * so "popular" means recently popular. */
#define AGE_READS (1u << 16)
/* WAIO's scan reads the original in pieces this big and lets a guest read
 * that needs the original go first (waiting at most SCAN_YIELD_MAX_US). */
#define SCAN_PIECE	  (64u << 10)
#define SCAN_YIELD_MAX_US 2000u
#define STRIPES		  64u
/* The bulk scan reads this much at once while the guest leaves the
 * original alone (QEMU's block migration reads 1 MiB chunks too). */
#define SCAN_WINDOW (1u << 20)
/* "The guest is doing I/O": a request began within this long. */
#define GUEST_RECENT_NS (20u * 1000 * 1000)
#define SCAN_NICE	19 /* WAIO's reader while the guest does I/O */
#define SCAN_GAP_MAX_NS (2u * 1000 * 1000)
/* The scan's nap after a piece, in thousandths of the piece's read time,
 * for a guest that only reads (less the more it writes), re-measured from
 * the guest's requests every SCAN_MIX_NS. */
#define SCAN_NAP_PM_MAX 2000u
#define SCAN_MIX_NS	(100u * 1000 * 1000)
#define REGION_BYTES	(1u << 20)

enum disk_mig {
	DISK_MIG_NONE = 0,
	DISK_MIG_WAIO,
	DISK_MIG_DBT,
};

struct smg_vdisk {
	struct smg_image *orig;
	uint64_t size;
	uint32_t chunk;
	uint64_t nchunks;
	unsigned hot_threshold;
	bool no_yield; /* WAIO's reader does not yield (measurements) */
	char *surr_dir;
	char *surr_name; /* NULL: mkstemp */

	/* the gate: pause waits for in-flight guest I/O, holds new I/O */
	pthread_mutex_t gate_mu;
	pthread_cond_t gate_cv;
	unsigned paused;
	unsigned inflight;
	bool failed; /* smg_vdisk_fail_io: every new request fails */

	enum disk_mig mig; /* changed only while paused */
	/* chunk written since its bit was last cleared: DBT writes to the
	 * original, WAIO writes to the surrogate */
	_Atomic uint64_t *dirty;
	/* WAIO: chunk written again while its dirty bit was set (at least
	 * twice since the bit was last cleared): the guest's hottest writes */
	_Atomic uint64_t *dirty2;

	/* WAIO: the surrogate store (same offsets as the original, sparse) */
	struct smg_image *surr;
	char *surr_path;
	/* cover/full/written of chunk c are guarded by stripe[c % STRIPES]:
	 * a hot copy or a partial-sector fill holds one chunk's stripe for
	 * one 64 KiB write, never the whole disk's reads. */
	pthread_mutex_t stripe[STRIPES];
	uint8_t **cover;  /* per chunk: sector bitmap, NULL = nothing covered */
	uint8_t *full;	  /* per chunk: every sector covered */
	uint8_t *written; /* per chunk: holds guest writes (merge back) */
	/* per chunk: sectors the guest wrote since the sender last took them
	 * (waio_take_delta), marked once the data landed; NULL = none */
	uint8_t **delta;
	/* Read popularity per region (REGION_BYTES, a whole number of chunks):
	 * coarser than the chunk so a hot set is seen within a second. */
	uint32_t region; /* chunks per region */
	uint64_t nregions;
	_Atomic uint32_t *reads; /* per region, always counted */
	_Atomic uint64_t reads_total;
	/* the hot copier's queue of regions, under hot_mu */
	pthread_mutex_t hot_mu;
	uint8_t *queued; /* per region */
	uint64_t *hotq;	 /* ring of nregions entries */
	uint64_t hotq_head, hotq_n;
	bool hot_busy; /* a copy is in progress */
	pthread_cond_t hot_cv;
	pthread_t hot_thread;
	bool hot_running, hot_stop;
	_Atomic unsigned orig_guest;	/* guest reads in flight on the original */
	_Atomic uint64_t guest_last_ns; /* start of the latest guest request */
	_Atomic uint64_t guest_orig_ns; /* ... of the latest one on the original */

	_Atomic uint64_t st_reads, st_writes, st_surr_reads, st_hot, st_merged;
};

static inline uint64_t chunk_of(const struct smg_vdisk *d, uint64_t off)
{
	return off / d->chunk;
}

static inline uint32_t chunk_len(const struct smg_vdisk *d, uint64_t c)
{
	uint64_t start = c * d->chunk;

	return d->size - start < d->chunk ? (uint32_t)(d->size - start) : d->chunk;
}

static inline uint64_t region_of(const struct smg_vdisk *d, uint64_t c)
{
	return c / d->region;
}

static inline pthread_mutex_t *stripe_of(struct smg_vdisk *d, uint64_t c)
{
	return &d->stripe[c % STRIPES];
}

static inline void dirty_set(struct smg_vdisk *d, uint64_t c)
{
	atomic_fetch_or(&d->dirty[c / 64], 1ull << (c % 64));
}

/* WAIO: dirty_set that also notes a second write since the bit was cleared. */
static inline void dirty_set_counted(struct smg_vdisk *d, uint64_t c)
{
	uint64_t bit = 1ull << (c % 64);

	if (atomic_fetch_or(&d->dirty[c / 64], bit) & bit)
		atomic_fetch_or(&d->dirty2[c / 64], bit);
}

/* waio.c */
int waio_begin(struct smg_vdisk *d);
/* merge: write the surrogate's guest writes back into the original. */
int waio_end(struct smg_vdisk *d, bool merge);
int waio_read(struct smg_vdisk *d, void *buf, size_t len, uint64_t off);
int waio_write(struct smg_vdisk *d, const void *buf, size_t len, uint64_t off);
int waio_trim(struct smg_vdisk *d, uint64_t off, uint64_t len);
/* The guest's current view of chunk c (original merged with surrogate). */
int waio_read_chunk(struct smg_vdisk *d, uint64_t c, uint8_t *buf);
/* Copy chunk c's delta (sectors written since the last take) into bits and
 * clear it; returns how many sectors it holds. */
uint32_t waio_take_delta(struct smg_vdisk *d, uint64_t c, uint8_t *bits);
/* Sectors in chunk c's delta now (an estimate: writes go on). */
uint32_t waio_delta_sectors(struct smg_vdisk *d, uint64_t c);
/* Wait until the chunks already known to be popular are on the surrogate. */
void waio_wait_hot(struct smg_vdisk *d);

/* record.c: frame encoder (our own frames; the decoder is the public one) */
struct rec_frame {
	uint8_t *buf;
	size_t cap, off;
	uint16_t count;
};
void rec_frame_begin(struct rec_frame *f, uint8_t *buf, size_t cap, uint8_t phase,
		     uint32_t disk_id);
/* Data bytes a new record could still carry (0: the frame is full). */
size_t rec_frame_room(const struct rec_frame *f);
void rec_frame_add(struct rec_frame *f, uint8_t kind, uint64_t off, uint32_t len,
		   const uint8_t *data);
/* Payload length (0 when no record was added). */
size_t rec_frame_end(struct rec_frame *f);

/* record.c: set leaf c of m (a disk's Merkle tree, chunk_size leaves) from
 * the image (len: chunk c's length; buf: chunk_size bytes, aligned). */
int image_chunk_hash(struct smg_image *img, uint64_t c, uint32_t chunk_size, uint32_t len,
		     uint8_t *buf, struct smg_merkle *m);

/* disk.c */
int disk_mig_begin(struct smg_vdisk *d, enum disk_mig mig);
int disk_mig_end(struct smg_vdisk *d, bool merge);

#endif
