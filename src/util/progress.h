/*
 * progress.h - progress reporting for long operations (downloads, splitting).
 *
 * The library never prints: a long operation reports its progress through an
 * air_progress_fn callback that the caller installs. A front end that wants a
 * terminal progress bar installs air_progress_bar_cb with an air_progress_bar
 * as its user pointer:
 *
 *     air_progress_bar bar;
 *     air_progress_bar_init(&bar, stderr);
 *     opts.progress = air_progress_bar_cb;
 *     opts.progress_user = &bar;
 *     ... run the operation ...
 *     air_progress_bar_finish(&bar);
 *
 * Callback convention:
 *   - label != NULL: progress of one item (a file path). `total` is 0 when the
 *     size is unknown. The last call for an item has done == total.
 *   - label == NULL: overall progress of the operation, summed over all items.
 *   - rate_bytes_per_s < 0: `label` is a status message (for example that
 *     the operation waits for another process), shown on a line of its own.
 * `rate_bytes_per_s` is the current transfer rate (0 when not yet known).
 * Callbacks run on the thread that runs the operation.
 */
#ifndef AIR_UTIL_PROGRESS_H
#define AIR_UTIL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef void (*air_progress_fn)(void *user, const char *label, uint64_t done, uint64_t total,
                                double rate_bytes_per_s);

/* A one-line message of a long operation (a retry, a fallback), without a
 * trailing newline. Runs on the thread of the operation. */
typedef void (*air_notice_fn)(void *user, const char *message);

/* State of the default terminal renderer. Fill with air_progress_bar_init. */
typedef struct {
    FILE *out;        /* where to draw (stderr by default) */
    int is_tty;       /* redraw one line in place; otherwise plain lines (see below) */
    int line_open;    /* a partial line is on screen */
    double last_draw; /* monotonic seconds of the last redraw (throttles to 10 Hz) */
    char label[128];  /* current item */
    uint64_t done, total;
    double rate;
    uint64_t all_done, all_total; /* overall progress, 0/0 if never reported */
    double start;                 /* monotonic seconds at init */
    double plain_every_s;         /* not a terminal: a line for an unfinished item at most this
                                     often (default 10 s; 0 = every update) */
    double last_plain;            /* monotonic seconds of the last such line */
} air_progress_bar;

/* Prepares `bar` to draw on `out` (NULL = stderr). */
void air_progress_bar_init(air_progress_bar *bar, FILE *out);

/* air_progress_fn that draws `user` (an air_progress_bar *): item name, bar,
 * percentage, bytes, rate and ETA; overall percentage when known. */
void air_progress_bar_cb(void *user, const char *label, uint64_t done, uint64_t total,
                         double rate_bytes_per_s);

/* air_notice_fn for `user` (an air_progress_bar *): prints the message on a
 * line of its own, closing a partial bar line first; terminal or not. */
void air_progress_bar_notice(void *user, const char *message);

/* Ends a partial line, if one is open. */
void air_progress_bar_finish(air_progress_bar *bar);

/* Formats a byte count as "512 B", "1.5 KiB", "3.2 GiB" into buf. Returns buf. */
char *air_format_bytes(uint64_t n, char *buf, size_t size);

#endif
