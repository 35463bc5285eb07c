/*
 * QTest for memory-backend-secret (memfd_secret(2) guest RAM)
 *
 * Copyright (C) 2026 Secret VM Developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define SECRET_MAP  "/secretmem"
/* The memfd backend's own name: QEMU maps other memfds (displaysurface) too */
#define MEMFD_MAP   "/memfd:memory-backend-memfd"
#define RAM_SIZE    (64 * MiB)
#define MARKER_GPA  0x100000

typedef struct Mapping {
    uint64_t start;
    uint64_t end;
} Mapping;

static bool host_has_memfd_secret(void)
{
    int fd = syscall(SYS_memfd_secret, 0);

    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

/* The n-th mapping of @pid whose name contains @needle. */
static bool find_mapping(pid_t pid, const char *needle, int n, Mapping *map)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", pid);
    g_autofree char *maps = NULL;
    g_auto(GStrv) lines = NULL;
    int i;

    g_assert(g_file_get_contents(path, &maps, NULL, NULL));
    lines = g_strsplit(maps, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (strstr(lines[i], needle) && n-- == 0) {
            g_assert_cmpint(sscanf(lines[i], "%" SCNx64 "-%" SCNx64,
                                   &map->start, &map->end), ==, 2);
            return true;
        }
    }
    return false;
}

static int count_mappings(pid_t pid, const char *needle)
{
    Mapping map;
    int n = 0;

    while (find_mapping(pid, needle, n, &map)) {
        n++;
    }
    return n;
}

static int count_secret_fds(pid_t pid)
{
    g_autofree char *dir_path = g_strdup_printf("/proc/%d/fd", pid);
    g_autoptr(GDir) dir = g_dir_open(dir_path, 0, NULL);
    const char *name;
    int n = 0;

    g_assert(dir);
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *link = g_strdup_printf("%s/%s", dir_path, name);
        g_autofree char *target = g_file_read_link(link, NULL);

        if (target && g_str_has_prefix(target, SECRET_MAP)) {
            n++;
        }
    }
    return n;
}

/* RAM blocks are freed after an RCU grace period: poll for the fd count. */
static int wait_secret_fds(pid_t pid, int expected)
{
    int n, tries;

    for (tries = 0; tries < 500; tries++) {
        n = count_secret_fds(pid);
        if (n == expected) {
            break;
        }
        g_usleep(10 * 1000);
    }
    return n;
}

/* A field of /proc/PID/smaps (in kB) for the mapping starting at @start. */
static uint64_t smaps_field(pid_t pid, uint64_t start, const char *field)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps", pid);
    g_autofree char *head = g_strdup_printf("%" PRIx64 "-", start);
    g_autofree char *smaps = NULL;
    g_auto(GStrv) lines = NULL;
    bool in_map = false;
    uint64_t kb;
    int i;

    g_assert(g_file_get_contents(path, &smaps, NULL, NULL));
    lines = g_strsplit(smaps, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_ascii_isxdigit(lines[i][0]) && strchr(lines[i], '-')) {
            in_map = g_str_has_prefix(lines[i], head);
        } else if (in_map && g_str_has_prefix(lines[i], field) &&
                   sscanf(lines[i] + strlen(field), ": %" SCNu64, &kb) == 1) {
            return kb;
        }
    }
    g_assert_not_reached();
}

static void assert_refused(QTestState *qts, QDict *bad, QDict *good);
static QDict *sized(uint64_t size);

static QList *host_node_list(int node)
{
    QList *nodes = qlist_new();

    qlist_append_int(nodes, node);
    return nodes;
}

static QTestState *start_vm(const char *backend, const char *extra)
{
    return qtest_initf("-machine pc,memory-backend=m0 -m %" PRIu64 "M "
                       "-object %s,id=m0,size=%" PRIu64 "M%s",
                       RAM_SIZE / MiB, backend, RAM_SIZE / MiB, extra);
}

static void test_ram_readwrite(void)
{
    QTestState *qts = start_vm("memory-backend-secret", "");
    uint64_t addr;

    for (addr = MARKER_GPA; addr < RAM_SIZE; addr += 4 * MiB) {
        qtest_writeq(qts, addr, addr ^ 0x5ec7e75ec7e75ec7ULL);
    }
    for (addr = MARKER_GPA; addr < RAM_SIZE; addr += 4 * MiB) {
        g_assert_cmphex(qtest_readq(qts, addr), ==,
                        addr ^ 0x5ec7e75ec7e75ec7ULL);
    }
    qtest_quit(qts);
}

static void test_maps(void)
{
    QTestState *qts = start_vm("memory-backend-secret", "");
    pid_t pid = qtest_pid(qts);
    Mapping map;

    g_assert(find_mapping(pid, SECRET_MAP, 0, &map));
    g_assert_cmpuint(map.end - map.start, ==, RAM_SIZE);
    /* locked and not dumped, by the kernel */
    g_assert_cmpint(count_secret_fds(pid), ==, 1);
    qtest_quit(qts);
}

