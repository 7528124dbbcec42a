/* Raw images and block devices, read and written through io_uring.
 *
 * Each thread gets its own small ring (created on first use, torn down at
 * thread exit), so the NBD threads, the workload threads and the migration
 * reader never serialise on a shared submission queue: they meet only where
 * they should, at the device. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"

#define RING_DEPTH   8
#define DIRECT_ALIGN 4096u

struct smg_image {
	int fd;	 /* buffered */
	int dfd; /* O_DIRECT, or -1 */
	bool blockdev;
	uint64_t size;
};

struct tls_ring {
	struct io_uring ring;
	bool ok;
};

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;

static void ring_free(void *p)
{
	struct tls_ring *r = p;

	if (r->ok)
		io_uring_queue_exit(&r->ring);
	free(r);
}

static void ring_key_init(void)
{
	(void)pthread_key_create(&ring_key, ring_free);
}

static struct io_uring *thread_ring(void)
{
	struct tls_ring *r;
	int ret;

	pthread_once(&ring_once, ring_key_init);
	r = pthread_getspecific(ring_key);
	if (r != NULL)
		return r->ok ? &r->ring : NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	ret = io_uring_queue_init(RING_DEPTH, &r->ring, 0);
	r->ok = ret == 0;
	if (!r->ok)
		smg_warn("io_uring unavailable (%s); using pread/pwrite", strerror(-ret));
	pthread_setspecific(ring_key, r);
	return r->ok ? &r->ring : NULL;
}

/* One read or write, through the thread's ring; short transfers continue. */
static int rw_full(int fd, bool write, void *buf, size_t len, uint64_t off)
{
	struct io_uring *ring = thread_ring();
	uint8_t *p = buf;

	while (len > 0) {
		unsigned n = len > (1u << 30) ? (1u << 30) : (unsigned)len;
		ssize_t res;

		if (ring != NULL) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			struct io_uring_cqe *cqe;
			int r;

			if (sqe == NULL)
				return SMG_ERR_INTERNAL;
			if (write)
				io_uring_prep_write(sqe, fd, p, n, off);
			else
				io_uring_prep_read(sqe, fd, p, n, off);
			if ((r = io_uring_submit_and_wait(ring, 1)) < 0)
				return smg_err_sys(-r);
			if ((r = io_uring_wait_cqe(ring, &cqe)) < 0)
				return smg_err_sys(-r);
			res = cqe->res;
			io_uring_cqe_seen(ring, cqe);
			if (res == -EINTR || res == -EAGAIN)
				continue;
			if (res < 0)
				return smg_err_sys((int)-res);
		} else {
			res = write ? pwrite(fd, p, n, (off_t)off)
				    : pread(fd, p, n, (off_t)off);
			if (res < 0 && errno == EINTR)
				continue;
			if (res < 0)
				return smg_err_sys(errno);
		}
		if (res == 0) {
			if (write)
				return smg_err_sys(ENOSPC);
			memset(p, 0, len); /* past EOF of a short file */
			return SMG_OK;
		}
		p += res;
		off += (uint64_t)res;
		len -= (size_t)res;
	}
	return SMG_OK;
}

static bool aligned(const void *buf, size_t len, uint64_t off)
{
	return ((uintptr_t)buf % DIRECT_ALIGN) == 0 && len % DIRECT_ALIGN == 0 &&
	       off % DIRECT_ALIGN == 0;
}

static int pick_fd(const struct smg_image *img, const void *buf, size_t len, uint64_t off)
{
	return img->dfd >= 0 && aligned(buf, len, off) ? img->dfd : img->fd;
}

static int image_init(int fd, const char *path, unsigned flags, struct smg_image **out)
{
	struct smg_image *img;
	struct stat st;

	if (fstat(fd, &st) != 0)
		return smg_err_sys(errno);
	if ((img = calloc(1, sizeof(*img))) == NULL)
		return SMG_ERR_NOMEM;
	img->fd = fd;
	img->dfd = -1;
	img->blockdev = S_ISBLK(st.st_mode);
	img->size = (uint64_t)st.st_size;
	if (img->blockdev && ioctl(fd, BLKGETSIZE64, &img->size) != 0) {
		free(img);
		return smg_err_sys(errno);
	}
	if (!img->blockdev && !S_ISREG(st.st_mode)) {
		smg_err("%s: not a regular file or block device", path);
		free(img);
		return SMG_ERR_STORAGE;
	}
	if (flags & SMG_IMAGE_DIRECT) {
		int mode = (flags & SMG_IMAGE_RDONLY) ? O_RDONLY : O_RDWR;

		img->dfd = open(path, mode | O_DIRECT | O_CLOEXEC);
		if (img->dfd < 0)
			smg_warn("%s: O_DIRECT not available (%s); buffered I/O", path,
				 strerror(errno));
	}
	*out = img;
	return SMG_OK;
}

