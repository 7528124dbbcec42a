/* The xen backend's private state, shared by xen.c (handles, lookup, the
 * ops table), xen_src.c (source side) and xen_dst.c (destination side). */
#ifndef SMG_XEN_INTERNAL_H
#define SMG_XEN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>

#include "engine/backend.h"
#include "engine/backend/xen_stream.h"

/* The config blob in the plan: libxc-framed records (see xen_stream.h) of
 * these private types next to libxc's CPUID/MSR policy records. Types
 * 0x1c..0x1f are unused by libxc's stream and never reach it. */
#define SMG_XC_REC_INFO 0x1cu /* le32 dhdr type, le32 xen major, minor, vcpus */
#define SMG_XC_REC_JSON 0x1du /* libxl_domain_config as JSON */
#define SMG_XC_REC_RAM	0x1eu /* le64 pairs: populated [start, end) pfns */
/* In the config: the frames populated at domain_open, their nearest
 * neighbours merged past SMG_XC_MAX_RANGES (a superset, informative). */
#define SMG_XC_MAX_RANGES 256
#define SMG_XC_JSON_MAX	  (48 * 1024)
#define SMG_XC_ALLOWED                                                          \
	(1u << SMG_XC_REC_INFO | 1u << SMG_XC_REC_JSON | 1u << SMG_XC_REC_RAM | \
	 1u << SMG_XS_REC_CPUID_POLICY | 1u << SMG_XS_REC_MSR_POLICY)
/* The state blob: what libxc writes at the end of a checkpoint, and the
 * frames populated when the guest stopped (a RAM record, exact). */
#define SMG_XS_STATE_ALLOWED                                        \
	(1u << SMG_XS_REC_TSC_INFO | 1u << SMG_XS_REC_HVM_CONTEXT | \
	 1u << SMG_XS_REC_HVM_PARAMS | 1u << SMG_XC_REC_RAM)
#define SMG_XS_STATE_RANGES_MAX 16384 /* 256 KiB of the state blob */

/* A parsed config blob; pointers borrow from the blob. */
struct smg_xen_config {
	uint32_t dhdr_type, xen_major, xen_minor, vcpus;
	uint64_t p2m_size; /* frames 0..p2m_size-1 */
	const uint8_t *json;
	size_t json_len;
	const uint8_t *cpuid, *msr;
	size_t cpuid_len, msr_len;
	size_t n_ranges;
	uint64_t ranges[SMG_XC_MAX_RANGES][2];
};

/* Bounded parse of an untrusted config blob (fuzzed: fuzz/fuzz_xen_blob.c). */
int smg_xen_config_parse(const uint8_t *buf, size_t len, struct smg_xen_config *cfg);
/* A RAM record's ranges, checked: sorted, disjoint, non-empty, below limit. */
int smg_xen_ranges_parse(const uint8_t *body, size_t len, uint64_t limit,
			 uint64_t (*out)[2], size_t max, size_t *n);

/* A parsed state blob: every record checked, the final frame set taken out
 * (libxc never sees the RAM record). */
struct smg_xen_state {
	uint64_t (*ranges)[2]; /* malloc'd */
	size_t n_ranges;
};
int smg_xen_state_parse(const uint8_t *buf, size_t len, uint64_t p2m_size,
			struct smg_xen_state *st);
void smg_xen_state_free(struct smg_xen_state *st);

struct xen_backend {
	struct smg_backend be;
	xentoollog_logger_stdiostream *lg;
	xc_interface *xch;
	xenforeignmemory_handle *fmem;
	struct xs_handle *xsh;
	libxl_ctx *ctx;
	uint32_t domid;
	bool have_domain;
	char name[SMG_DOMAIN_NAME_MAX];
	uint64_t p2m_size;
	uint8_t *config; /* our blob, built by domain_open */
	size_t config_len;
	struct smg_xen_config cfg;

	/* populated frames (xen_pop.c): pop as of the last sweep (on the
	 * destination: the source's final set); appeared: frames that were
	 * not populated at the first sweep, or failed to map while pop said
	 * populated, all sent again in the final round */
	uint64_t *pop, *appeared, *swept;
	uint64_t n_pop, sweep_ms;
	bool pop_stopped; /* pop was swept with the guest stopped */
	bool pop_fresh;	  /* pop is domain_open's sweep, not handed out yet */
	xc_hypercall_buffer_t pfi_hbuf;
	xen_pfn_t *pfi;

	/* guest frames stay mapped in chunks of SMG_XEN_CHUNK, mapped on
	 * first read (the engine reads one frame at a time) and dropped at
	 * every sweep; read_pages holds map_lock for reading */
	struct xen_chunk *chunks;
	size_t n_chunks;
	pthread_mutex_t chunk_lock;
	pthread_rwlock_t map_lock;
	xc_hypercall_buffer_t bm_hbuf;
	uint64_t *bm;
	size_t bm_pages;
	bool logdirty_on, paused, suspended, committed;

