/*
 * test_memlimit.c - the memory this process can take, read from /proc and
 * the memory cgroup: trees laid out on disk as the kernel lays them out
 * (cgroup v2 unified, v2 in a hybrid mount, v1, nested limits, containers
 * whose cgroup path is not under the mount), then the real system.
 */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "util/memlimit.h"

static char g_root[1024];

static void put(const char *rel, const char *text) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    for (char *p = path + strlen(g_root) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void fresh(const char *name) {
    const char *tmp = getenv("AIR_TEST_TMP");
    snprintf(g_root, sizeof g_root, "%s/memlimit_%s_%d", tmp ? tmp : "/tmp", name, (int)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        return;
    mkdir(tmp ? tmp : "/tmp", 0755);
    mkdir(g_root, 0755);
}

static void read_tree(air_memlimit *m) {
    char proc[1100], cg[1100];
    snprintf(proc, sizeof proc, "%s/proc", g_root);
    snprintf(cg, sizeof cg, "%s/cg", g_root);
    air_memlimit_read_at(proc, cg, m);
}

#define MEMINFO(kb) "MemTotal: 25000000 kB\nMemFree: 1000 kB\nMemAvailable: " kb " kB\n"
#define GiB (1024ull * 1024 * 1024)
#define MiB (1024ull * 1024)

TEST(no_cgroup_limit) {
    fresh("none");
    put("proc/meminfo", MEMINFO("2097152")); /* 2 GiB */
    put("proc/self/cgroup", "0::/user.slice\n");
    put("cg/cgroup.controllers", "cpu memory\n");
    put("cg/user.slice/memory.max", "max\n");
    put("cg/user.slice/memory.current", "123456\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.mem_available, 2 * GiB);
    ASSERT_TRUE(m.cgroup_limit == UINT64_MAX);
    ASSERT_EQ_INT(m.available, 2 * GiB);
}

/* v2: limit 512 MiB, 300 MiB used of which 100 MiB inactive file cache:
 * room = 512 - 300 + 100 = 312 MiB, tighter than MemAvailable. */
TEST(cgroup_v2) {
    fresh("v2");
    put("proc/meminfo", MEMINFO("20971520"));
    put("proc/self/cgroup", "0::/box/job\n");
    put("cg/cgroup.controllers", "cpu memory\n");
    put("cg/box/memory.max", "max\n");
    put("cg/box/job/memory.max", "536870912\n");
    put("cg/box/job/memory.current", "314572800\n");
    put("cg/box/job/memory.stat", "anon 1000\nfile 200000000\nactive_file 5\ninactive_file "
                                  "104857600\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.cgroup_limit, 512 * MiB);
    ASSERT_EQ_INT(m.cgroup_room, 312 * MiB);
    ASSERT_EQ_INT(m.available, 312 * MiB);
}

/* A parent's limit binds when it is tighter than the child's. */
TEST(cgroup_v2_parent_limit) {
    fresh("v2p");
    put("proc/meminfo", MEMINFO("20971520"));
    put("proc/self/cgroup", "0::/box/job\n");
    put("cg/cgroup.controllers", "memory\n");
    put("cg/box/memory.max", "268435456\n"); /* 256 MiB */
    put("cg/box/memory.current", "67108864\n");
    put("cg/box/job/memory.max", "1073741824\n");
    put("cg/box/job/memory.current", "67108864\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.cgroup_limit, 256 * MiB);
    ASSERT_EQ_INT(m.available, 192 * MiB);
}

/* v2 in a hybrid layout: the unified hierarchy under cg/unified. */
TEST(cgroup_v2_hybrid) {
    fresh("v2h");
    put("proc/meminfo", MEMINFO("20971520"));
    put("proc/self/cgroup", "4:memory:/\n0::/svc\n");
    put("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put("cg/unified/cgroup.controllers", "memory\n");
    put("cg/unified/svc/memory.max", "104857600\n");
    put("cg/unified/svc/memory.current", "0\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.available, 100 * MiB);
}

/* v1: the memory hierarchy; "no limit" is a huge number; total_inactive_file
 * counts as reclaimable. */
TEST(cgroup_v1) {
    fresh("v1");
    put("proc/meminfo", MEMINFO("20971520"));
    put("proc/self/cgroup", "9:pids:/\n4:memory:/process_api/abc\n3:cpu,cpuacct:/\n");
    put("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put("cg/memory/process_api/memory.limit_in_bytes", "9223372036854771712\n");
    put("cg/memory/process_api/abc/memory.limit_in_bytes", "4294967296\n");
    put("cg/memory/process_api/abc/memory.usage_in_bytes", "3221225472\n");
    put("cg/memory/process_api/abc/memory.stat",
        "cache 1\ninactive_file 7\ntotal_inactive_file 1073741824\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.cgroup_limit, 4 * GiB);
    ASSERT_EQ_INT(m.available, 2 * GiB);
}

/* A container: /proc/self/cgroup names a path the container's mount does
 * not have; the mount's root holds the container's own limit. */
TEST(container_root) {
    fresh("ctr");
    put("proc/meminfo", MEMINFO("20971520"));
    put("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    put("cg/cgroup.controllers", "memory\n");
    put("cg/memory.max", "536870912\n");
    put("cg/memory.current", "0\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.available, 512 * MiB);
}

/* Usage above the limit (it happens briefly) means no room, not a wrap. */
TEST(over_limit) {
    fresh("over");
    put("proc/meminfo", MEMINFO("20971520"));
    put("proc/self/cgroup", "0::/\n");
    put("cg/cgroup.controllers", "memory\n");
    put("cg/memory.max", "1000\n");
    put("cg/memory.current", "5000\n");
    air_memlimit m;
    read_tree(&m);
    ASSERT_EQ_INT(m.available, 0);
}

TEST(missing_files) {
    fresh("missing");
    air_memlimit m;
    read_tree(&m);
    ASSERT_TRUE(m.available == UINT64_MAX);
}

TEST(this_system) {
    air_memlimit m;
    air_memlimit_read(&m);
    fprintf(stderr, "  MemAvailable %.0f MiB, cgroup limit %s%.0f MiB, room %.0f MiB\n",
            m.mem_available / (double)MiB, m.cgroup_limit == UINT64_MAX ? "none " : "",
            m.cgroup_limit == UINT64_MAX ? 0.0 : m.cgroup_limit / (double)MiB,
            m.cgroup_room == UINT64_MAX ? -1.0 : m.cgroup_room / (double)MiB);
    ASSERT_TRUE(m.mem_available > 0 && m.mem_available != UINT64_MAX);
    ASSERT_TRUE(m.available <= m.mem_available);
}

int main(void) {
    RUN(no_cgroup_limit);
    RUN(cgroup_v2);
    RUN(cgroup_v2_parent_limit);
    RUN(cgroup_v2_hybrid);
    RUN(cgroup_v1);
    RUN(container_root);
    RUN(over_limit);
    RUN(missing_files);
    RUN(this_system);
    return test_summary();
}
