/* The server side: one poll(2) loop runs every pre-auth connection as a
 * small state machine, nothing in it blocks, and nothing larger than two
 * handshake-sized buffers is allocated for a peer before it is
 * authenticated (DESIGN §3, §8 availability):
 *
 *   READ_FIRST -> WRITE (HELLO+AUTH) -> READ_AUTH -> [WORKING -> WRITE_FINISH]
 *     -> STREAM_WRITE -> STREAM_READ -> pending (control channel)
 *   READ_FIRST (JOIN) -> STREAM_WRITE -> STREAM_READ -> joined (data channel)
 *
 * Cheapest checks first, the way WireGuard sheds load: a connection must
 * deliver its first frame within SMG_HELLO_TIMEOUT_MS; each source address
 * holds at most SMG_PREAUTH_PER_ADDR slots; when the table is full a new
 * connection takes the slot of the oldest one that has not even sent its
 * first frame, from the address holding the most (slowloris cannot starve
 * a prompt client); a mode extension's work (TPM ECDH and quote) runs only
 * after the client's Ed25519 signature over the transcript verified, on a
 * worker thread, never on this loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "secmig.pb-c.h"
#include "transport/internal.h"

#define PENDING_MAX 4 /* authenticated sessions waiting for their channels */

enum pc_stage {
	PC_READ_FIRST,
	PC_WRITE,
	PC_READ_AUTH,
	PC_WORKING, /* the extension's work runs on the worker */
	PC_WRITE_FINISH,
	PC_STREAM_WRITE,
	PC_STREAM_READ,
};

/* The extension's (TPM) half of a client AUTH, done off the loop. While
 * queued or running the job owns hs and the buffers; a connection dropped
 * meanwhile only marks it cancelled and the worker frees it. */
struct job {
	struct hs *hs;
	uint8_t *in, *out;
	size_t in_len, out_len;
	int r;
	bool done, cancelled;
	struct job *next;
};

struct worker {
	pthread_t t;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	int evfd;
	bool running, stop;
};

/* A session from its STREAM exchange on: its channels (control included)
 * join while their STREAM frames cross. */
struct pending {
	struct smg_session *s;
	unsigned joined, joining; /* bit per channel */
	uint64_t deadline;
	bool dead; /* its control channel failed: expire() frees it */
};

struct pconn {
	int fd;
	enum pc_stage stage;
	uint64_t born, deadline, first_deadline;
	uint8_t *in; /* HS_WIRE_MAX */
	size_t have;
	uint8_t *out; /* HS_WIRE_MAX */
	size_t out_len, out_off;
	struct hs *hs;
	struct job *job;
	struct smg_session *s; /* stream stages: the session this channel joins */
	struct pending *pd;    /* data channel: its waiting session */
	unsigned chan;
	int reject; /* Reject reason when no handshake state says better */
	char addr[INET6_ADDRSTRLEN];
};

struct smg_listener {
	int fd;
	uint16_t port;
	struct smg_session_opts opts; /* copy the handshakes point into */
	struct pconn *pc;	      /* max_preauth entries */
	unsigned npc, cap;
	struct pending pend[PENDING_MAX];
	struct worker w;
};

int smg_listener_open(const char *host, uint16_t port, struct smg_listener **out)
{
	struct addrinfo hints = {0}, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct smg_listener *l;
	char portstr[8];
	int one = 1, r;

	*out = NULL;
	if ((r = smg_sodium_ready()) != 0)
		return r;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		smg_err("cannot resolve listen address %s: %s", host ? host : "*",
			gai_strerror(r));
		return SMG_ERR_CONFIG;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		freeaddrinfo(res);
		return SMG_ERR_NOMEM;
	}
	l->w.evfd = -1;
	l->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(l->fd, res->ai_addr, res->ai_addrlen) != 0 || listen(l->fd, 256) != 0 ||
	    getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0) {
		r = smg_err_sys(errno);
		smg_err("cannot listen on %s port %u: %s", host ? host : "*", port,
			strerror(errno));
		freeaddrinfo(res);
		smg_listener_close(l);
		return r;
	}
	freeaddrinfo(res);
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	*out = l;
	return SMG_OK;
}

