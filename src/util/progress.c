/*
 * progress.c - the default terminal renderer for air_progress_fn.
 *
 * Events arrive per item (label = file name) and overall (label = NULL). On a
 * terminal the current item is redrawn in place on one line, at most ten
 * times a second, and the line is closed when the item completes. When the
 * output is not a terminal (a log file, CI) only completed items are printed,
 * one line each, so logs stay readable.
 */
#include "util/progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *air_format_bytes(uint64_t n, char *buf, size_t size) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

static void format_eta(double seconds, char *buf, size_t size) {
    if (!(seconds >= 0) || seconds > 359999) {
        snprintf(buf, size, "--:--");
        return;
    }
    unsigned s = (unsigned)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%u:%02u:%02u", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, size, "%u:%02u", s / 60, s % 60);
}

void air_progress_bar_init(air_progress_bar *bar, FILE *out) {
    memset(bar, 0, sizeof *bar);
    bar->out = out ? out : stderr;
    bar->is_tty = isatty(fileno(bar->out));
    bar->start = now_s();
    bar->last_draw = -1.0;
    bar->plain_every_s = 10.0;
    bar->last_plain = bar->start;
}

/* Shortens long names from the left ("…00001-of-00002.safetensors"). */
static void short_label(const char *label, char *buf, size_t size) {
    size_t n = strlen(label), max = 36;
    if (n <= max)
        snprintf(buf, size, "%s", label);
    else
        snprintf(buf, size, "...%s", label + (n - (max - 3)));
}

static void draw(air_progress_bar *bar, int final) {
    char name[64], done[32], total[32], rate[32], eta[32], all[32] = "";
    short_label(bar->label, name, sizeof name);
    air_format_bytes(bar->done, done, sizeof done);
    air_format_bytes(bar->total, total, sizeof total);
    air_format_bytes((uint64_t)(bar->rate > 0 ? bar->rate : 0), rate, sizeof rate);
    if (bar->all_total > 0)
        snprintf(all, sizeof all, "  [all %3.0f%%]",
                 100.0 * (double)bar->all_done / (double)bar->all_total);

    if (!bar->is_tty) {
        double t = now_s();
        if (final) {
            fprintf(bar->out, "%s  %s  %s/s%s\n", bar->label, total, rate, all);
        } else if (t - bar->last_plain >= bar->plain_every_s) {
            if (bar->total)
                fprintf(bar->out, "%s  %s of %s  %s/s%s\n", bar->label, done, total, rate, all);
            else
                fprintf(bar->out, "%s  %s  %s/s%s\n", bar->label, done, rate, all);
        } else {
            return;
        }
        bar->last_plain = t;
        fflush(bar->out);
        return;
    }
    double frac = bar->total ? (double)bar->done / (double)bar->total : 0.0;
    if (frac > 1.0)
        frac = 1.0;
    char gauge[21];
    int fill = (int)(frac * 20.0);
    for (int i = 0; i < 20; i++)
        gauge[i] = i < fill ? '#' : '.';
    gauge[20] = 0;
    if (final)
        format_eta((double)0, eta, sizeof eta);
    else if (bar->rate > 0 && bar->total >= bar->done)
        format_eta((double)(bar->total - bar->done) / bar->rate, eta, sizeof eta);
    else
        format_eta(-1, eta, sizeof eta);
    if (bar->total)
        fprintf(bar->out, "\r%-36s [%s] %3.0f%% %9s/%-9s %10s/s ETA %s%s\033[K", name, gauge,
                frac * 100.0, done, total, rate, eta, all);
    else
        fprintf(bar->out, "\r%-36s %9s %10s/s%s\033[K", name, done, rate, all);
    bar->line_open = 1;
    if (final) {
        fputc('\n', bar->out);
        bar->line_open = 0;
    }
    fflush(bar->out);
}

void air_progress_bar_cb(void *user, const char *label, uint64_t done, uint64_t total,
                         double rate_bytes_per_s) {
    air_progress_bar *bar = user;
    if (!bar)
        return;
    if (!label) {
        bar->all_done = done;
        bar->all_total = total;
        return;
    }
    if (rate_bytes_per_s < 0) { /* a status message */
        if (bar->line_open) {
            fputc('\n', bar->out);
            bar->line_open = 0;
        }
        fprintf(bar->out, "%s\n", label);
        fflush(bar->out);
        return;
    }
    if (strcmp(bar->label, label) != 0) {
        if (bar->line_open && bar->is_tty) {
            fputc('\n', bar->out);
            bar->line_open = 0;
        }
        snprintf(bar->label, sizeof bar->label, "%s", label);
        bar->last_draw = -1.0;
    }
    bar->done = done;
    bar->total = total;
    if (rate_bytes_per_s > 0)
        bar->rate = rate_bytes_per_s;
    int final = total > 0 && done >= total;
    double t = now_s();
    if (final || bar->last_draw < 0 || t - bar->last_draw >= 0.1) {
        bar->last_draw = t;
        draw(bar, final);
    }
}

void air_progress_bar_notice(void *user, const char *message) {
    air_progress_bar *bar = user;
    if (!bar || !message)
        return;
    if (bar->line_open) {
        fputc('\n', bar->out);
        bar->line_open = 0;
    }
    fprintf(bar->out, "%s\n", message);
    fflush(bar->out);
    bar->last_draw = -1.0; /* redraw the bar below the message */
}

void air_progress_bar_finish(air_progress_bar *bar) {
    if (bar && bar->line_open) {
        fputc('\n', bar->out);
        fflush(bar->out);
        bar->line_open = 0;
    }
}