	/* destination: libxl restore reads the stream we write into pipe_w */
	int pipe_w;
	pthread_t restore_thread;
	bool restore_running;
	int restore_rc;
	uint32_t new_domid;
	char final_name[SMG_DOMAIN_NAME_MAX];
	libxl_domain_config dcfg;
	bool dcfg_init;
	struct smg_xs_sink sink;
	pthread_mutex_t sink_lock; /* write_pages runs on several threads */
	uint64_t *sent;		   /* pfns populated here, holding a page sent */
	uint64_t *zeroed;	   /* populated, then overwritten with zeros since */
	bool stream_done;
	bool is_dst;
};

#define SMG_XEN_CHUNK 1024u /* frames per foreign mapping */
struct xen_chunk {
	uint8_t *map; /* NULL: not mapped yet, or nothing in it is populated */
	bool done;
	uint64_t bad[SMG_XEN_CHUNK / 64]; /* frames that did not map: holes */
};

#define XEN_SELF(b)	    ((struct xen_backend *)(b))
#define XEN_INCOMING_SUFFIX "--incoming"

/* xen.c */
int smg_xen_open_handles(struct xen_backend *x, bool need_libxl);
int smg_xen_find_domain(struct xen_backend *x, const char *name_or_id);
int smg_xen_domain_state(struct xen_backend *x, xc_dominfo_t *info);

/* xen_src.c */
int smg_xen_src_open(struct smg_backend *self, const char *name,
		     struct smg_domain_info *info);
int smg_xen_src_logdirty_enable(struct smg_backend *self);
int smg_xen_src_logdirty_peek_clear(struct smg_backend *self, uint64_t *bitmap,
				    uint64_t *dirty);
int smg_xen_src_logdirty_disable(struct smg_backend *self);
int smg_xen_src_read_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			   uint8_t *out);
int smg_xen_src_pause(struct smg_backend *self);
int smg_xen_src_unpause(struct smg_backend *self);
int smg_xen_src_throttle(struct smg_backend *self, unsigned pct);
int smg_xen_src_save_state(struct smg_backend *self, uint8_t **blob, size_t *len);
int smg_xen_src_mark_commit(struct smg_backend *self, const char *id, const char *peer);
int smg_xen_src_destroy(struct smg_backend *self);
int smg_xen_src_pending(struct smg_backend *self, const char *name, char *id,
			size_t id_len, char *peer, size_t peer_len);
int smg_xen_src_settle(struct smg_backend *self, const char *name, bool resumed);
/* xen_pause.c: the durable pause record */
int smg_xen_src_mark_pause(struct smg_backend *self, const char *id, const char *peer);
int smg_xen_src_paused_pending(struct smg_backend *self, const char *name, char *id,
			       size_t id_len, char *peer, size_t peer_len);
int smg_xen_src_settle_paused(struct xen_backend *x, const char *name);
void smg_xen_src_clear_pause(struct xen_backend *x, uint32_t domid);
int smg_xen_src_populated(struct smg_backend *self, uint64_t *bitmap, uint64_t *count);
void smg_xen_unmap_chunks(struct xen_backend *x);
void smg_xen_unmap_chunks_locked(struct xen_backend *x); /* map_lock held */
void smg_xen_src_close(struct xen_backend *x);

/* xen_pop.c */
int smg_xen_pop_open(struct xen_backend *x);
int smg_xen_pop_harvest(struct xen_backend *x, uint64_t *bitmap, uint64_t *dirty);
int smg_xen_pop_record(struct xen_backend *x, struct smg_xs_sink *s);
int smg_xen_write_ranges(struct smg_xs_sink *s, const uint64_t (*r)[2], size_t n);
unsigned long smg_xen_tot_pages(struct xen_backend *x, uint32_t domid);
void smg_xen_pop_free(struct xen_backend *x);

/* xen_dst.c */
int smg_xen_dst_create(struct smg_backend *self, const uint8_t *config, size_t len,
		       struct smg_vm_build *build, struct smg_domain_info *info);
int smg_xen_dst_write_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			    const uint8_t *data, bool zero_only);
int smg_xen_dst_restore_state(struct smg_backend *self, const uint8_t *blob, size_t len);
int smg_xen_dst_mark_committed(struct smg_backend *self);
int smg_xen_dst_resume(struct smg_backend *self);
int smg_xen_dst_destroy(struct xen_backend *x);
int smg_xen_dst_resume_committed(struct smg_backend *self, const char *name);
void smg_xen_dst_close(struct xen_backend *x);

#endif