uint16_t smg_listener_port(const struct smg_listener *l)
{
	return l->port;
}

int smg_listener_fd(const struct smg_listener *l)
{
	return l->fd;
}

/* ---- the worker: extension (TPM) work after the signature verified ------- */
static void job_free(struct job *j)
{
	if (j->hs != NULL) {
		smg_hs_wipe(j->hs);
		sodium_free(j->hs);
	}
	free(j->in);
	free(j->out);
	free(j);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct job *j;

		while (w->head == NULL && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stop)
			break;
		j = w->head;
		w->head = j->next;
		if (w->head == NULL)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		if (!j->cancelled)
			j->r = smg_hs_server_finish(j->hs, j->in, j->in_len, j->out,
						    HS_WIRE_MAX, &j->out_len);
		pthread_mutex_lock(&w->lock);
		j->done = true;
		if (j->cancelled)
			job_free(j);
		else if (write(w->evfd, &one, sizeof(one)) < 0)
			smg_warn("listener: cannot wake the accept loop");
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int worker_start(struct worker *w)
{
	if (w->running)
		return SMG_OK;
	if ((w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return smg_err_sys(errno);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->t, NULL, worker_main, w) != 0) {
		close(w->evfd);
		w->evfd = -1;
		return SMG_ERR_SYS;
	}
	w->running = true;
	return SMG_OK;
}

static void worker_stop(struct worker *w)
{
	if (!w->running)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->t, NULL);
	while (w->head != NULL) {
		struct job *j = w->head;
		w->head = j->next;
		job_free(j);
	}
	close(w->evfd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	w->running = false;
}

/* ---- connections ------------------------------------------------------- */
/* Suspicious activity goes to the caller (audit/), with the address. */
static void refused(struct smg_listener *l, const struct pconn *p, int err)
{
	if (l->opts.on_refused != NULL)
		l->opts.on_refused(l->opts.refused_arg, p->addr,
				   p->hs != NULL ? p->hs->peer_name : "", err);
}

static void pc_drop(struct smg_listener *l, unsigned i, int err)
{
	struct pconn *p = &l->pc[i];

	if (err != 0 && p->fd >= 0) {
		int why = smg_hs_reject_from_err(err);

		if (p->reject != 0)
			why = p->reject;
		if (p->hs != NULL && p->hs->reject != 0)
			why = p->hs->reject;
		smg_send_reject(p->fd, why, NULL);
	}
	if (p->fd >= 0)
		close(p->fd);
	if (p->job != NULL) {
		pthread_mutex_lock(&l->w.lock);
		if (p->job->done)
			job_free(p->job);
		else
			p->job->cancelled = true; /* the worker frees it */
		pthread_mutex_unlock(&l->w.lock);
	}
	free(p->in);
	free(p->out);
	if (p->hs != NULL) {
		smg_hs_wipe(p->hs);
		sodium_free(p->hs);
	}
	if (p->pd != NULL) {
		p->pd->joining &= ~(1u << p->chan);
		if (p->chan == 0)
			p->pd->dead = true; /* no session without its control channel */
	}
	l->pc[i] = l->pc[--l->npc];
}

static unsigned count_addr(const struct smg_listener *l, const char *addr)
{
	unsigned n = 0;

	for (unsigned i = 0; i < l->npc; i++)
		n += strcmp(l->pc[i].addr, addr) == 0;
	return n;
}

/* Whose slot a new connection may take: a connection that has not
 * delivered its first frame yet -- from the new one's own address if that
 * address is at its cap, else from the address holding the most slots;
 * the oldest of those. -1: every slot is doing real work. */
static int pick_victim(const struct smg_listener *l, const char *addr, bool same_addr)
{
	int best = -1;
	unsigned best_n = 0;

	for (unsigned i = 0; i < l->npc; i++) {
		const struct pconn *p = &l->pc[i];
		unsigned n;

		if (p->stage != PC_READ_FIRST ||
		    (same_addr && strcmp(p->addr, addr) != 0))
			continue;
		n = count_addr(l, p->addr);
		if (best < 0 || n > best_n ||
		    (n == best_n && p->born < l->pc[best].born)) {
			best = (int)i;
			best_n = n;
		}
	}
	return best;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	snprintf(out, cap, "?");
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out,
			  (socklen_t)cap);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
			  (socklen_t)cap);
}