static void test_query_memdev(void)
{
    QTestState *qts = start_vm("memory-backend-secret", "");
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-memdev' }");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *dev;

    g_assert_cmpint(qlist_size(list), ==, 1);
    dev = qobject_to(QDict, qlist_peek(list));
    g_assert_cmpstr(qdict_get_str(dev, "id"), ==, "m0");
    g_assert_cmpuint(qdict_get_int(dev, "size"), ==, RAM_SIZE);
    g_assert(qdict_get_bool(dev, "share"));
    g_assert(!qdict_get_bool(dev, "merge"));
    g_assert(!qdict_get_bool(dev, "dump"));
    g_assert(!qdict_get_bool(dev, "prealloc"));
    qobject_unref(rsp);
    qtest_quit(qts);
}

static void check_prealloc(const char *props)
{
    QTestState *qts = start_vm("memory-backend-secret", props);
    pid_t pid = qtest_pid(qts);
    Mapping map;

    g_assert(find_mapping(pid, SECRET_MAP, 0, &map));
    g_assert_cmpuint(smaps_field(pid, map.start, "Rss"), ==, RAM_SIZE / KiB);
    g_assert_cmpuint(smaps_field(pid, map.start, "Locked"), ==,
                     RAM_SIZE / KiB);
    qtest_quit(qts);
}

static void test_prealloc(const void *data)
{
    check_prealloc(data);
}

static void test_numa_memdev(void)
{
    QTestState *qts = qtest_initf("-machine pc -m %" PRIu64 "M "
                                  "-object memory-backend-secret,id=m0,"
                                  "size=%" PRIu64 "M "
                                  "-numa node,nodeid=0,memdev=m0",
                                  RAM_SIZE / MiB, RAM_SIZE / MiB);
    g_autofree char *info = qtest_hmp(qts, "info numa");

    g_assert(strstr(info, "node 0 size: 64 MB"));
    g_assert_cmpint(count_mappings(qtest_pid(qts), SECRET_MAP), ==, 1);
    qtest_quit(qts);
}

/* The highest online host NUMA node. */
static int last_host_node(void)
{
    g_autofree char *online = NULL;
    const char *last;

    g_assert(g_file_get_contents("/sys/devices/system/node/online", &online,
                                 NULL, NULL));
    g_strchomp(online);
    last = strrchr(online, '-') ?: strrchr(online, ',') ?: online - 1;
    return atoi(last + 1);
}

/*
 * Bound to the last node, every preallocated page must be there.  On a
 * host with several nodes this fails without the binding, because the
 * preallocating threads would allocate on their local node.
 */
static void test_host_nodes_placement(void)
{
    int node = last_host_node();
    g_autofree char *props = g_strdup_printf(",prealloc=on,policy=bind,"
                                             "host-nodes=%d", node);
    QTestState *qts = start_vm("memory-backend-secret", props);
    g_autofree char *path = g_strdup_printf("/proc/%d/numa_maps",
                                            qtest_pid(qts));
    g_autofree char *numa_maps = NULL;
    g_autofree char *all_on_node = g_strdup_printf(" N%d=%" PRIu64 " ", node,
                                                   RAM_SIZE / 4096);
    char *line;

    g_test_message("binding to host node %d of %d", node, node + 1);
    g_assert(g_file_get_contents(path, &numa_maps, NULL, NULL));
    line = strstr(numa_maps, "file=/secretmem");
    g_assert(line);
    *strchrnul(line, '\n') = '\0';
    g_assert(strstr(line, all_on_node));
    qtest_quit(qts);
}

/* A node the host lacks: the binding is really applied, and refused. */
static void test_host_nodes_missing(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *props[2];
    int i;

    for (i = 0; i < 2; i++) {
        props[i] = sized(MiB);
        qdict_put_bool(props[i], "prealloc", true);
        qdict_put_str(props[i], "policy", "bind");
    }
    qdict_put(props[0], "host-nodes", host_node_list(last_host_node() + 1));
    qdict_put(props[1], "host-nodes", host_node_list(0));
    assert_refused(qts, props[0], props[1]);
    qtest_quit(qts);
}

static QDict *sized(uint64_t size)
{
    QDict *props = qdict_new();

    qdict_put_int(props, "size", size);
    qdict_put_str(props, "qom-type", "memory-backend-secret");
    return props;
}

static void add_secret(QTestState *qts, const char *id, uint64_t size)
{
    QDict *props = sized(size);

    qdict_put_str(props, "id", id);
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-add', "
                             "'arguments': %p }", props);
}

