/* Disk service internals: the disk table (svc_disk.c) and the daemon that
 * serves the control socket (service.c). */
#ifndef SMG_STORAGE_SVC_H
#define SMG_STORAGE_SVC_H

#include <pthread.h>

#include "storage/storage.h"

#define SVC_PATH_MAX 4096

enum sd_state {
	SD_FREE = 0,
	SD_BUSY,	/* being created, imported or torn down */
	SD_IDLE,	/* served, no migration */
	SD_SENDING,	/* source: tracking (WAIO/DBT), lease held */
	SD_HANDED_OVER, /* source: COMMIT recorded; I/O held until RELEASE/SETTLE */
	SD_RECEIVING,	/* destination: incoming, I/O held, lease held */
	SD_COMMITTED,	/* destination: committed, I/O held until RESUME */
};

struct svc_disk {
	enum sd_state state;
	char name[SMG_DSVC_NAME_MAX + 1];
	uint64_t size;
	uint64_t owner; /* connection holding the lease, 0: none */
	struct smg_vdisk *vd;
	struct smg_stg_src *src;
	struct smg_stg_dst *dst;
	bool held; /* the service holds guest I/O (pause or incoming) */
	struct smg_wl *wl;
	struct smg_trace *trace;
};

struct svc {
	pthread_mutex_t mu;
	struct smg_dsvc_config cfg;
	char state_dir[SVC_PATH_MAX], storage_dir[SVC_PATH_MAX], surr_dir[SVC_PATH_MAX];
	struct svc_disk disks[SMG_DSVC_DISKS_MAX];
	struct smg_nbd_server *nbd;
	uint64_t next_conn;
	int conn_fd[SMG_DSVC_CONNS_MAX]; /* -1: slot free */
	unsigned nconn;
	pthread_cond_t conn_cv; /* a connection ended */
	bool bad_image_fault;	/* SMG_FI=dst_bad_disk: CHECK damages a byte first */
};

/* What a request answers: the line's fields, then text or a payload. */
struct svc_reply {
	int err;
	char line[SMG_DSVC_LINE_MAX];
	char *text; /* SMG_DSVC_REPLY_TEXT bytes, owned by the connection */
	size_t text_len;
	uint8_t *payload; /* SMG_DSVC_FRAME_MAX bytes, owned by the connection */
	size_t payload_len;
};

struct svc_conn {
	struct svc *sv;
	uint64_t id;
	struct svc_disk *lease;
};

/* Answer one parsed request (fd: a descriptor that came with it, or -1;
 * taken over). */
void svc_dispatch(struct svc_conn *c, const struct smg_dsvc_req *q, int fd,
		  struct svc_reply *r);
/* The connection ended: undo or keep its lease (docs/storage.md). */
void svc_lease_drop(struct svc_conn *c);
/* Startup: export every image of the storage directory. */
int svc_load(struct svc *sv);
/* Shutdown: end every export (migrations in flight are undone). */
void svc_unload(struct svc *sv);

int svc_fail(struct svc_reply *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void svc_ok(struct svc_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* svc_disk.c: the table (mu held where said) and its operator verbs */
extern const char *const svc_state_names[];
enum path_kind { P_IMAGE, P_INCOMING, P_SURROGATE };
int svc_disk_path(const struct svc *sv, const char *name, enum path_kind k, char *out,
		  size_t n);
struct svc_disk *svc_find(struct svc *sv, const char *name); /* mu held */
/* mu held: a SD_BUSY slot for a new disk, within capacity; NULL: r says why */
struct svc_disk *svc_slot_new(struct svc *sv, const char *name, uint64_t size,
			      struct svc_reply *r);
/* mu held: a disk an operator may act on now */
struct svc_disk *svc_idle_disk(struct svc *sv, const char *name, struct svc_reply *r);
void svc_set_state(struct svc *sv, struct svc_disk *d, enum sd_state st, uint64_t owner);
/* Open path as d's guest disk (I/O held if held) and export it. */
int svc_bring_up(struct svc *sv, struct svc_disk *d, const char *path, bool held);
/* The disk leaves this host: its clients get EIO, the export goes. */
void svc_take_down(struct svc *sv, struct svc_disk *d);
void svc_unlink_image(const struct svc *sv, const char *name, enum path_kind k);
void svc_release_slot(struct svc *sv, struct svc_disk *d);
void svc_stop_workload(struct svc_disk *d);
void svc_do_list(struct svc *sv, struct svc_reply *r);
void svc_do_info(struct svc *sv, const char *name, struct svc_reply *r);
void svc_do_create(struct svc *sv, const struct smg_dsvc_req *q, int fd,
		   struct svc_reply *r);
void svc_do_delete(struct svc *sv, const char *name, struct svc_reply *r);
void svc_do_workload(struct svc *sv, const struct smg_dsvc_req *q, struct svc_reply *r);

#endif
