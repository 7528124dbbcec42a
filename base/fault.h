/* Named fault-injection points (CRIU's `enum faults` in spirit). A test
 * switches points on for one process with the environment variable
 *
 *   SMG_FI="point=action[@hit][,point=action[@hit]...]"
 *
 * or with smg_fi_set() (a CLI flag), e.g. SMG_FI="after_commit=kill" or
 * SMG_FI="round=stall:5000@2". Actions:
 *   err       the point returns SMG_ERR_FAULT (the caller fails its phase)
 *   kill      the process SIGKILLs itself (a crash: no clean-up runs)
 *   exit      _exit(SMG_FI_EXIT_CODE) (dies without clean-up, distinct code)
 *   stall:MS  the point sleeps MS milliseconds, then goes on
 * @hit fires on the hit-th time the point is reached (default 1), once.
 * With SMG_FI unset a point costs one relaxed load. */
#ifndef SMG_BASE_FAULT_H
#define SMG_BASE_FAULT_H

enum smg_fi {
	SMG_FI_HANDSHAKE = 0, /* before the handshake's first message */
	SMG_FI_ROUND0,	      /* inside pre-copy round 0 */
	SMG_FI_ROUND,	      /* inside a later pre-copy round */
	SMG_FI_STOP_COPY,     /* after pausing, during stop-and-copy */
	SMG_FI_BEFORE_READY,  /* destination: verified, READY not yet sent */
	SMG_FI_AFTER_READY,   /* READY sent/received, COMMIT not yet */
	SMG_FI_AFTER_COMMIT,  /* COMMIT recorded/received, DONE not yet */
	SMG_FI_AFTER_DONE,    /* DONE sent/received, clean-up not yet */
	SMG_FI_ANNOUNCE,      /* network clean-up about to start */
	SMG_FI_MAX_,
};

#define SMG_FI_EXIT_CODE 99
#define SMG_FI_SPEC_MAX	 1024

/* Parse and install a spec (replaces the one from the environment);
 * SMG_ERR_INVAL on an unknown point or action, with nothing installed. */
int smg_fi_set(const char *spec);
/* Called at a point: SMG_OK, or SMG_ERR_FAULT when an `err` fires. */
int smg_fi_check(enum smg_fi point);
const char *smg_fi_name(enum smg_fi point);
/* Name -> point, or -1. */
int smg_fi_lookup(const char *name);

#endif
