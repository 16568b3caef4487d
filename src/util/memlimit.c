/*
 * memlimit.c - MemAvailable and the memory cgroup's room (see memlimit.h).
 *
 * /proc/self/cgroup names this process's cgroup per hierarchy: "0::/path" for
 * cgroup v2, "N:memory:/path" (controllers comma-separated) for v1. Limits of
 * every ancestor apply, so the walk goes from that cgroup up to the root of
 * the mount and keeps the tightest room. Inside a container the path may not
 * exist under the mount (the container sees its own cgroup as the root): the
 * mount's root is read then.
 */
#include "util/memlimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NONE UINT64_MAX

/* Reads a small text file whole; NULL if it cannot be read. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    if (buf) {
        n = fread(buf, 1, cap - 1, f);
        buf[n] = 0;
    }
    fclose(f);
    return buf;
}

/* A number from a one-value file: "max" and values >= 2^60 (v1's "no limit")
 * read as NONE; a missing or unreadable file too. */
static uint64_t read_value(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = slurp(path);
    if (!s)
        return NONE;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    int ok = end != s && strncmp(s, "max", 3) != 0;
    free(s);
    return ok && v < (1ull << 60) ? (uint64_t)v : NONE;
}

/* The value of `key` in a "key value" per line file (memory.stat, meminfo);
 * 0 if absent. */
static uint64_t read_keyed(const char *path, const char *key) {
    char *s = slurp(path);
    if (!s)
        return 0;
    uint64_t v = 0;
    size_t kl = strlen(key);
    for (char *line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, kl) && (line[kl] == ' ' || line[kl] == ':')) {
            v = strtoull(line + kl + 1 + strspn(line + kl + 1, " \t"), NULL, 10);
            break;
        }
    free(s);
    return v;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Walks from root + rel up to root; for each level with a limit, room =
 * limit - usage + inactive file cache. Keeps the tightest. */
static void walk(const char *root, const char *rel, int v2, air_memlimit *m) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s", root, rel && strcmp(rel, "/") ? rel : "");
    if (!is_dir(dir))
        snprintf(dir, sizeof dir, "%s", root);
    size_t root_len = strlen(root);
    for (;;) {
        uint64_t limit = read_value(dir, v2 ? "memory.max" : "memory.limit_in_bytes");
        if (limit != NONE) {
            uint64_t usage = read_value(dir, v2 ? "memory.current" : "memory.usage_in_bytes");
            char stat_path[4200];
            snprintf(stat_path, sizeof stat_path, "%s/memory.stat", dir);
            uint64_t inactive = read_keyed(stat_path, v2 ? "inactive_file" : "total_inactive_file");
            if (usage == NONE)
                usage = 0;
            uint64_t used = usage > inactive ? usage - inactive : 0;
            uint64_t room = limit > used ? limit - used : 0;
            if (room < m->cgroup_room) {
                m->cgroup_room = room;
                m->cgroup_limit = limit;
            }
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= root_len || !slash || (size_t)(slash - dir) < root_len)
            break;
        *slash = 0;
    }
}

void air_memlimit_read_at(const char *proc_dir, const char *cgroup_dir, air_memlimit *m) {
    m->mem_available = m->cgroup_room = m->cgroup_limit = NONE;
    char path[4096];
    snprintf(path, sizeof path, "%s/meminfo", proc_dir);
    uint64_t kb = read_keyed(path, "MemAvailable");
    if (kb)
        m->mem_available = kb * 1024;

    snprintf(path, sizeof path, "%s/self/cgroup", proc_dir);
    char *cg = slurp(path);
    for (char *line = cg; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2) {
            *c1 = *c2 = 0;
            const char *ctrls = c1 + 1, *rel = c2 + 1;
            char root[4096];
            if (!strcmp(line, "0") && !*ctrls) { /* v2: unified mount, or its hybrid place */
                snprintf(root, sizeof root, "%s/cgroup.controllers", cgroup_dir);
                struct stat st;
                if (stat(root, &st) == 0)
                    walk(cgroup_dir, rel, 1, m);
                else {
                    snprintf(root, sizeof root, "%s/unified", cgroup_dir);
                    if (is_dir(root))
                        walk(root, rel, 1, m);
                }
            } else {
                /* v1: a hierarchy whose controllers include "memory" */
                size_t n = strlen(ctrls);
                for (const char *p = ctrls; p < ctrls + n;) {
                    size_t len = strcspn(p, ",");
                    if (len == 6 && !strncmp(p, "memory", 6)) {
                        snprintf(root, sizeof root, "%s/%s", cgroup_dir, ctrls);
                        if (!is_dir(root))
                            snprintf(root, sizeof root, "%s/memory", cgroup_dir);
                        walk(root, rel, 0, m);
                        break;
                    }
                    p += len + 1;
                }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(cg);
    m->available = m->mem_available < m->cgroup_room ? m->mem_available : m->cgroup_room;
}

void air_memlimit_read(air_memlimit *m) { air_memlimit_read_at("/proc", "/sys/fs/cgroup", m); }