int smg_image_open(const char *path, unsigned flags, struct smg_image **out)
{
	int fd, r;

	*out = NULL;
	fd = open(path, ((flags & SMG_IMAGE_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		r = smg_err_sys(errno);
		smg_err("%s: %s", path, strerror(errno));
		return r;
	}
	if ((r = image_init(fd, path, flags, out)) != 0)
		close(fd);
	return r;
}

int smg_image_create(const char *path, uint64_t size, unsigned flags,
		     struct smg_image **out)
{
	int fd, r;

	*out = NULL;
	if (size > SMG_STG_DISK_MAX || (flags & SMG_IMAGE_RDONLY))
		return SMG_ERR_INVAL;
	fd = open(path,
		  O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
		      ((flags & SMG_IMAGE_NEW) ? O_EXCL : O_TRUNC),
		  0600);
	if (fd < 0) {
		r = smg_err_sys(errno);
		smg_err("%s: %s", path, strerror(errno));
		return r;
	}
	if (ftruncate(fd, (off_t)size) != 0) {
		r = smg_err_sys(errno);
		close(fd);
		return r;
	}
	if ((r = image_init(fd, path, flags, out)) != 0)
		close(fd);
	return r;
}

void smg_image_close(struct smg_image *img)
{
	if (img == NULL)
		return;
	if (img->dfd >= 0)
		close(img->dfd);
	close(img->fd);
	free(img);
}

uint64_t smg_image_size(const struct smg_image *img)
{
	return img->size;
}

static int check_range(const struct smg_image *img, uint64_t len, uint64_t off)
{
	if (off > img->size || len > img->size - off)
		return SMG_ERR_INVAL;
	return SMG_OK;
}

int smg_image_read(struct smg_image *img, void *buf, size_t len, uint64_t off)
{
	int r;

	if ((r = check_range(img, len, off)) != 0)
		return r;
	return rw_full(pick_fd(img, buf, len, off), false, buf, len, off);
}

int smg_image_write(struct smg_image *img, const void *buf, size_t len, uint64_t off)
{
	int r;

	if ((r = check_range(img, len, off)) != 0)
		return r;
	return rw_full(pick_fd(img, buf, len, off), true, (void *)buf, len, off);
}

int smg_image_punch(struct smg_image *img, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 * 1024];
	int r;

	if ((r = check_range(img, len, off)) != 0)
		return r;
	if (len == 0)
		return SMG_OK;
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return SMG_OK;
	if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
		return smg_err_sys(errno);
	/* No hole punching here (some block devices): write the zeros. */
	while (len > 0) {
		size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;

		if ((r = rw_full(img->fd, true, (void *)zeros, n, off)) != 0)
			return r;
		off += n;
		len -= n;
	}
	return SMG_OK;
}

void smg_image_writeback(struct smg_image *img, uint64_t off, uint64_t len)
{
	/* Advice only (tmpfs and block devices may ignore it): on failure the
	 * flush at the end writes it all. */
	if (len > 0)
		(void)sync_file_range(img->fd, (off_t)off, (off_t)len,
				      SYNC_FILE_RANGE_WRITE);
}

int smg_image_flush(struct smg_image *img)
{
	if (fdatasync(img->fd) != 0)
		return smg_err_sys(errno);
	return SMG_OK;
}

int smg_image_next_data(struct smg_image *img, uint64_t off, uint64_t *data,
			uint64_t *end)
{
	off_t d, h;

	*data = *end = img->size;
	if (off >= img->size)
		return SMG_OK;
	if (img->blockdev)
		goto all_data;
	d = lseek(img->fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO) /* only a hole from off to the end */
			return SMG_OK;
		if (errno == EINVAL || errno == EOPNOTSUPP)
			goto all_data;
		return smg_err_sys(errno);
	}
	h = lseek(img->fd, d, SEEK_HOLE);
	if (h < 0)
		return smg_err_sys(errno);
	*data = (uint64_t)d < img->size ? (uint64_t)d : img->size;
	*end = (uint64_t)h < img->size ? (uint64_t)h : img->size;
	return SMG_OK;
all_data:
	*data = off;
	*end = img->size;
	return SMG_OK;
}

int smg_image_read_sparse(struct smg_image *img, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	uint64_t pos = off, lim, d, e;
	int r;

	if ((r = check_range(img, len, off)) != 0)
		return r;
	lim = off + len;
	while (pos < lim) {
		if ((r = smg_image_next_data(img, pos, &d, &e)) != 0)
			return r;
		if (d > lim)
			d = lim;
		if (e > lim)
			e = lim;
		memset(p + (pos - off), 0, d - pos);
		if (d < e && (r = smg_image_read(img, p + (d - off), e - d, d)) != 0)
			return r;
		pos = e > d ? e : lim;
	}
	return SMG_OK;
}