static void pc_accept(struct smg_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned per_addr = SMG_PREAUTH_PER_ADDR;
	uint64_t now;
	int fd, v;

	while ((fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
			     SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		bool addr_full, table_full;
		struct pconn *p;

		sl = sizeof(ss);
		addr_text(&ss, host, sizeof(host));
		addr_full = count_addr(l, host) >= per_addr;
		table_full = l->npc >= l->cap;
		if ((addr_full || table_full) &&
		    (v = pick_victim(l, host, addr_full)) >= 0) {
			smg_peer_log(SMG_LOG_WARN,
				     "%s: dropped for a new connection (no first frame "
				     "yet, %u handshakes in progress)",
				     l->pc[v].addr, l->npc);
			refused(l, &l->pc[v], SMG_ERR_BUSY);
			pc_drop(l, (unsigned)v, SMG_ERR_BUSY);
		} else if (addr_full || table_full) {
			smg_peer_log(SMG_LOG_WARN,
				     "refusing %s: %u handshakes in progress (%s)", host,
				     l->npc,
				     addr_full ? "its address is at its cap" : "full");
			smg_send_reject(fd, SMG__REJECT_REASON__REJECT_BUSY, NULL);
			close(fd);
			if (l->opts.on_refused != NULL)
				l->opts.on_refused(l->opts.refused_arg, host, "",
						   SMG_ERR_BUSY);
			continue;
		}
		if (smg_sock_tune(fd, l->opts.sock_buf) != 0) {
			close(fd);
			continue;
		}
		p = &l->pc[l->npc];
		memset(p, 0, sizeof(*p));
		p->fd = fd;
		now = smg_now_ms();
		p->born = now;
		p->deadline =
		    now + (l->opts.handshake_timeout_ms ? l->opts.handshake_timeout_ms
							: SMG_HANDSHAKE_TIMEOUT_MS);
		p->first_deadline = now + SMG_HELLO_TIMEOUT_MS;
		if (p->first_deadline > p->deadline)
			p->first_deadline = p->deadline;
		snprintf(p->addr, sizeof(p->addr), "%s", host);
		if ((p->in = malloc(HS_WIRE_MAX)) == NULL) {
			close(fd);
			continue;
		}
		l->npc++;
	}
}

/* Read toward one whole frame without reading past it. 1: complete. */
static int pc_read(struct pconn *p)
{
	size_t want;
	ssize_t n;

	for (;;) {
		if (p->have < 4) {
			want = 4 - p->have;
		} else {
			uint32_t len = smg_load_be32(p->in);

			if (len > SMG_HS_FRAME_MAX)
				return SMG_ERR_TOO_LONG; /* before buffering any of it */
			if (len < 1)
				return SMG_ERR_PROTO;
			if (p->have == 4 + (size_t)len)
				return 1;
			want = 4 + (size_t)len - p->have;
		}
		n = recv(p->fd, p->in + p->have, want, MSG_DONTWAIT);
		if (n > 0)
			p->have += (size_t)n;
		else if (n == 0)
			return SMG_ERR_EOF;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		else if (errno != EINTR)
			return SMG_ERR_EOF;
	}
}

static int pc_write(struct pconn *p)
{
	ssize_t n;

	while (p->out_off < p->out_len) {
		n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			p->out_off += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		else if (n < 0 && errno != EINTR)
			return SMG_ERR_EOF;
	}
	return 1;
}

static void pc_queue(struct pconn *p, const uint8_t *buf, size_t len, enum pc_stage next)
{
	memcpy(p->out, buf, len);
	p->out_len = len;
	p->out_off = 0;
	p->stage = next;
}

static struct pending *find_pending(struct smg_listener *l, const uint8_t *id)
{
	for (unsigned i = 0; i < PENDING_MAX; i++)
		if (l->pend[i].s != NULL &&
		    sodium_memcmp(l->pend[i].s->session_id, id, 32) == 0)
			return &l->pend[i];
	return NULL;
}

/* Both sides' STREAM frames, without blocking: ours first. */
static int stream_begin(struct pconn *p, struct smg_session *s, unsigned chan)
{
	uint8_t frame[SMG_STREAM_FRAME_LEN];

	if (p->out == NULL && (p->out = malloc(HS_WIRE_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	p->s = s;
	p->chan = chan;
	smg_session_stream_offer(s, chan, frame);
	pc_queue(p, frame, sizeof(frame), PC_STREAM_WRITE);
	p->have = 0;
	return SMG_OK;
}

/* A JOIN names its session and proves knowledge of its key. */
static int on_join(struct smg_listener *l, struct pconn *p)
{
	const uint8_t *body;
	size_t blen, used;
	uint8_t type, mac[crypto_auth_BYTES];
	ProtobufCMessage *m = NULL;
	struct pending *pd;
	Smg__Join *j;
	int r;

	if ((r = smg_hs_frame_get(p->in, p->have, &type, &body, &blen, &used)) != 0 ||
	    (r = smg_hs_parse_join(body, blen)) != 0 ||
	    (r = smg_proto_unpack(SMG_FT_JOIN, body, blen, &m)) != 0)
		goto out;
	j = (Smg__Join *)m;
	r = SMG_ERR_AUTH;
	if ((pd = find_pending(l, j->session_id.data)) == NULL || pd->dead ||
	    j->index == 0 || j->index >= pd->s->nchan ||
	    ((pd->joined | pd->joining) & (1u << j->index)))
		goto out;
	smg_hs_join_mac(pd->s->session_key, pd->s->session_id, j->index, mac);
	if (sodium_memcmp(mac, j->mac.data, sizeof(mac)) != 0)
		goto out;
	if ((r = stream_begin(p, pd->s, j->index)) != 0)
		goto out;
	pd->joining |= 1u << j->index;
	p->pd = pd;
out:
	smg_proto_free(m);
	if (r != 0)
		p->reject = SMG__REJECT_REASON__REJECT_BAD_JOIN;
	if (r == SMG_ERR_AUTH)
		smg_peer_log(SMG_LOG_WARN,
			     "%s: JOIN names no waiting session or a bad MAC", p->addr);
	return r;
}

static int pc_on_first(struct smg_listener *l, struct pconn *p)
{
	int r;

	if (p->have > 4 && p->in[4] == SMG_FT_JOIN)
		return on_join(l, p);
	if ((p->hs = sodium_malloc(sizeof(*p->hs))) == NULL ||
	    (p->out = malloc(HS_WIRE_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	smg_hs_init(p->hs, false, &l->opts);
	if ((r = smg_hs_server_on_hello(p->hs, p->in, p->have, p->out, HS_WIRE_MAX,
					&p->out_len)) != 0)
		return r;
	p->out_off = 0;
	p->have = 0;
	p->stage = PC_WRITE;
	return 0;
}

static bool pending_free(const struct smg_listener *l)
{
	for (unsigned i = 0; i < PENDING_MAX; i++)
		if (l->pend[i].s == NULL)
			return true;
	return false;
}

/* The handshake is done (hs finished): a session waiting for its
 * channels, and the control channel's STREAM. Data channels may JOIN from
 * now on (the client opens them once it has our STREAM). */
static int start_control_stream(struct smg_listener *l, struct pconn *p)
{
	struct pending *pd = NULL;
	struct smg_session *s = NULL;
	int r;

	for (unsigned i = 0; i < PENDING_MAX && pd == NULL; i++)
		if (l->pend[i].s == NULL)
			pd = &l->pend[i];
	if (pd == NULL)
		return SMG_ERR_BUSY;
	if ((r = smg_session_new(p->hs, &s)) != 0)
		return r;
	snprintf(s->peer_addr, sizeof(s->peer_addr), "%s", p->addr);
	smg_hs_wipe(p->hs);
	sodium_free(p->hs);
	p->hs = NULL;
	if ((r = stream_begin(p, s, 0)) != 0) {
		smg_session_free(s);
		return r;
	}
	*pd = (struct pending){.s = s, .joining = 1, .deadline = p->deadline};
	p->pd = pd;
	return SMG_OK;
}

static int pc_on_auth(struct smg_listener *l, struct pconn *p)
{
	struct job *j;
	size_t len;
	int r;

	if (!pending_free(l))
		return SMG_ERR_BUSY;
	/* The cheap half first: only a peer whose signature verifies costs
	 * the extension's (TPM) work, and that runs on the worker. */
	if ((r = smg_hs_server_auth_sig(p->hs, p->in, p->have)) != 0)
		return r;
	if (l->opts.ext == NULL) {
		if ((r = smg_hs_server_finish(p->hs, p->in, p->have, p->out, HS_WIRE_MAX,
					      &len)) != 0)
			return r;
		return start_control_stream(l, p);
	}
	if ((r = worker_start(&l->w)) != 0 || (j = calloc(1, sizeof(*j))) == NULL)
		return r != 0 ? r : SMG_ERR_NOMEM;
	*j = (struct job){.hs = p->hs, .in = p->in, .in_len = p->have, .out = p->out};
	p->hs = NULL;
	p->in = NULL;
	p->out = NULL;
	p->job = j;
	p->stage = PC_WORKING;
	pthread_mutex_lock(&l->w.lock);
	if (l->w.tail != NULL)
		l->w.tail->next = j;
	else
		l->w.head = j;
	l->w.tail = j;
	pthread_cond_signal(&l->w.cond);
	pthread_mutex_unlock(&l->w.lock);
	return 0;
}

/* The worker finished a job: its FINISH frame goes out next. */
static int pc_on_job(struct pconn *p)
{
	struct job *j = p->job;
	int r = j->r;

	p->hs = j->hs;
	p->in = j->in;
	p->out = j->out;
	p->have = 0;
	j->hs = NULL;
	j->in = j->out = NULL;
	free(j);
	p->job = NULL;
	if (r != 0)
		return r;
	p->out_off = 0;
	return 0;
}

static int handed_over(struct smg_listener *l, struct pconn *p, struct pending **done)
{
	struct pending *pd = p->pd;
	int r;

	if ((r = smg_session_stream_accept(p->s, p->chan, p->in, p->have)) != 0 ||
	    (r = smg_session_attach(p->s, p->chan, p->fd, &l->opts)) != 0)
		return r;
	p->fd = -1; /* owned by the channel now */
	pd->joining &= ~(1u << p->chan);
	pd->joined |= 1u << p->chan;
	p->pd = NULL;
	p->s = NULL;
	if (p->chan == 0)
		smg_info("peer '%s' authenticated from %s; %u channel%s",
			 pd->s->peer_name, p->addr, pd->s->nchan,
			 pd->s->nchan == 1 ? "" : "s");
	if (pd->joined == (1u << pd->s->nchan) - 1)
		*done = pd;
	return 1;
}

static bool job_done(struct smg_listener *l, const struct pconn *p)
{
	bool done;

	pthread_mutex_lock(&l->w.lock);
	done = p->job != NULL && p->job->done;
	pthread_mutex_unlock(&l->w.lock);
	return done;
}

/* Advance one connection; 1: finished (handed over), <0: drop it. */
static int pc_step(struct smg_listener *l, struct pconn *p, struct pending **done)
{
	int r;

	for (;;) {
		switch (p->stage) {
		case PC_READ_FIRST:
			if ((r = pc_read(p)) <= 0)
				return r;
			if ((r = pc_on_first(l, p)) != 0)
				return r;
			break;
		case PC_WRITE:
			if ((r = pc_write(p)) <= 0)
				return r;
			p->stage = PC_READ_AUTH;
			break;
		case PC_READ_AUTH:
			if ((r = pc_read(p)) <= 0)
				return r;
			if ((r = pc_on_auth(l, p)) != 0)
				return r;
			break;
		case PC_WORKING:
			if (!job_done(l, p))
				return 0;
			p->out_len = p->job->out_len;
			if ((r = pc_on_job(p)) != 0)
				return r;
			p->stage = PC_WRITE_FINISH;
			break;
		case PC_WRITE_FINISH:
			if ((r = pc_write(p)) <= 0)
				return r;
			if ((r = start_control_stream(l, p)) != 0)
				return r;
			break;
		case PC_STREAM_WRITE:
			if ((r = pc_write(p)) <= 0)
				return r;
			p->stage = PC_STREAM_READ;
			break;
		case PC_STREAM_READ:
			if ((r = pc_read(p)) <= 0)
				return r;
			return handed_over(l, p, done);
		}
	}
}

static void drop_pending(struct smg_listener *l, struct pending *pd)
{
	/* its data channels still mid-STREAM go with it */
	for (unsigned i = 0; i < l->npc;) {
		if (l->pc[i].pd == pd) {
			l->pc[i].pd = NULL;
			l->pc[i].s = NULL;
			pc_drop(l, i, SMG_ERR_TIMEOUT);
		} else {
			i++;
		}
	}
	smg_session_free(pd->s);
	memset(pd, 0, sizeof(*pd));
}

static void expire(struct smg_listener *l, uint64_t now)
{
	for (unsigned i = 0; i < l->npc;) {
		struct pconn *p = &l->pc[i];
		bool first = p->stage == PC_READ_FIRST && now >= p->first_deadline;

		if (now >= p->deadline || first) {
			smg_peer_log(SMG_LOG_WARN, "%s: %s deadline passed", p->addr,
				     first ? "first-frame" : "handshake");
			refused(l, p, SMG_ERR_TIMEOUT);
			pc_drop(l, i, SMG_ERR_TIMEOUT);
		} else {
			i++;
		}
	}
	for (unsigned i = 0; i < PENDING_MAX; i++) {
		if (l->pend[i].s != NULL &&
		    (now >= l->pend[i].deadline || l->pend[i].dead)) {
			if (!l->pend[i].dead)
				smg_peer_log(
				    SMG_LOG_WARN,
				    "session with '%s': channels did not join in time",
				    l->pend[i].s->peer_name);
			drop_pending(l, &l->pend[i]);
		}
	}
}

static int next_timeout(struct smg_listener *l, uint64_t now, uint64_t until)
{
	uint64_t t = until;

	for (unsigned i = 0; i < l->npc; i++) {
		const struct pconn *p = &l->pc[i];
		uint64_t d = p->stage == PC_READ_FIRST ? p->first_deadline : p->deadline;
		if (d < t)
			t = d;
	}
	for (unsigned i = 0; i < PENDING_MAX; i++)
		if (l->pend[i].s != NULL && l->pend[i].deadline < t)
			t = l->pend[i].deadline;
	if (t == UINT64_MAX)
		return -1;
	if (t <= now)
		return until <= now ? 100 : 0; /* past until: poll for progress */
	return (int)(t - now > 60000 ? 60000 : t - now);
}

static bool handshakes_under_way(const struct smg_listener *l)
{
	for (unsigned i = 0; i < l->npc; i++)
		if (l->pc[i].stage != PC_READ_FIRST)
			return true;
	return false;
}

static short pc_events(const struct pconn *p)
{
	switch (p->stage) {
	case PC_WRITE:
	case PC_WRITE_FINISH:
	case PC_STREAM_WRITE:
		return POLLOUT;
	case PC_WORKING:
		return 0; /* woken through the worker's eventfd */
	default:
		return POLLIN;
	}
}

static int prepare(struct smg_listener *l, const struct smg_session_opts *opts)
{
	unsigned cap = opts->max_preauth ? opts->max_preauth : SMG_PREAUTH_MAX;

	if (opts->identity == NULL || opts->peers == NULL ||
	    opts->channels > SMG_CHANNELS_MAX)
		return SMG_ERR_INVAL;
	if (cap < l->npc)
		cap = l->npc;
	if (l->pc == NULL || cap > l->cap) {
		struct pconn *pc = realloc(l->pc, cap * sizeof(*pc));

		if (pc == NULL)
			return SMG_ERR_NOMEM;
		l->pc = pc;
	}
	l->cap = cap;
	l->opts = *opts;
	return SMG_OK;
}

int smg_listener_accept(struct smg_listener *l, const struct smg_session_opts *opts,
			struct smg_session **out)
{
	uint64_t until =
	    opts->accept_timeout_ms ? smg_now_ms() + opts->accept_timeout_ms : UINT64_MAX;
	struct pollfd *pfd;
	struct pending *done = NULL;
	int r;

	*out = NULL;
	if ((r = prepare(l, opts)) != SMG_OK)
		return r;
	if ((pfd = calloc(l->cap + 2, sizeof(*pfd))) == NULL)
		return SMG_ERR_NOMEM;
	while (done == NULL) {
		uint64_t now = smg_now_ms(), ev;
		unsigned n;

		expire(l, now);
		/* accept_timeout bounds the wait for a peer; a handshake under
		 * way (bounded by its own deadline) is let finish. */
		if (now >= until && !handshakes_under_way(l)) {
			r = SMG_ERR_TIMEOUT;
			break;
		}
		n = l->npc;
		pfd[0] = (struct pollfd){l->fd, POLLIN, 0};
		pfd[1] = (struct pollfd){l->w.running ? l->w.evfd : -1, POLLIN, 0};
		for (unsigned i = 0; i < n; i++)
			pfd[i + 2] =
			    (struct pollfd){l->pc[i].fd, pc_events(&l->pc[i]), 0};
		if (poll(pfd, n + 2, next_timeout(l, now, until)) < 0 && errno != EINTR) {
			r = smg_err_sys(errno);
			break;
		}
		if (pfd[1].revents & POLLIN)
			while (read(l->w.evfd, &ev, sizeof(ev)) > 0)
				;
		/* Walk backwards: pc_drop moves the last entry into slot i. */
		for (unsigned i = n; i-- > 0 && done == NULL;) {
			bool ready =
			    l->pc[i].stage == PC_WORKING && job_done(l, &l->pc[i]);
			if (pfd[i + 2].revents == 0 && !ready)
				continue;
			r = pc_step(l, &l->pc[i], &done);
			if (r < 0) {
				smg_peer_log(SMG_LOG_WARN, "%s: handshake failed: %s",
					     l->pc[i].addr, smg_strerror(r));
				refused(l, &l->pc[i], r);
			}
			if (r != 0)
				pc_drop(l, i, r < 0 ? r : 0);
		}
		r = SMG_OK;
		if (pfd[0].revents & POLLIN)
			pc_accept(l);
	}
	free(pfd);
	if (done != NULL) {
		*out = done->s;
		memset(done, 0, sizeof(*done));
		smg_info("session with '%s' ready (%s)", (*out)->peer_name,
			 (*out)->ch[0].ring_ok ? "io_uring" : "poll");
	}
	return r;
}

void smg_listener_close(struct smg_listener *l)
{
	if (l == NULL)
		return;
	while (l->npc > 0)
		pc_drop(l, l->npc - 1, 0);
	worker_stop(&l->w);
	for (unsigned i = 0; i < PENDING_MAX; i++)
		smg_session_free(l->pend[i].s);
	if (l->fd >= 0)
		close(l->fd);
	free(l->pc);
	free(l);
}