static void test_hotplug(void)
{
    QTestState *qts = qtest_init("-machine pc -m 128M,slots=2,maxmem=1G");
    pid_t pid = qtest_pid(qts);
    QDict *rsp;

    add_secret(qts, "hp0", 128 * MiB);
    qtest_qmp_assert_success(qts, "{ 'execute': 'device_add', 'arguments': {"
                             " 'driver': 'pc-dimm', 'id': 'dimm0',"
                             " 'memdev': 'hp0' } }");
    g_assert_cmpint(count_mappings(pid, SECRET_MAP), ==, 1);

    rsp = qtest_qmp(qts, "{ 'execute': 'query-memory-devices' }");
    g_assert_cmpint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 1);
    qobject_unref(rsp);

    /* ACPI unplug needs the guest; the backend must stay while mapped. */
    rsp = qtest_qmp(qts, "{ 'execute': 'object-del', "
                    "'arguments': { 'id': 'hp0' } }");
    g_assert(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    qtest_quit(qts);
}

static void test_object_del_closes_fd(void)
{
    QTestState *qts = qtest_init("-machine none");
    pid_t pid = qtest_pid(qts);

    add_secret(qts, "m1", 16 * MiB);
    g_assert_cmpint(count_secret_fds(pid), ==, 1);
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-del', "
                             "'arguments': { 'id': 'm1' } }");
    g_assert_cmpint(wait_secret_fds(pid, 0), ==, 0);
    g_assert_cmpint(count_mappings(pid, SECRET_MAP), ==, 0);
    qtest_quit(qts);
}

/*
 * object-add of @bad (a QDict, consumed) must fail and leave no secret fd
 * or mapping behind; object-add of @good (consumed), the same object but
 * for the one change that makes it acceptable, must then succeed.  The
 * pair shows what was refused without depending on the error's wording.
 */
static void assert_refused(QTestState *qts, QDict *bad, QDict *good)
{
    pid_t pid = qtest_pid(qts);
    QDict *rsp, *err;

    qdict_put_str(bad, "id", "bad");
    rsp = qtest_qmp(qts, "{ 'execute': 'object-add', 'arguments': %p }",
                    bad);
    err = qdict_get_qdict(rsp, "error");
    g_assert(err);
    g_test_message("refused: %s", qdict_get_str(err, "desc"));
    qobject_unref(rsp);
    g_assert_cmpint(wait_secret_fds(pid, 0), ==, 0);
    g_assert_cmpint(count_mappings(pid, SECRET_MAP), ==, 0);

    qdict_put_str(good, "id", "good");
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-add', "
                             "'arguments': %p }", good);
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-del', "
                             "'arguments': { 'id': 'good' } }");
}

static QDict *sized_with(uint64_t size, const char *key, bool value)
{
    QDict *props = sized(size);

    qdict_put_bool(props, key, value);
    return props;
}

static void test_bad_options(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *props, *good;

    assert_refused(qts, sized_with(MiB, "share", false),
                   sized_with(MiB, "share", true));
    assert_refused(qts, sized_with(MiB, "merge", true),
                   sized_with(MiB, "merge", false));
    assert_refused(qts, sized_with(MiB, "dump", true),
                   sized_with(MiB, "dump", false));
    assert_refused(qts, sized_with(MiB, "reserve", false),
                   sized_with(MiB, "reserve", true));
    assert_refused(qts, sized(MiB + 1), sized(MiB));
    assert_refused(qts, sized(1ULL << 50), sized(MiB));
    assert_refused(qts, sized(0), sized(MiB));

    props = sized(MiB);
    qdict_put_str(props, "policy", "bind");
    qdict_put(props, "host-nodes", host_node_list(0));
    good = qdict_clone_shallow(props);
    qdict_put_bool(good, "prealloc", true);
    assert_refused(qts, props, good);
    qtest_quit(qts);
}

static void deny_memfd_secret(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_secret, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = ARRAY_SIZE(filter),
        .filter = filter,
    };

    g_assert_cmpint(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), ==, 0);
    g_assert_cmpint(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), ==, 0);
}

/* A kernel without memfd_secret, emulated with seccomp in QEMU's parent. */
static void test_no_memfd_secret(void)
{
    QTestState *qts;
    QDict *memfd;

    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
        return;
    }
    deny_memfd_secret();
    qts = qtest_init("-machine none");
    memfd = sized(MiB);
    qdict_put_str(memfd, "qom-type", "memory-backend-memfd");
    assert_refused(qts, sized(MiB), memfd);
    qtest_quit(qts);
}

