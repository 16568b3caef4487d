/*
 * memlimit.h - how much memory this process can still take: the smaller of
 * the system's MemAvailable and the room left under its memory cgroup's
 * limits (cgroup v2 or v1, every ancestor's limit included), so that default
 * sizes hold inside a container as on a bare machine.
 *
 * Room under a cgroup = limit - usage + inactive file cache (page cache the
 * kernel reclaims before it kills: the analogue of MemAvailable).
 */
#ifndef AIR_UTIL_MEMLIMIT_H
#define AIR_UTIL_MEMLIMIT_H

#include <stdint.h>

typedef struct {
    uint64_t available;     /* min of the two below; UINT64_MAX if neither is known */
    uint64_t mem_available; /* MemAvailable of /proc/meminfo; UINT64_MAX if unknown */
    uint64_t cgroup_room;   /* room under the tightest cgroup limit; UINT64_MAX if none */
    uint64_t cgroup_limit;  /* that limit; UINT64_MAX if none */
} air_memlimit;

/* Reads /proc and /sys/fs/cgroup. */
void air_memlimit_read(air_memlimit *m);

/* The same from other roots (tests): proc_dir stands for /proc (meminfo,
 * self/cgroup), cgroup_dir for /sys/fs/cgroup. */
void air_memlimit_read_at(const char *proc_dir, const char *cgroup_dir, air_memlimit *m);

#endif