/* QEMU without CAP_IPC_LOCK, as it runs under libvirt, and an 8 MiB limit. */
static void test_memlock_limit(void)
{
    struct rlimit rl = { .rlim_cur = 8 * MiB, .rlim_max = 8 * MiB };
    QTestState *qts;

    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
        return;
    }
    if (geteuid() == 0) {
        g_assert_cmpint(prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0), ==, 0);
    }
    g_assert_cmpint(setrlimit(RLIMIT_MEMLOCK, &rl), ==, 0);
    qts = qtest_init("-machine none");
    assert_refused(qts, sized(16 * MiB), sized(4 * MiB));
    qtest_quit(qts);
}

/*
 * Read @len bytes of @pid at @addr through /proc/PID/mem and through
 * process_vm_readv(); return whether each path saw @marker.
 */
static void read_other_process(pid_t pid, uint64_t addr, const char *marker,
                               size_t len, bool *via_mem, bool *via_vm_readv)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/mem", pid);
    g_autofree char *buf = g_malloc0(len);
    struct iovec local = { .iov_base = buf, .iov_len = len };
    struct iovec remote = { .iov_base = (void *)(uintptr_t)addr,
                            .iov_len = len };
    int fd = open(path, O_RDONLY);
    ssize_t n;

    g_assert(fd >= 0);
    n = pread(fd, buf, len, addr);
    g_test_message("/proc/%d/mem: %zd (%s)", pid, n,
                   n < 0 ? strerror(errno) : "read");
    *via_mem = n == len && !memcmp(buf, marker, len);
    close(fd);

    memset(buf, 0, len);
    n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    g_test_message("process_vm_readv: %zd (%s)", n,
                   n < 0 ? strerror(errno) : "read");
    *via_vm_readv = n == len && !memcmp(buf, marker, len);
}

static void check_host_reads(const char *backend, const char *map_name,
                             bool expect_found)
{
    QTestState *qts = start_vm(backend, "");
    g_autofree char *marker = g_strdup_printf("secretvm-marker-%08x",
                                              g_random_int());
    size_t len = strlen(marker);
    bool via_mem, via_vm_readv;
    Mapping map;

    qtest_memwrite(qts, MARKER_GPA, marker, len);
    g_assert(find_mapping(qtest_pid(qts), map_name, 0, &map));
    read_other_process(qtest_pid(qts), map.start + MARKER_GPA, marker, len,
                       &via_mem, &via_vm_readv);
    g_assert_cmpint(via_mem, ==, expect_found);
    g_assert_cmpint(via_vm_readv, ==, expect_found);
    qtest_quit(qts);
}

static void test_host_reads_secret(void)
{
    check_host_reads("memory-backend-secret", SECRET_MAP, false);
}

/* Positive control: the same reads find the marker in memfd guest RAM. */
static void test_host_reads_memfd(void)
{
    check_host_reads("memory-backend-memfd", MEMFD_MAP, true);
}

static void skip_no_secretmem(void)
{
    g_test_skip("host kernel has no memfd_secret(2): enable CONFIG_SECRETMEM "
                "(and secretmem.enable=1 before Linux 6.5)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    if (!host_has_memfd_secret()) {
        qtest_add_func("/memory-backend-secret/skipped", skip_no_secretmem);
        return g_test_run();
    }

    qtest_add_func("/memory-backend-secret/ram-readwrite", test_ram_readwrite);
    qtest_add_func("/memory-backend-secret/maps", test_maps);
    qtest_add_func("/memory-backend-secret/query-memdev", test_query_memdev);
    qtest_add_data_func("/memory-backend-secret/prealloc/threads-1",
                        ",prealloc=on,prealloc-threads=1", test_prealloc);
    qtest_add_data_func("/memory-backend-secret/prealloc/threads-2",
                        ",prealloc=on,prealloc-threads=2", test_prealloc);
    qtest_add_data_func("/memory-backend-secret/prealloc/context",
                        ",prealloc=on,prealloc-context=tc0 "
                        "-object thread-context,id=tc0,cpu-affinity=0",
                        test_prealloc);
    qtest_add_func("/memory-backend-secret/numa-memdev", test_numa_memdev);
    qtest_add_func("/memory-backend-secret/host-nodes/placement",
                   test_host_nodes_placement);
    qtest_add_func("/memory-backend-secret/host-nodes/missing-node",
                   test_host_nodes_missing);
    qtest_add_func("/memory-backend-secret/hotplug", test_hotplug);
    qtest_add_func("/memory-backend-secret/object-del",
                   test_object_del_closes_fd);
    qtest_add_func("/memory-backend-secret/errors/options", test_bad_options);
    qtest_add_func("/memory-backend-secret/errors/no-memfd-secret",
                   test_no_memfd_secret);
    qtest_add_func("/memory-backend-secret/errors/memlock",
                   test_memlock_limit);
    qtest_add_func("/memory-backend-secret/host-reads/secret",
                   test_host_reads_secret);
    qtest_add_func("/memory-backend-secret/host-reads/memfd-control",
                   test_host_reads_memfd);

    return g_test_run();
}
