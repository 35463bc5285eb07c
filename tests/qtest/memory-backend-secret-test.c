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
#include "libqos/pci-pc.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qjson.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define SECRET_MAP  "/secretmem"
/* The memfd backend's own name: QEMU maps other memfds (displaysurface) too */
#define MEMFD_MAP   "/memfd:memory-backend-memfd"
#define RAM_SIZE    (64 * MiB)
#define MARKER_GPA  0x100000

/* A libc without the syscall's number builds a test that only skips. */
#ifdef SYS_memfd_secret
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

static bool has_cap_ipc_lock(void)
{
    g_autofree char *status = NULL;
    const char *cap_eff;

    g_assert(g_file_get_contents("/proc/self/status", &status, NULL, NULL));
    cap_eff = strstr(status, "CapEff:");
    g_assert(cap_eff);
    return g_ascii_strtoull(cap_eff + strlen("CapEff:"), NULL, 16) &
           (1ULL << CAP_IPC_LOCK);
}

/*
 * Secret memory is locked memory: QEMU, started by this process, may map
 * @bytes of it only with CAP_IPC_LOCK or a RLIMIT_MEMLOCK that large.
 * Skip the test, with the reason, otherwise.
 */
static bool skip_unless_lockable(uint64_t bytes)
{
    struct rlimit rl;
    g_autofree char *reason = NULL;

    g_assert_cmpint(getrlimit(RLIMIT_MEMLOCK, &rl), ==, 0);
    if (has_cap_ipc_lock() || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= bytes) {
        return false;
    }
    reason = g_strdup_printf("needs %" PRIu64 " KiB of locked memory: "
                             "RLIMIT_MEMLOCK is %" PRIu64 " KiB and "
                             "CAP_IPC_LOCK is missing; raise ulimit -l",
                             bytes / KiB, (uint64_t)rl.rlim_cur / KiB);
    g_test_skip(reason);
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

/* The value of @field in /proc/PID/smaps for the mapping at @start. */
static char *smaps_line(pid_t pid, uint64_t start, const char *field)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps", pid);
    g_autofree char *head = g_strdup_printf("%" PRIx64 "-", start);
    g_autofree char *key = g_strdup_printf("%s:", field);
    g_autofree char *smaps = NULL;
    g_auto(GStrv) lines = NULL;
    bool in_map = false;
    int i;

    g_assert(g_file_get_contents(path, &smaps, NULL, NULL));
    lines = g_strsplit(smaps, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_ascii_isxdigit(lines[i][0]) && strchr(lines[i], '-')) {
            in_map = g_str_has_prefix(lines[i], head);
        } else if (in_map && g_str_has_prefix(lines[i], key)) {
            return g_strdup(lines[i] + strlen(key));
        }
    }
    g_assert_not_reached();
}

/* A size field of /proc/PID/smaps, in kB. */
static uint64_t smaps_field(pid_t pid, uint64_t start, const char *field)
{
    g_autofree char *value = smaps_line(pid, start, field);

    return g_ascii_strtoull(value, NULL, 10);
}

static void assert_refused(QTestState *qts, QDict *bad, QDict *good);
static QDict *sized(uint64_t size);

#ifdef CONFIG_NUMA
static QList *host_node_list(int node)
{
    QList *nodes = qlist_new();

    qlist_append_int(nodes, node);
    return nodes;
}
#endif

static QTestState *start_vm(const char *backend, const char *extra)
{
    return qtest_initf("-machine pc,memory-backend=m0 -m %" PRIu64 "M "
                       "-object %s,id=m0,size=%" PRIu64 "M%s",
                       RAM_SIZE / MiB, backend, RAM_SIZE / MiB, extra);
}

static void test_ram_readwrite(void)
{
    QTestState *qts;
    uint64_t addr;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = start_vm("memory-backend-secret", "");

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
    g_autofree char *vm_flags = NULL;
    QTestState *qts;
    Mapping map;
    pid_t pid;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = start_vm("memory-backend-secret", "");
    pid = qtest_pid(qts);
    g_assert(find_mapping(pid, SECRET_MAP, 0, &map));
    g_assert_cmpuint(map.end - map.start, ==, RAM_SIZE);
    /* locked (lo) and left out of core dumps (dd), by the kernel */
    vm_flags = smaps_line(pid, map.start, "VmFlags");
    g_test_message("VmFlags:%s", vm_flags);
    g_assert(strstr(vm_flags, " lo"));
    g_assert(strstr(vm_flags, " dd"));
    g_assert_cmpint(count_secret_fds(pid), ==, 1);
    qtest_quit(qts);
}

static void test_query_memdev(void)
{
    QTestState *qts;
    QDict *rsp, *dev;
    QList *list;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = start_vm("memory-backend-secret", "");
    rsp = qtest_qmp(qts, "{ 'execute': 'query-memdev' }");
    list = qdict_get_qlist(rsp, "return");

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
    QTestState *qts;
    Mapping map;
    pid_t pid;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = start_vm("memory-backend-secret", props);
    pid = qtest_pid(qts);
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
    g_autofree char *info = NULL;
    QTestState *qts;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = qtest_initf("-machine pc -m %" PRIu64 "M "
                      "-object memory-backend-secret,id=m0,"
                      "size=%" PRIu64 "M "
                      "-numa node,nodeid=0,memdev=m0",
                      RAM_SIZE / MiB, RAM_SIZE / MiB);
    info = qtest_hmp(qts, "info numa");

    g_assert(strstr(info, "node 0 size: 64 MB"));
    g_assert_cmpint(count_mappings(qtest_pid(qts), SECRET_MAP), ==, 1);
    qtest_quit(qts);
}

#ifdef CONFIG_NUMA
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
    g_autofree char *all_on_node = g_strdup_printf(" N%d=%" PRIu64 " ", node,
                                                   RAM_SIZE / 4096);
    g_autofree char *numa_maps = NULL;
    g_autofree char *path = NULL;
    QTestState *qts;
    char *line;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = start_vm("memory-backend-secret", props);
    path = g_strdup_printf("/proc/%d/numa_maps", qtest_pid(qts));
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
    QTestState *qts;
    QDict *props[2];
    int i;

    if (skip_unless_lockable(MiB)) {
        return;
    }
    qts = qtest_init("-machine none");
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

/* host-nodes needs prealloc=on, which makes the same object acceptable. */
static void test_host_nodes_need_prealloc(void)
{
    QTestState *qts;
    QDict *props, *good;

    if (skip_unless_lockable(MiB)) {
        return;
    }
    qts = qtest_init("-machine none");
    props = sized(MiB);
    qdict_put_str(props, "policy", "bind");
    qdict_put(props, "host-nodes", host_node_list(0));
    good = qdict_clone_shallow(props);
    qdict_put_bool(good, "prealloc", true);
    assert_refused(qts, props, good);
    qtest_quit(qts);
}
#endif

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
    QTestState *qts;
    QDict *rsp;
    pid_t pid;

    if (skip_unless_lockable(128 * MiB)) {
        return;
    }
    qts = qtest_init("-machine pc -m 128M,slots=2,maxmem=1G");
    pid = qtest_pid(qts);
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
    QTestState *qts;
    pid_t pid;

    if (skip_unless_lockable(16 * MiB)) {
        return;
    }
    qts = qtest_init("-machine none");
    pid = qtest_pid(qts);
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
    QTestState *qts;

    if (skip_unless_lockable(MiB)) {
        return;
    }
    qts = qtest_init("-machine none");
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

static bool type_listed(QTestState *qts, const char *type)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'qom-list-types', "
                           "'arguments': { 'implements': 'memory-backend' } }");
    const QListEntry *e;
    bool found = false;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
        QDict *t = qobject_to(QDict, qlist_entry_obj(e));

        found |= !strcmp(qdict_get_str(t, "name"), type);
    }
    qobject_unref(rsp);
    return found;
}

/*
 * A kernel without memfd_secret, emulated with seccomp in QEMU's parent:
 * the type is not offered (management software probes qom-list-types) and
 * cannot be created, while memory-backend-memfd can.
 */
static void test_no_memfd_secret(void)
{
    QTestState *qts;
    QDict *memfd;

    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
        return;
    }
    qts = qtest_init("-machine none");
    g_assert(type_listed(qts, "memory-backend-secret"));
    qtest_quit(qts);

    deny_memfd_secret();
    qts = qtest_init("-machine none");
    g_assert(!type_listed(qts, "memory-backend-secret"));
    g_assert(type_listed(qts, "memory-backend-memfd"));
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
    if (setrlimit(RLIMIT_MEMLOCK, &rl)) {
        g_test_skip("cannot set RLIMIT_MEMLOCK to 8 MiB (hard limit lower)");
        return;
    }
    qts = qtest_init("-machine none");
    assert_refused(qts, sized(16 * MiB), sized(4 * MiB));
    qtest_quit(qts);
}

/* How another process's read of guest RAM ended. */
typedef struct HostRead {
    int err;        /* errno, 0 if the read returned all bytes */
    bool found;     /* the bytes were the marker */
} HostRead;

static HostRead host_read_result(ssize_t n, size_t len, const char *buf,
                                 const char *marker, const char *how)
{
    HostRead r = { .err = n < 0 ? errno : 0 };

    g_test_message("%s: %zd (%s)", how, n, n < 0 ? strerror(r.err) : "read");
    if (n >= 0 && n != len) {
        r.err = EIO;
    }
    r.found = n == len && !memcmp(buf, marker, len);
    return r;
}

/*
 * Read @len bytes of @pid at @addr through /proc/PID/mem and through
 * process_vm_readv(), as root on the host would.
 */
static void read_other_process(pid_t pid, uint64_t addr, const char *marker,
                               size_t len, HostRead *via_mem,
                               HostRead *via_vm_readv)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/mem", pid);
    g_autofree char *buf = g_malloc0(len);
    struct iovec local = { .iov_base = buf, .iov_len = len };
    struct iovec remote = { .iov_base = (void *)(uintptr_t)addr,
                            .iov_len = len };
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0) {
        *via_mem = (HostRead) { .err = errno };
    } else {
        n = pread(fd, buf, len, addr);
        *via_mem = host_read_result(n, len, buf, marker, "/proc/PID/mem");
        close(fd);
    }
    memset(buf, 0, len);
    n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    *via_vm_readv = host_read_result(n, len, buf, marker, "process_vm_readv");
}

/* Write a fresh marker at @gpa and read it back from QEMU's @map_name. */
static void read_marker(QTestState *qts, uint64_t gpa, const char *map_name,
                        uint64_t map_offset, HostRead *via_mem,
                        HostRead *via_vm_readv)
{
    g_autofree char *marker = g_strdup_printf("secretvm-marker-%08x",
                                              g_random_int());
    Mapping map;

    qtest_memwrite(qts, gpa, marker, strlen(marker));
    g_assert(find_mapping(qtest_pid(qts), map_name, 0, &map));
    read_other_process(qtest_pid(qts), map.start + map_offset, marker,
                       strlen(marker), via_mem, via_vm_readv);
}

static bool skip_if_read_denied(const HostRead *r)
{
    if (r->err != EACCES && r->err != EPERM) {
        return false;
    }
    g_test_skip("this process may not read QEMU's memory (Yama "
                "ptrace_scope, or no CAP_SYS_PTRACE), so the control "
                "cannot run");
    return true;
}

/*
 * One VM, two NUMA nodes: node 0 in secret memory, node 1 in memfd.  The
 * same reads that find the marker in node 1 (the in-VM control) are
 * refused on node 0, each with the errno the kernel gives for memory it
 * cannot reach: EIO from /proc/PID/mem, EFAULT from process_vm_readv().
 */
static void test_host_reads_secret(void)
{
    HostRead mem, vm_readv;
    QTestState *qts;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = qtest_initf("-machine pc -m %" PRIu64 "M "
                      "-object memory-backend-secret,id=m0,size=%" PRIu64 "M "
                      "-object memory-backend-memfd,id=m1,size=%" PRIu64 "M "
                      "-numa node,memdev=m0 -numa node,memdev=m1",
                      2 * RAM_SIZE / MiB, RAM_SIZE / MiB, RAM_SIZE / MiB);

    read_marker(qts, RAM_SIZE + MARKER_GPA, MEMFD_MAP, MARKER_GPA,
                &mem, &vm_readv);
    if (skip_if_read_denied(&mem)) {
        qtest_quit(qts);
        return;
    }
    g_assert(mem.found);
    g_assert(vm_readv.found);

    read_marker(qts, MARKER_GPA, SECRET_MAP, MARKER_GPA, &mem, &vm_readv);
    g_assert_cmpint(mem.err, ==, EIO);
    g_assert_cmpint(vm_readv.err, ==, EFAULT);
    g_assert(!mem.found && !vm_readv.found);
    qtest_quit(qts);
}

/* Positive control: the same reads find the marker in a VM all on memfd. */
static void test_host_reads_memfd(void)
{
    QTestState *qts = start_vm("memory-backend-memfd", "");
    HostRead mem, vm_readv;

    read_marker(qts, MARKER_GPA, MEMFD_MAP, MARKER_GPA, &mem, &vm_readv);
    if (skip_if_read_denied(&mem)) {
        qtest_quit(qts);
        return;
    }
    g_assert_cmpint(mem.err, ==, 0);
    g_assert_cmpint(vm_readv.err, ==, 0);
    g_assert(mem.found && vm_readv.found);
    qtest_quit(qts);
}

static QDict *qom_set_bool(QTestState *qts, const char *path,
                           const char *property, bool value)
{
    return qtest_qmp(qts, "{ 'execute': 'qom-set', 'arguments': {"
                     " 'path': %s, 'property': %s, 'value': %i } }",
                     path, property, value);
}

static bool qom_get_bool(QTestState *qts, const char *path,
                         const char *property)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                           " 'path': %s, 'property': %s } }", path, property);
    bool value = qdict_get_bool(rsp, "return");

    qobject_unref(rsp);
    return value;
}

/* Assert that @rsp is a success, with QEMU's error in the log if not. */
static void assert_success(QDict *rsp)
{
    if (qdict_haskey(rsp, "error")) {
        g_test_message("unexpected error: %s",
                       qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
}

/*
 * merge and dump, refused at creation, cannot be switched on later either;
 * on memory-backend-memfd (the control) the same qom-set succeeds.
 */
static void test_live_properties(void)
{
    static const char *const props[] = { "merge", "dump" };
    QTestState *qts;
    QDict *memfd, *rsp;
    int i;

    if (skip_unless_lockable(4 * MiB)) {
        return;
    }
    qts = qtest_init("-machine none");
    add_secret(qts, "s0", 4 * MiB);
    memfd = sized(4 * MiB);
    qdict_put_str(memfd, "qom-type", "memory-backend-memfd");
    qdict_put_str(memfd, "id", "f0");
    qdict_put_bool(memfd, "merge", false);
    qdict_put_bool(memfd, "dump", false);
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-add', "
                             "'arguments': %p }", memfd);

    for (i = 0; i < ARRAY_SIZE(props); i++) {
        rsp = qom_set_bool(qts, "/objects/s0", props[i], true);
        g_assert(qdict_haskey(rsp, "error"));
        qobject_unref(rsp);
        g_assert(!qom_get_bool(qts, "/objects/s0", props[i]));

        rsp = qom_set_bool(qts, "/objects/f0", props[i], true);
        assert_success(rsp);
        g_assert(qom_get_bool(qts, "/objects/f0", props[i]));
    }
    qtest_quit(qts);
}

static bool qmp_succeeds(QTestState *qts, const char *cmd, const char *args)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': %s, 'arguments': %p }", cmd,
                           qobject_to(QDict, qobject_from_json(args,
                                                               &error_abort)));
    bool ok = qdict_haskey(rsp, "return");

    if (!ok) {
        g_test_message("%s refused: %s", cmd,
                       qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    qobject_unref(rsp);
    return ok;
}

/* Assert that @rsp is an error of class GenericError, and free it. */
static void assert_generic_error(QDict *rsp)
{
    g_assert(qdict_haskey(rsp, "error"));
    g_test_message("refused: %s",
                   qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "class"),
                    ==, "GenericError");
    qobject_unref(rsp);
}

/* Migration features that hand guest RAM to the kernel by reference. */
static const char *const pinning_migration[][2] = {
    { "migrate-set-capabilities",
      "{ 'capabilities': [ { 'capability': 'postcopy-ram',"
      " 'state': true } ] }" },
    { "migrate-set-capabilities",
      "{ 'capabilities': [ { 'capability': 'multifd', 'state': true },"
      " { 'capability': 'zero-copy-send', 'state': true } ] }" },
    { "migrate-set-parameters", "{ 'direct-io': true }" },
};

/*
 * Postcopy, zero-copy-send and direct-io are refused on a source with
 * secret RAM and accepted with memfd RAM (the control).
 */
static void test_migration_refused(void)
{
    const char *backends[] = { "memory-backend-secret",
                               "memory-backend-memfd" };
    QTestState *qts;
    int b, i;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (b = 0; b < ARRAY_SIZE(backends); b++) {
        for (i = 0; i < ARRAY_SIZE(pinning_migration); i++) {
            qts = start_vm(backends[b], "");
            g_assert_cmpint(qmp_succeeds(qts, pinning_migration[i][0],
                                         pinning_migration[i][1]), ==, b);
            qtest_quit(qts);
        }
    }
}

static bool userfaultfd_available(void)
{
#ifdef SYS_userfaultfd
    int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (fd >= 0) {
        close(fd);
        return true;
    }
#endif
    return false;
}

/*
 * @cmd with @args, which needs userfaultfd on guest RAM, is refused on a
 * VM on secret RAM started with @extra; the control (memfd) needs
 * userfaultfd for this process.
 */
static void assert_userfaultfd_refused(const char *extra, const char *cmd,
                                       const char *args)
{
    QTestState *qts;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    qts = start_vm("memory-backend-secret", extra);
    g_assert(!qmp_succeeds(qts, cmd, args));
    qtest_quit(qts);

    if (!userfaultfd_available()) {
        g_test_skip("control: userfaultfd(2) is not available to this "
                    "process (vm.unprivileged_userfaultfd, seccomp)");
        return;
    }
    qts = start_vm("memory-backend-memfd", extra);
    g_assert(qmp_succeeds(qts, cmd, args));
    qtest_quit(qts);
}

/* Postcopy on the destination registers guest RAM with userfaultfd. */
static void test_postcopy_destination_refused(void)
{
    assert_userfaultfd_refused(" -incoming defer", pinning_migration[0][0],
                               pinning_migration[0][1]);
}

/* Background snapshots write-protect guest RAM with userfaultfd. */
static void test_background_snapshot_refused(void)
{
    assert_userfaultfd_refused("", "migrate-set-capabilities",
                               "{ 'capabilities': [ { 'capability':"
                               " 'background-snapshot', 'state': true } ] }");
}

static QTestState *start_virtio_mem_vm(void)
{
    return qtest_init("-machine pc -m 64M,maxmem=512M "
                      "-object memory-backend-memfd,id=f0,size=128M");
}

static void add_virtio_mem(QTestState *qts, const char *id,
                           const char *memdev, bool expect_ok)
{
    g_autofree char *args = g_strdup_printf("{ 'driver': 'virtio-mem-pci', "
                                            "'id': '%s', 'memdev': '%s' }",
                                            id, memdev);

    g_assert_cmpint(qmp_succeeds(qts, "device_add", args), ==, expect_ok);
}

/*
 * virtio-mem discards memory to unplug it: refused on a secret memdev, and
 * secret memory is refused next to a virtio-mem device, in either order.
 * virtio-mem on memfd alone is the control.
 */
static void test_virtio_mem_refused(void)
{
    QTestState *qts;

    if (skip_unless_lockable(128 * MiB)) {
        return;
    }
    qts = start_virtio_mem_vm();
    add_virtio_mem(qts, "vm0", "f0", true);
    g_assert(!qmp_succeeds(qts, "object-add",
                           "{ 'qom-type': 'memory-backend-secret',"
                           " 'id': 's0', 'size': 134217728 }"));
    g_assert_cmpint(count_secret_fds(qtest_pid(qts)), ==, 0);
    qtest_quit(qts);

    qts = start_virtio_mem_vm();
    add_secret(qts, "s0", 128 * MiB);
    add_virtio_mem(qts, "vm0", "s0", false);
    add_virtio_mem(qts, "vm1", "f0", false);
    qtest_quit(qts);
}

static char *migration_status(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-migrate' }");
    QDict *ret = qdict_get_qdict(rsp, "return");
    char *status = g_strdup(qdict_haskey(ret, "status") ?
                            qdict_get_str(ret, "status") : "none");

    qobject_unref(rsp);
    return status;
}

/* Wait for the migration to end; its final status. */
static char *wait_migration(QTestState *qts)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    char *status = NULL;

    do {
        g_free(status);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
        status = migration_status(qts);
    } while (strcmp(status, "completed") && strcmp(status, "failed"));
    return status;
}

/* The words at every 4 MiB of RAM from MARKER_GPA: written, then checked. */
static void write_words(QTestState *qts, uint64_t *words)
{
    uint64_t addr;
    int i;

    for (addr = MARKER_GPA, i = 0; addr < RAM_SIZE; addr += 4 * MiB, i++) {
        words[i] = g_random_int() | (uint64_t)g_random_int() << 32;
        qtest_writeq(qts, addr, words[i]);
    }
}

static void check_words(QTestState *qts, const uint64_t *words)
{
    uint64_t addr;
    int i;

    for (addr = MARKER_GPA, i = 0; addr < RAM_SIZE; addr += 4 * MiB, i++) {
        g_assert_cmphex(qtest_readq(qts, addr), ==, words[i]);
    }
}

/* Whether process @pid has exited (and waits to be reaped). */
static bool process_exited(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *stat = NULL;
    char *paren;

    if (!g_file_get_contents(path, &stat, NULL, NULL)) {
        return true;
    }
    paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* The environment variable naming the old QEMU, if not QTEST_QEMU_BINARY */
static const char *cpr_src_env;

/*
 * Ask @qts for cpr-transfer, its main channel on @mig_path and its CPR
 * channel on @cpr_path (UNIX sockets); returns QEMU's reply.
 */
static QDict *migrate_cpr_transfer(QTestState *qts, const char *mig_path,
                                   const char *cpr_path)
{
    qtest_qmp_assert_success(qts, "{ 'execute': 'migrate-set-parameters', "
                             "'arguments': { 'mode': 'cpr-transfer' } }");
    return qtest_qmp(qts, "{ 'execute': 'migrate', 'arguments': {"
                     " 'channels': ["
                     "  { 'channel-type': 'main', 'addr': {"
                     "    'transport': 'socket', 'type': 'unix',"
                     "    'path': %s } },"
                     "  { 'channel-type': 'cpr', 'addr': {"
                     "    'transport': 'socket', 'type': 'unix',"
                     "    'path': %s } } ] } }", mig_path, cpr_path);
}

/*
 * cpr-transfer from a VM whose RAM is @src_obj to a new QEMU whose RAM is
 * @dst_obj (-object arguments for id m0): whether the new QEMU took the
 * guest over, with the words its RAM held.  A new QEMU that refuses the
 * memory exits with status 1, and the migration fails.
 */
static bool cpr_transfer_to(const char *src_obj, const char *dst_obj,
                            int *secret_fds)
{
    g_autofree char *dir = g_dir_make_tmp("secret-cpr-XXXXXX", NULL);
    g_autofree char *cpr_path = g_build_filename(dir, "cpr.sock", NULL);
    g_autofree char *mig_path = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *common = NULL;
    g_autofree char *src_args = NULL;
    g_autofree char *dst_args = NULL;
    g_autofree char *status = NULL;
    g_autofree uint64_t *words = g_new(uint64_t, RAM_SIZE / (4 * MiB));
    gint64 deadline;
    QTestState *src, *dst;
    QDict *rsp;
    int cpr_fd;
    bool ok;

    common = g_strdup_printf("-nodefaults -machine pc,memory-backend=m0,"
                             "aux-ram-share=on -m %" PRIu64 "M",
                             RAM_SIZE / MiB);
    src_args = g_strdup_printf("%s -object %s,id=m0,size=%" PRIu64 "M",
                               common, src_obj, RAM_SIZE / MiB);
    src = qtest_init_ext(cpr_src_env, src_args, NULL, true);
    write_words(src, words);

    cpr_fd = qtest_socket_server(cpr_path);
    g_assert_cmpint(cpr_fd, >=, 0);
    dst_args = g_strdup_printf("%s -object %s,id=m0,size=%" PRIu64 "M "
                               "-incoming cpr,addr.transport=socket,"
                               "addr.type=fd,addr.str=%d "
                               "-incoming unix:%s", common, dst_obj,
                               RAM_SIZE / MiB, cpr_fd, mig_path);
    dst = qtest_init_ext(NULL, dst_args, NULL, false);

    rsp = migrate_cpr_transfer(src, mig_path, cpr_path);
    assert_success(rsp);
    status = wait_migration(src);
    ok = !strcmp(status, "completed");
    if (ok) {
        qtest_connect(dst);
        qtest_qmp_handshake(dst, NULL);
        g_free(wait_migration(dst));
        *secret_fds = count_secret_fds(qtest_pid(dst));
        check_words(dst, words);
    } else {
        deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
        while (!process_exited(qtest_pid(dst))) {
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            g_usleep(10 * 1000);
        }
        qtest_set_expected_status(dst, 1);
    }
    qtest_quit(dst);
    qtest_quit(src);
    close(cpr_fd);
    unlink(cpr_path);
    unlink(mig_path);
    rmdir(dir);
    return ok;
}

/*
 * cpr-transfer: the new QEMU receives the secret memory's file descriptor
 * over the CPR channel and maps the same memory, so the guest's RAM is
 * there without being copied.  A new QEMU that created fresh memory
 * instead would read zeroes.
 */
static void test_cpr_transfer(void)
{
    int fds;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    g_assert(cpr_transfer_to("memory-backend-secret,cpr=on",
                             "memory-backend-secret,cpr=on", &fds));
    g_assert_cmpint(fds, ==, 1);
}

/*
 * What a process listening on the CPR socket gets: -1 if QEMU does not
 * connect within a second, else the number of secret memory file
 * descriptors QEMU sends it.
 */
static int cpr_listener_secret_fds(int listener)
{
    struct pollfd pfd = { .fd = listener, .events = POLLIN };
    char buf[4096], link[PATH_MAX];
    union {
        char buf[CMSG_SPACE(64 * sizeof(int))];
        struct cmsghdr align;
    } control;
    int conn, n = 0;

    if (poll(&pfd, 1, 1000) != 1) {
        return -1;
    }
    conn = accept(listener, NULL, NULL);
    g_assert_cmpint(conn, >=, 0);
    pfd.fd = conn;
    /* QEMU keeps the connection open until we hang up: stop when idle */
    while (poll(&pfd, 1, 2000) == 1) {
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *cmsg;
        ssize_t len = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);

        for (cmsg = len >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cmsg;
             cmsg = CMSG_NXTHDR(&msg, cmsg)) {
            int *fds = (int *)CMSG_DATA(cmsg);
            int i, nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            if (cmsg->cmsg_level != SOL_SOCKET ||
                cmsg->cmsg_type != SCM_RIGHTS) {
                continue;
            }
            for (i = 0; i < nfds; i++) {
                g_autofree char *path =
                    g_strdup_printf("/proc/self/fd/%d", fds[i]);
                ssize_t l = readlink(path, link, sizeof(link) - 1);

                if (l > 0) {
                    link[l] = 0;
                    n += !!strstr(link, "secretmem");
                }
                close(fds[i]);
            }
        }
        if (len <= 0) {
            break;
        }
    }
    close(conn);
    return n;
}

/*
 * Ask @qts for cpr-transfer to sockets in @dir; QEMU must accept the
 * command exactly when @accepted.  Returns what a process listening on
 * the CPR socket got, as cpr_listener_secret_fds() counts it.
 */
static int cpr_transfer_listener_fds(QTestState *qts, const char *dir,
                                     bool accepted)
{
    g_autofree char *cpr_path = g_build_filename(dir, "cpr.sock", NULL);
    g_autofree char *mig_path = g_build_filename(dir, "mig.sock", NULL);
    int listener = qtest_socket_server(cpr_path);
    QDict *rsp;
    int fds;

    g_assert_cmpint(listener, >=, 0);
    rsp = migrate_cpr_transfer(qts, mig_path, cpr_path);
    if (accepted) {
        assert_success(rsp);
    } else {
        assert_generic_error(rsp);
    }
    fds = cpr_listener_secret_fds(listener);
    close(listener);
    unlink(cpr_path);
    return fds;
}

/*
 * cpr-transfer and cpr-exec hand the memory's file descriptor to another
 * process: whatever accepts the CPR channel, or runs as cpr-exec-command,
 * both chosen over QMP.  Without cpr=on or plaintext-export=on both are
 * refused and a process listening on the CPR socket gets no connection;
 * with either opt-in (the controls) it receives the secret memory's fd.
 */
static void test_cpr_refused(void)
{
    static const char *const opt_ins[] = {
        "", ",cpr=on", ",plaintext-export=on"
    };
    g_autofree char *dir = g_dir_make_tmp("secret-cprref-XXXXXX", NULL);
    g_autofree char *state = g_build_filename(dir, "state", NULL);
    QTestState *qts;
    QDict *rsp;
    int i;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (i = 0; i < ARRAY_SIZE(opt_ins); i++) {
        qts = qtest_initf("-nodefaults -machine pc,memory-backend=m0,"
                          "aux-ram-share=on -m %" PRIu64 "M "
                          "-object memory-backend-secret,id=m0,"
                          "size=%" PRIu64 "M%s", RAM_SIZE / MiB,
                          RAM_SIZE / MiB, opt_ins[i]);
        g_assert_cmpint(cpr_transfer_listener_fds(qts, dir, i), ==,
                        i ? 1 : -1);
        qtest_quit(qts);

        /*
         * cpr-exec: the program would inherit the fd.  With an opt-in the
         * same request is accepted, and fails only when the exec does.
         */
        qts = qtest_initf("-nodefaults -machine pc,memory-backend=m0,"
                          "aux-ram-share=on -m %" PRIu64 "M "
                          "-object memory-backend-secret,id=m0,"
                          "size=%" PRIu64 "M%s", RAM_SIZE / MiB,
                          RAM_SIZE / MiB, opt_ins[i]);
        qtest_qmp_assert_success(qts, "{ 'execute': "
                                 "'migrate-set-parameters', "
                                 "'arguments': { 'mode': 'cpr-exec', "
                                 "'cpr-exec-command': "
                                 "[ '/nonexistent/cpr-exec' ] } }");
        rsp = qtest_qmp(qts, "{ 'execute': 'migrate', "
                        "'arguments': { 'channels': [ "
                        "{ 'channel-type': 'main', 'addr': "
                        "{ 'transport': 'file', 'filename': %s, "
                        "'offset': 0 } } ] } }", state);
        if (i) {
            assert_success(rsp);
            g_free(wait_migration(qts));
        } else {
            assert_generic_error(rsp);
        }
        qtest_quit(qts);
        unlink(state);
    }
    rmdir(dir);
}


/*
 * A backend that object-add created after start-up counts as much as the
 * machine's RAM: without cpr=on, cpr-transfer is refused and the process
 * listening on the CPR socket gets no connection; with cpr=on (the
 * control) it gets the fds of both.  The added backend is not plugged.
 */
static void test_cpr_refused_added(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-cpradd-XXXXXX", NULL);
    QTestState *qts;
    QDict *props;
    int opt_in;

    if (skip_unless_lockable(RAM_SIZE + 4 * MiB)) {
        return;
    }
    for (opt_in = 0; opt_in < 2; opt_in++) {
        qts = qtest_initf("-nodefaults -machine pc,memory-backend=m0,"
                          "aux-ram-share=on -m %" PRIu64 "M "
                          "-object memory-backend-secret,id=m0,"
                          "size=%" PRIu64 "M,cpr=on", RAM_SIZE / MiB,
                          RAM_SIZE / MiB);
        props = sized(4 * MiB);
        qdict_put_str(props, "id", "m1");
        qdict_put_bool(props, "cpr", opt_in);
        qtest_qmp_assert_success(qts, "{ 'execute': 'object-add', "
                                 "'arguments': %p }", props);
        g_assert_cmpint(cpr_transfer_listener_fds(qts, dir, opt_in), ==,
                        opt_in ? 2 : -1);
        qtest_quit(qts);
    }
    rmdir(dir);
}

/*
 * cpr is fixed once the memory is allocated: qom-set of the other value
 * is refused and qom-get still returns the value it was created with;
 * setting the same value again (the control) changes nothing, and is
 * allowed.
 */
static void test_cpr_property_fixed(void)
{
    static const char *const paths[] = { "/objects/s0", "/objects/s1" };
    QTestState *qts;
    QDict *props;
    int i;

    if (skip_unless_lockable(8 * MiB)) {
        return;
    }
    qts = qtest_init("-machine none");
    for (i = 0; i < ARRAY_SIZE(paths); i++) {
        props = sized(4 * MiB);
        qdict_put_str(props, "id", paths[i] + strlen("/objects/"));
        qdict_put_bool(props, "cpr", i);
        qtest_qmp_assert_success(qts, "{ 'execute': 'object-add', "
                                 "'arguments': %p }", props);
        g_assert_cmpint(qom_get_bool(qts, paths[i], "cpr"), ==, i);
        assert_generic_error(qom_set_bool(qts, paths[i], "cpr", !i));
        g_assert_cmpint(qom_get_bool(qts, paths[i], "cpr"), ==, i);
        qtest_qmp_assert_success(qts, "{ 'execute': 'qom-set', "
                                 "'arguments': { 'path': %s, "
                                 "'property': 'cpr', 'value': %i } }",
                                 paths[i], i);
        g_assert_cmpint(qom_get_bool(qts, paths[i], "cpr"), ==, i);
    }
    qtest_quit(qts);
}

/*
 * The new QEMU must map the memory with the backend type that created it:
 * memory-backend-memfd does not take over secret memory (its
 * plaintext-export would be lost), memory-backend-secret does not take
 * over a memfd (it would not be secret).  memfd to memfd is the control.
 */
static void test_cpr_type_mismatch(void)
{
    int fds;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    g_assert(!cpr_transfer_to("memory-backend-secret,cpr=on",
                              "memory-backend-memfd", &fds));
    g_assert(!cpr_transfer_to("memory-backend-memfd",
                              "memory-backend-secret", &fds));
    g_assert(cpr_transfer_to("memory-backend-memfd",
                             "memory-backend-memfd", &fds));
    g_assert_cmpint(fds, ==, 0);
}

/*
 * plaintext-export does not turn on across CPR: a new QEMU with
 * plaintext-export=on refuses the memory of an old one with
 * plaintext-export=off; on to on is the control (off to off is
 * cpr-transfer).
 */
static void test_cpr_plaintext_export(void)
{
    int fds;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    g_assert(!cpr_transfer_to("memory-backend-secret,cpr=on,"
                              "plaintext-export=off",
                              "memory-backend-secret,plaintext-export=on",
                              &fds));
    g_assert(cpr_transfer_to("memory-backend-secret,plaintext-export=on",
                             "memory-backend-secret,plaintext-export=on",
                             &fds));
    g_assert_cmpint(fds, ==, 1);
}

/* A socket connected to the listening UNIX socket at @path */
static int unix_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==,
                    0);
    return fd;
}

/*
 * A CPR state whose list of plaintext-export names holds a malformed name
 * (empty, or without its terminating NUL) is refused: the new QEMU exits
 * with status 1 instead of reading past it.  A well-formed name (the
 * control) loads, and the new QEMU waits for its migration.
 */
static void test_cpr_bad_plaintext_name(void)
{
    static const struct {
        uint32_t len;
        const char *name;
        bool ok;
    } cases[] = {
        { 0, "", false }, { 3, "abc", false }, { 4, "abc", true },
    };
    static const char sub[] = "CprState/plaintext";
    g_autofree char *dir = g_dir_make_tmp("secret-cprname-XXXXXX", NULL);
    g_autofree char *cpr_path = g_build_filename(dir, "cpr.sock", NULL);
    g_autofree char *mig_path = g_build_filename(dir, "mig.sock", NULL);
    gint64 deadline;
    QTestState *dst;
    int i, cpr_fd, conn;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        GByteArray *buf = g_byte_array_new();
        g_autofree char *args = NULL;
        uint32_t be;
        uint8_t b;

#define PUT_BE32(v) \
        (be = cpu_to_be32(v), g_byte_array_append(buf, (void *)&be, 4))
#define PUT_BYTE(v) (b = (v), g_byte_array_append(buf, &b, 1))
        PUT_BE32(0x51435052);           /* QEMU_CPR_FILE_MAGIC */
        PUT_BE32(1);                    /* QEMU_CPR_FILE_VERSION */
        PUT_BYTE(0);                    /* no fds */
        PUT_BYTE(5);                    /* QEMU_VM_SUBSECTION */
        PUT_BYTE(strlen(sub));
        g_byte_array_append(buf, (const uint8_t *)sub, strlen(sub));
        PUT_BE32(1);                    /* version */
        PUT_BYTE(1);                    /* one entry */
        PUT_BE32(cases[i].len);
        g_byte_array_append(buf, (const uint8_t *)cases[i].name,
                            cases[i].len);
        PUT_BYTE(0);                    /* end of list */
#undef PUT_BE32
#undef PUT_BYTE

        cpr_fd = qtest_socket_server(cpr_path);
        g_assert_cmpint(cpr_fd, >=, 0);
        args = g_strdup_printf("-nodefaults -machine pc,memory-backend=m0,"
                               "aux-ram-share=on -m %" PRIu64 "M "
                               "-object memory-backend-secret,id=m0,"
                               "size=%" PRIu64 "M -incoming cpr,"
                               "addr.transport=socket,addr.type=fd,"
                               "addr.str=%d -incoming unix:%s",
                               RAM_SIZE / MiB, RAM_SIZE / MiB, cpr_fd,
                               mig_path);
        dst = qtest_init_ext(NULL, args, NULL, false);
        conn = unix_connect(cpr_path);
        g_assert_cmpint(write(conn, buf->data, buf->len), ==, buf->len);
        close(conn);
        g_byte_array_free(buf, true);

        deadline = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
        while (!process_exited(qtest_pid(dst)) &&
               g_get_monotonic_time() < deadline) {
            g_usleep(10 * 1000);
        }
        g_assert_cmpint(process_exited(qtest_pid(dst)), ==, !cases[i].ok);
        if (cases[i].ok) {
            qtest_connect(dst);
            qtest_qmp_handshake(dst, NULL);
        } else {
            qtest_set_expected_status(dst, 1);
        }
        qtest_quit(dst);
        close(cpr_fd);
        unlink(cpr_path);
        unlink(mig_path);
    }
    rmdir(dir);
}

/*
 * Only an opt-in that the CPR state carries allows plaintext-export=on on
 * inherited secret memory: from a QEMU that sends no list of such memory
 * ($QTEST_QEMU_BINARY_SRC, one that predates the list), the new QEMU
 * refuses it.  Skipped without such a QEMU; new to new, the control, is
 * fd/cpr-plaintext-export.
 */
static void test_cpr_plaintext_from_old(void)
{
    int fds;

    if (!getenv("QTEST_QEMU_BINARY_SRC")) {
        g_test_skip("set QTEST_QEMU_BINARY_SRC to a QEMU that predates "
                    "the CPR state's plaintext list");
        return;
    }
    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    cpr_src_env = "QTEST_QEMU_BINARY_SRC";
    g_assert(!cpr_transfer_to("memory-backend-secret,plaintext-export=on",
                              "memory-backend-secret,plaintext-export=on",
                              &fds));
    cpr_src_env = NULL;
}

/*
 * Secret memory is unpinnable and confidential whoever maps it: a
 * memory-backend-file on /proc/self/fd/N of a memfd_secret(2) fd refuses
 * pmemsave and postcopy; on a memfd (the control) both work.  Kernels
 * that do not reopen secret memory through /proc (ENXIO, Linux 6.18)
 * leave memory-backend-file no way to map it: then only the control runs.
 */
static void test_fd_file_backend(void)
{
    g_autofree char *path = NULL;
    int secret, fd, reopened;
    QTestState *qts;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (secret = 0; secret < 2; secret++) {
        fd = secret ? syscall(SYS_memfd_secret, 0) :
                      memfd_create("fd-file-backend", 0);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, RAM_SIZE), ==, 0);
        g_free(path);
        path = g_strdup_printf("/proc/self/fd/%d", fd);
        reopened = open(path, O_RDWR);
        if (reopened < 0) {
            g_assert_cmpint(secret, ==, 1);
            g_test_skip("this kernel does not reopen secret memory "
                        "through /proc/self/fd, so memory-backend-file "
                        "cannot map it");
            close(fd);
            return;
        }
        close(reopened);
        qts = qtest_initf("-nodefaults -machine pc,memory-backend=m0 "
                          "-m %" PRIu64 "M -object memory-backend-file,"
                          "id=m0,size=%" PRIu64 "M,share=on,"
                          "mem-path=/proc/self/fd/%d",
                          RAM_SIZE / MiB, RAM_SIZE / MiB, fd);
        close(fd);
        g_assert_cmpint(qmp_succeeds(qts, "pmemsave", "{ 'val': 0, "
                                     "'size': 4096, 'filename': "
                                     "'/dev/null' }"), ==, !secret);
        g_assert_cmpint(qmp_succeeds(qts, pinning_migration[0][0],
                                     pinning_migration[0][1]), ==, !secret);
        qtest_quit(qts);
    }
}

/* A VM on secret RAM, with copies in the clear refused or allowed. */
static QTestState *start_plaintext_vm(bool allowed, const char *extra)
{
    return qtest_initf("-nodefaults -machine pc,memory-backend=m0 "
                       "-m %" PRIu64 "M -object memory-backend-secret,"
                       "id=m0,size=%" PRIu64 "M,plaintext-export=%s%s",
                       RAM_SIZE / MiB, RAM_SIZE / MiB,
                       allowed ? "on" : "off", extra);
}

/*
 * dump-guest-memory, pmemsave and memsave write guest RAM to a file:
 * refused, and no file written, unless plaintext-export=on (the control).
 */
static void test_plaintext_monitor(void)
{
    static const char *const cmds[][2] = {
        { "dump-guest-memory", "{ 'paging': false, 'protocol': 'file:%s' }" },
        { "pmemsave", "{ 'val': 0, 'size': 4096, 'filename': '%s' }" },
        { "memsave", "{ 'val': 0, 'size': 4096, 'filename': '%s' }" },
    };
    g_autofree char *dir = g_dir_make_tmp("secret-dump-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "ram", NULL);
    QTestState *qts;
    struct stat st;
    int allowed, i;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (allowed = 0; allowed < 2; allowed++) {
        qts = start_plaintext_vm(allowed, "");
        for (i = 0; i < ARRAY_SIZE(cmds); i++) {
            g_autofree char *args = g_strdup_printf(cmds[i][1], path);

            g_assert_cmpint(qmp_succeeds(qts, cmds[i][0], args), ==,
                            allowed);
            g_assert_cmpint(stat(path, &st), ==, allowed ? 0 : -1);
            if (allowed) {
                g_assert_cmpint(st.st_size, >, 0);
                unlink(path);
            } else {
                g_assert_cmpint(errno, ==, ENOENT);
            }
        }
        qtest_quit(qts);
    }
    rmdir(dir);
}

/* A gdb remote protocol packet for @cmd, with its checksum. */
static char *gdb_packet(const char *cmd)
{
    unsigned sum = 0;
    int i;

    for (i = 0; cmd[i]; i++) {
        sum += (unsigned char)cmd[i];
    }
    return g_strdup_printf("$%s#%02x", cmd, sum & 0xff);
}

/*
 * Send @cmd to the gdbstub on @fd and return its reply's payload, after
 * QEMU's acknowledgement; the reply's checksum is checked.
 */
static char *gdb_command(int fd, const char *cmd)
{
    g_autofree char *pkt = gdb_packet(cmd);
    g_autofree char *check = NULL;
    GString *reply = g_string_new(NULL);
    char c, sum[3] = "";

    g_assert_cmpint(send(fd, pkt, strlen(pkt), MSG_NOSIGNAL), ==,
                    strlen(pkt));
    g_assert_cmpint(read(fd, &c, 1), ==, 1);
    g_assert_cmpint(c, ==, '+');
    do {
        g_assert_cmpint(read(fd, &c, 1), ==, 1);
    } while (c != '$');
    for (;;) {
        g_assert_cmpint(read(fd, &c, 1), ==, 1);
        if (c == '#') {
            break;
        }
        g_string_append_c(reply, c);
    }
    g_assert_cmpint(read(fd, sum, 1), ==, 1);
    g_assert_cmpint(read(fd, sum + 1, 1), ==, 1);
    check = gdb_packet(reply->str);
    g_assert_cmpstr(check + strlen(check) - 2, ==, sum);
    g_assert_cmpint(send(fd, "+", 1, MSG_NOSIGNAL), ==, 1);
    return g_string_free(reply, false);
}

/* A connection to the gdbstub's chardev socket @path, reads bounded. */
static int gdb_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 30 };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
                    ==, 0);
    return fd;
}

/* @v's bytes in memory order, in hex, as gdb's m packet gives them. */
static char *le_hex(uint64_t v)
{
    GString *s = g_string_new(NULL);
    int i;

    for (i = 0; i < 8; i++) {
        g_string_append_printf(s, "%02x", (unsigned)(v >> (8 * i) & 0xff));
    }
    return g_string_free(s, false);
}

/*
 * Debug reads copy guest RAM out of QEMU too: HMP's xp, x and sum, and
 * the gdbstub's m packet in virtual and in physical memory mode (also
 * from the BIOS ROM into RAM, and from RAM into the PCI hole), do not
 * show a marker in secret RAM unless plaintext-export=on, and show it on
 * memfd RAM (the controls).  A debugger may still write (gdb's M).
 */
static void test_plaintext_debug_reads(void)
{
    static const char *const backends[] = {
        "memory-backend-secret,id=m0,plaintext-export=off",
        "memory-backend-secret,id=m0,plaintext-export=on",
        "memory-backend-memfd,id=m0",
    };
    g_autofree char *dir = g_dir_make_tmp("secret-gdb-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "gdb", NULL);
    uint64_t marker = ((uint64_t)g_test_rand_int() << 32) | 0x5ec2e7u;
    uint64_t written = ~marker;
    g_autofree char *word = g_strdup_printf("0x%016" PRIx64, marker);
    g_autofree char *bytes = le_hex(marker);
    g_autofree char *m = g_strdup_printf("m%x,8", MARKER_GPA);
    g_autofree char *hex_written = le_hex(written);
    g_autofree char *M = g_strdup_printf("M%x,8:%s", MARKER_GPA + 8,
                                         hex_written);
    QTestState *qts;
    int i, fd;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    if (!qtest_has_accel("tcg")) {
        g_test_skip("the gdbstub needs TCG, which this QEMU lacks");
        return;
    }
    for (i = 0; i < ARRAY_SIZE(backends); i++) {
        bool readable = i > 0;
        g_autofree char *xp = NULL, *x = NULL, *sum = NULL;
        g_autofree char *from_rom = NULL, *into_hole = NULL;
        g_autofree char *hole = g_strdup_printf("m%" PRIx64 ",10",
                                                RAM_SIZE - 8);
        g_autofree char *gdb = NULL, *phys = NULL, *mode = NULL;
        g_autofree char *wrote = NULL;

        /* the qtest accelerator has no gdbstub: TCG, stopped */
        qts = qtest_initf("-accel tcg -S -nodefaults "
                          "-machine pc,memory-backend=m0 "
                          "-m %" PRIu64 "M -object %s,size=%" PRIu64 "M "
                          "-chardev socket,id=gdb0,path=%s,server=on,"
                          "wait=off -gdb chardev:gdb0",
                          RAM_SIZE / MiB, backends[i], RAM_SIZE / MiB,
                          path);
        qtest_writeq(qts, MARKER_GPA, marker);
        xp = qtest_hmp(qts, "xp /1gx 0x%x", MARKER_GPA);
        /* the CPU is in real mode: virtual addresses are physical */
        x = qtest_hmp(qts, "x /1gx 0x%x", MARKER_GPA);
        g_assert_cmpint(!!strstr(xp, word), ==, readable);
        g_assert_cmpint(!!strstr(x, word), ==, readable);
        /* a checksum of each byte alone would give the bytes away */
        sum = qtest_hmp(qts, "sum 0x%x 1", MARKER_GPA);
        g_assert_cmpint(!!g_ascii_isdigit(sum[0]), ==, readable);

        fd = gdb_connect(path);
        gdb = gdb_command(fd, m);
        mode = gdb_command(fd, "Qqemu.PhyMemMode:1");
        g_assert_cmpstr(mode, ==, "OK");
        phys = gdb_command(fd, m);
        /* the last 8 bytes of the BIOS ROM, then RAM */
        from_rom = gdb_command(fd, "mffff8,10");
        into_hole = gdb_command(fd, hole);
        wrote = gdb_command(fd, M);
        close(fd);
        if (readable) {
            g_assert_cmpstr(gdb, ==, bytes);
            g_assert_cmpstr(phys, ==, bytes);
        } else {
            g_assert_cmpint(gdb[0], ==, 'E');
            g_assert_cmpint(phys[0], ==, 'E');
            g_assert_cmpint(from_rom[0], ==, 'E');
            g_assert_cmpint(into_hole[0], ==, 'E');
        }
        g_assert_cmpstr(wrote, ==, "OK");
        g_assert_cmphex(qtest_readq(qts, MARKER_GPA + 8), ==, written);
        qtest_quit(qts);
        unlink(path);
    }
    rmdir(dir);
}

/*
 * Migration without TLS: to a file or a socket on the source, from a
 * socket on the destination, refused unless plaintext-export=on.
 */
static void test_plaintext_migration(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-mig-XXXXXX", NULL);
    g_autofree char *file_uri = g_strdup_printf("{ 'uri': 'file:%s/state' }",
                                                dir);
    g_autofree char *unix_uri = g_strdup_printf("{ 'uri': 'unix:%s/sock' }",
                                                dir);
    g_autofree char *path = g_build_filename(dir, "state", NULL);
    g_autofree char *sock = g_build_filename(dir, "sock", NULL);
    g_autofree char *status = NULL;
    QTestState *qts;
    int allowed;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (allowed = 0; allowed < 2; allowed++) {
        qts = start_plaintext_vm(allowed, "");
        g_assert_cmpint(qmp_succeeds(qts, "migrate", file_uri), ==, allowed);
        if (allowed) {
            g_free(status);
            status = wait_migration(qts);
            g_assert_cmpstr(status, ==, "completed");
            unlink(path);
        }
        qtest_quit(qts);

        qts = start_plaintext_vm(allowed, "");
        g_assert_cmpint(qmp_succeeds(qts, "migrate", unix_uri), ==, allowed);
        qtest_quit(qts);

        qts = start_plaintext_vm(allowed, " -incoming defer");
        g_assert_cmpint(qmp_succeeds(qts, "migrate-incoming", unix_uri), ==,
                        allowed);
        qtest_quit(qts);
        unlink(sock);
    }
    g_assert_cmpint(access(path, F_OK), ==, -1);
    g_assert_cmpint(rmdir(dir), ==, 0);
}

/* Wait for job @id to conclude; whether it succeeded. */
static bool job_succeeds(QTestState *qts, const char *id)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    bool done = false, ok = false;

    while (!done) {
        QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-jobs' }");
        QListEntry *e;

        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
            QDict *job = qobject_to(QDict, qlist_entry_obj(e));

            if (!strcmp(qdict_get_str(job, "id"), id) &&
                !strcmp(qdict_get_str(job, "status"), "concluded")) {
                done = true;
                ok = !qdict_haskey(job, "error");
                if (!ok) {
                    g_test_message("job %s: %s", id,
                                   qdict_get_str(job, "error"));
                }
            }
        }
        qobject_unref(rsp);
        if (!done) {
            g_usleep(10 * 1000);
        }
    }
    qtest_qmp_assert_success(qts, "{ 'execute': 'job-dismiss', "
                             "'arguments': { 'id': %s } }", id);
    return ok;
}

/* A qcow2 image at @path, as block node "d0", for snapshots. */
static void add_qcow2(QTestState *qts, const char *path)
{
    g_assert(g_file_set_contents(path, "", 0, NULL));
    qtest_qmp_assert_success(qts, "{ 'execute': 'blockdev-add', "
                             "'arguments': { 'driver': 'file', "
                             "'node-name': 'f0', 'filename': %s } }", path);
    qtest_qmp_assert_success(qts, "{ 'execute': 'blockdev-create', "
                             "'arguments': { 'job-id': 'create', "
                             "'options': { 'driver': 'qcow2', "
                             "'file': 'f0', 'size': 1048576 } } }");
    g_assert(job_succeeds(qts, "create"));
    qtest_qmp_assert_success(qts, "{ 'execute': 'blockdev-add', "
                             "'arguments': { 'driver': 'qcow2', "
                             "'node-name': 'd0', 'file': 'f0' } }");
}

/* snapshot-save puts guest RAM into a disk image: as migration to a file. */
static void test_plaintext_snapshot(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-snap-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "disk.qcow2", NULL);
    QTestState *qts;
    int allowed;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (allowed = 0; allowed < 2; allowed++) {
        qts = start_plaintext_vm(allowed, "");
        add_qcow2(qts, path);
        qtest_qmp_assert_success(qts, "{ 'execute': 'snapshot-save', "
                                 "'arguments': { 'job-id': 'save', "
                                 "'tag': 'snap0', 'vmstate': 'd0', "
                                 "'devices': [ 'd0' ] } }");
        g_assert_cmpint(job_succeeds(qts, "save"), ==, allowed);
        qtest_quit(qts);
        unlink(path);
    }
    rmdir(dir);
}

#ifdef CONFIG_GNUTLS
/*
 * Arguments for PSK credentials "tls0" as @endpoint ("client" or
 * "server"), with the key in @dir.
 */
static char *tls_psk_args(const char *dir, const char *endpoint)
{
    g_autofree char *psk = g_build_filename(dir, "keys.psk", NULL);

    g_assert(g_file_set_contents(psk, "qemu:009d5638c40fde0c\n", -1, NULL));
    return g_strdup_printf(" -object tls-creds-psk,id=tls0,endpoint=%s,"
                           "dir=%s%s", endpoint, dir,
                           strcmp(endpoint, "client") ? "" : ",username=qemu");
}

static void set_tls_creds(QTestState *qts)
{
    qtest_qmp_assert_success(qts, "{ 'execute': 'migrate-set-parameters', "
                             "'arguments': { 'tls-creds': 'tls0' } }");
}

static void remove_tls_dir(const char *dir)
{
    g_autofree char *psk = g_build_filename(dir, "keys.psk", NULL);

    unlink(psk);
    g_assert_cmpint(rmdir(dir), ==, 0);
}

/*
 * Precopy migration over TLS (PSK) needs no opt-in: both QEMUs on secret
 * RAM, and the destination has the words the source's guest RAM held.
 */
static void test_tls_migration(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-tls-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    g_autofree char *src_args = tls_psk_args(dir, "client");
    g_autofree char *server = tls_psk_args(dir, "server");
    g_autofree char *dst_args = g_strconcat(server, " -incoming defer", NULL);
    g_autofree char *status = NULL;
    g_autofree uint64_t *words = g_new(uint64_t, RAM_SIZE / (4 * MiB));
    QTestState *src, *dst;

    if (skip_unless_lockable(2 * RAM_SIZE)) {
        return;
    }
    src = start_plaintext_vm(false, src_args);
    dst = start_plaintext_vm(false, dst_args);
    write_words(src, words);

    set_tls_creds(dst);
    qtest_qmp_assert_success(dst, "{ 'execute': 'migrate-incoming', "
                             "'arguments': { 'uri': %s } }", uri);
    set_tls_creds(src);
    qtest_qmp_assert_success(src, "{ 'execute': 'migrate', "
                             "'arguments': { 'uri': %s } }", uri);
    status = wait_migration(src);
    g_assert_cmpstr(status, ==, "completed");
    g_free(status);
    status = wait_migration(dst);
    g_assert_cmpstr(status, ==, "completed");

    check_words(dst, words);
    qtest_quit(dst);
    qtest_quit(src);
    unlink(sock);
    remove_tls_dir(dir);
}

/*
 * TLS that does not protect the RAM is refused unless plaintext-export=on
 * (the control): anonymous credentials, which authenticate nobody (on the
 * destination: QEMU 10.2.2 crashes creating anonymous client
 * credentials); TLS and a file, which it does not cover; and a change of
 * tls-creds while a
 * migration of secret RAM runs, on the source and on the destination.
 */
static void test_tls_refused(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-tlsno-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *state = g_build_filename(dir, "state", NULL);
    g_autofree char *unix_uri = g_strdup_printf("{ 'uri': 'unix:%s' }",
                                                sock);
    g_autofree char *file_uri = g_strdup_printf("{ 'uri': 'file:%s' }",
                                                state);
    g_autofree char *client = tls_psk_args(dir, "client");
    g_autofree char *server = tls_psk_args(dir, "server");
    g_autofree char *incoming = g_strconcat(server, " -incoming defer", NULL);
    const char *no_tls = "{ 'tls-creds': '' }";
    QTestState *qts, *src, *dst;
    int allowed;

    if (skip_unless_lockable(2 * RAM_SIZE)) {
        return;
    }
    for (allowed = 0; allowed < 2; allowed++) {
        qts = start_plaintext_vm(allowed, " -object tls-creds-anon,id=tls0,"
                                 "endpoint=server -incoming defer");
        set_tls_creds(qts);
        g_assert_cmpint(qmp_succeeds(qts, "migrate-incoming", unix_uri), ==,
                        allowed);
        qtest_quit(qts);
        unlink(sock);

        qts = start_plaintext_vm(allowed, client);
        set_tls_creds(qts);
        g_assert_cmpint(qmp_succeeds(qts, "migrate", file_uri), ==, allowed);
        qtest_quit(qts);
        unlink(state);

        /* Zero pages at 1 kB/s: the migration runs for minutes. */
        dst = start_plaintext_vm(allowed, incoming);
        set_tls_creds(dst);
        g_assert(qmp_succeeds(dst, "migrate-incoming", unix_uri));
        src = start_plaintext_vm(allowed, client);
        set_tls_creds(src);
        g_assert(qmp_succeeds(src, "migrate-set-parameters",
                              "{ 'max-bandwidth': 1000 }"));
        g_assert(qmp_succeeds(src, "migrate", unix_uri));
        g_assert_cmpint(qmp_succeeds(src, "migrate-set-parameters", no_tls),
                        ==, allowed);
        g_assert_cmpint(qmp_succeeds(dst, "migrate-set-parameters", no_tls),
                        ==, allowed);
        qtest_quit(dst);
        qtest_quit(src);
        unlink(sock);
    }
    remove_tls_dir(dir);
}

static bool set_parameter(QTestState *qts, const char *key, const char *val)
{
    g_autofree char *args = g_strdup_printf("{ '%s': '%s' }", key, val);

    return qmp_succeeds(qts, "migrate-set-parameters", args);
}

/*
 * cpr-reboot hands no fd to another process: over TLS it needs no cpr=on.
 * The same migration with cpr=on is the control.  Nothing listens on the
 * socket, so the migration fails after it started.
 */
static void test_cpr_reboot_tls(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-cprreb-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *uri = g_strdup_printf("{ 'uri': 'unix:%s' }", sock);
    g_autofree char *client = tls_psk_args(dir, "client");
    QTestState *qts;
    int cpr;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (cpr = 0; cpr < 2; cpr++) {
        g_autofree char *extra = g_strconcat(cpr ? ",cpr=on" : "", client,
                                             NULL);

        qts = start_plaintext_vm(false, extra);
        set_tls_creds(qts);
        g_assert(set_parameter(qts, "mode", "cpr-reboot"));
        g_assert(qmp_succeeds(qts, "migrate", uri));
        g_free(wait_migration(qts));
        qtest_quit(qts);
    }
    remove_tls_dir(dir);
}

/*
 * While a cpr-transfer migration waits for the destination to hang up its
 * CPR channel, mode cannot change (back to normal, the source would send
 * RAM on the main channel, which cpr-transfer let through without TLS),
 * for any RAM; nor can tls-creds while confidential RAM exists (memfd,
 * the control, may).  Before the migration, both change (the control).
 */
static void test_plaintext_cpr_parameters(void)
{
    const char *backends[] = { "memory-backend-secret,cpr=on",
                               "memory-backend-memfd" };
    g_autofree char *dir = g_dir_make_tmp("secret-cprpar-XXXXXX", NULL);
    g_autofree char *cpr_path = g_build_filename(dir, "cpr.sock", NULL);
    g_autofree char *mig_path = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *client = tls_psk_args(dir, "client");
    QTestState *qts;
    int b, cpr_fd;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    for (b = 0; b < ARRAY_SIZE(backends); b++) {
        g_autofree char *args =
            g_strdup_printf("-nodefaults -machine pc,memory-backend=m0,"
                            "aux-ram-share=on -m %" PRIu64 "M "
                            "-object %s,id=m0,size=%" PRIu64 "M%s",
                            RAM_SIZE / MiB, backends[b], RAM_SIZE / MiB,
                            client);

        qts = qtest_init(args);
        g_assert(set_parameter(qts, "mode", "cpr-transfer"));
        g_assert(set_parameter(qts, "mode", "normal"));
        g_assert(set_parameter(qts, "mode", "cpr-transfer"));
        set_tls_creds(qts);

        /* Nobody accepts: the source waits for a hang-up that never comes */
        cpr_fd = qtest_socket_server(cpr_path);
        g_assert_cmpint(cpr_fd, >=, 0);
        qtest_qmp_assert_success(qts, "{ 'execute': 'migrate', "
                                 "'arguments': { 'channels': ["
                                 "  { 'channel-type': 'main', 'addr': {"
                                 "    'transport': 'socket', 'type': 'unix',"
                                 "    'path': %s } },"
                                 "  { 'channel-type': 'cpr', 'addr': {"
                                 "    'transport': 'socket', 'type': 'unix',"
                                 "    'path': %s } } ] } }",
                                 mig_path, cpr_path);
        g_assert(!set_parameter(qts, "mode", "normal"));
        g_assert_cmpint(set_parameter(qts, "tls-creds", ""), ==, b);
        qtest_quit(qts);
        close(cpr_fd);
        unlink(cpr_path);
    }
    remove_tls_dir(dir);
}

/*
 * A migrate-incoming that fails (tls-creds naming no object) leaves the
 * incoming state as it was: with tls-creds fixed, it can be retried, and
 * the parameters are not locked.  The retry is the control.
 */
static void test_incoming_retry(void)
{
    QTestState *qts = qtest_initf("-nodefaults -machine pc,"
                                  "memory-backend=m0 -m %" PRIu64 "M "
                                  "-object memory-backend-memfd,id=m0,"
                                  "size=%" PRIu64 "M -incoming defer",
                                  RAM_SIZE / MiB, RAM_SIZE / MiB);

    g_assert(set_parameter(qts, "tls-creds", "nosuch"));
    assert_generic_error(qtest_qmp(qts, "{ 'execute': 'migrate-incoming', "
                                   "'arguments': { 'uri': "
                                   "'tcp:127.0.0.1:0' } }"));
    g_assert(set_parameter(qts, "tls-creds", ""));
    g_assert(set_parameter(qts, "mode", "normal"));
    qtest_qmp_assert_success(qts, "{ 'execute': 'migrate-incoming', "
                             "'arguments': { 'uri': 'tcp:127.0.0.1:0' } }");
    qtest_quit(qts);
}

/* Run openssl with @args in @dir; false (and the test skipped) if it fails */
static bool run_openssl(const char *dir, const char *args)
{
    g_autofree char *cmd = g_strdup_printf("cd %s && openssl %s "
                                           ">/dev/null 2>&1", dir, args);

    if (system(cmd)) {
        g_test_skip("openssl cannot make the test's certificates");
        return false;
    }
    return true;
}

/*
 * verify-peer of loaded credentials cannot change: migration checked it
 * when it took them, and each new channel's session reads it.  Set at
 * creation (the control), it holds.
 */
static void test_tls_verify_peer_fixed(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-x509-XXXXXX", NULL);
    g_autofree char *ca = g_build_filename(dir, "ca-cert.pem", NULL);
    g_autofree char *key = g_build_filename(dir, "ca-key.pem", NULL);
    QTestState *qts;
    QDict *rsp;

    if (!run_openssl(dir, "req -x509 -newkey rsa:2048 -nodes -days 1 "
                     "-keyout ca-key.pem -out ca-cert.pem -subj /CN=ca "
                     "-addext basicConstraints=critical,CA:TRUE "
                     "-addext keyUsage=critical,keyCertSign,cRLSign")) {
        goto out;
    }
    qts = qtest_initf("-nodefaults -object tls-creds-x509,id=tls0,"
                      "endpoint=client,verify-peer=on,dir=%s", dir);
    g_assert(qom_get_bool(qts, "/objects/tls0", "verify-peer"));
    rsp = qom_set_bool(qts, "/objects/tls0", "verify-peer", false);
    g_assert(qdict_haskey(rsp, "error"));
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "class"),
                    ==, "GenericError");
    qobject_unref(rsp);
    g_assert(qom_get_bool(qts, "/objects/tls0", "verify-peer"));
    /* Setting the same value again changes nothing: allowed */
    rsp = qom_set_bool(qts, "/objects/tls0", "verify-peer", true);
    assert_success(rsp);
    /* dir, which a reload reads again, is fixed too */
    assert_generic_error(qtest_qmp(qts, "{ 'execute': 'qom-set', "
                                   "'arguments': { 'path': '/objects/tls0', "
                                   "'property': 'dir', 'value': '/' } }"));
    qtest_qmp_assert_success(qts, "{ 'execute': 'qom-set', "
                             "'arguments': { 'path': '/objects/tls0', "
                             "'property': 'dir', 'value': %s } }", dir);
    qtest_quit(qts);
out:
    unlink(ca);
    unlink(key);
    g_assert_cmpint(rmdir(dir), ==, 0);
}
#endif

/*
 * An unused backend (object-add, no device) counts as much for migration
 * as for pmemsave: a memfd VM with an unused secret backend does not
 * migrate in the clear; without it (the control) it does.
 */
static void test_plaintext_unused_backend(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-unused-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("{ 'uri': 'unix:%s/sock' }",
                                           dir);
    QTestState *qts;
    int unused;

    if (skip_unless_lockable(2 * RAM_SIZE)) {
        return;
    }
    for (unused = 0; unused < 2; unused++) {
        qts = start_vm("memory-backend-memfd", "");
        if (unused) {
            add_secret(qts, "s1", RAM_SIZE);
        }
        g_assert_cmpint(qmp_succeeds(qts, "pmemsave", "{ 'val': 0, "
                                     "'size': 4096, 'filename': "
                                     "'/dev/null' }"), ==, !unused);
        g_assert_cmpint(qmp_succeeds(qts, "migrate", uri), ==, !unused);
        qtest_quit(qts);
    }
    g_assert_cmpint(rmdir(dir), ==, 0);
}

/* What the test's vhost-user back-end answers: enough for vhost-user-blk. */
#define VHOST_USER_GET_FEATURES             1
#define VHOST_USER_GET_PROTOCOL_FEATURES    15
#define VHOST_USER_GET_CONFIG               24
#define VHOST_USER_F_PROTOCOL_FEATURES      30
#define VHOST_USER_PROTOCOL_F_CONFIG        9
#define VHOST_USER_REPLY                    (0x1 | 0x4)

typedef struct VhostUserHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
} VhostUserHeader;

typedef struct VhostUserBackend {
    int conn;
    bool hang_up;               /* at the first request, without a reply */
    GThread *thread;
    uint32_t first_request;     /* 0: QEMU sent nothing */
} VhostUserBackend;

static bool vhost_user_reply(int conn, VhostUserHeader *hdr,
                             const void *payload, uint32_t size)
{
    hdr->flags = VHOST_USER_REPLY;
    hdr->size = size;
    return send(conn, hdr, sizeof(*hdr), MSG_NOSIGNAL) == sizeof(*hdr) &&
           send(conn, payload, size, MSG_NOSIGNAL) == size;
}

/*
 * Answer QEMU's vhost-user requests on one connection until it closes:
 * features with only the config protocol feature, a zero config; other
 * requests need no reply.
 */
static gpointer vhost_user_backend_run(gpointer opaque)
{
    VhostUserBackend *vu = opaque;
    VhostUserHeader hdr;
    uint8_t payload[512];
    uint64_t features;
    bool ok = true;

    while (ok && recv(vu->conn, &hdr, sizeof(hdr), MSG_WAITALL) ==
                 sizeof(hdr)) {
        if (hdr.size > sizeof(payload) ||
            (hdr.size &&
             recv(vu->conn, payload, hdr.size, MSG_WAITALL) != hdr.size)) {
            break;
        }
        if (!vu->first_request) {
            vu->first_request = hdr.request;
        }
        if (vu->hang_up) {
            break;
        }
        switch (hdr.request) {
        case VHOST_USER_GET_FEATURES:
            features = 1ULL << VHOST_USER_F_PROTOCOL_FEATURES | 1ULL << 32;
            ok = vhost_user_reply(vu->conn, &hdr, &features, 8);
            break;
        case VHOST_USER_GET_PROTOCOL_FEATURES:
            features = 1ULL << VHOST_USER_PROTOCOL_F_CONFIG;
            ok = vhost_user_reply(vu->conn, &hdr, &features, 8);
            break;
        case VHOST_USER_GET_CONFIG:
            /* offset, size, flags, then the config space: all zero */
            memset(payload + 12, 0, hdr.size - 12);
            ok = vhost_user_reply(vu->conn, &hdr, payload, hdr.size);
            break;
        }
    }
    close(vu->conn);
    return NULL;
}

/*
 * A VM of @backend, with a chardev connected to a vhost-user back-end
 * that the test plays in a thread, and that may @hang_up at once.
 */
static QTestState *start_vhost_user_vm(const char *backend, const char *dir,
                                       bool hang_up, VhostUserBackend *vu)
{
    g_autofree char *path = g_build_filename(dir, "vu.sock", NULL);
    g_autofree char *chardev = g_strdup_printf(" -chardev socket,id=c0,"
                                               "path=%s", path);
    int listener = qtest_socket_server(path);
    QTestState *qts;

    g_assert_cmpint(listener, >=, 0);
    qts = start_vm(backend, chardev);
    vu->conn = accept(listener, NULL, NULL);
    vu->hang_up = hang_up;
    g_assert_cmpint(vu->conn, >=, 0);
    close(listener);
    unlink(path);
    vu->first_request = 0;
    vu->thread = g_thread_new("vhost-user", vhost_user_backend_run, vu);
    return qts;
}

static void stop_vhost_user_vm(QTestState *qts, VhostUserBackend *vu)
{
    qtest_quit(qts);
    g_thread_join(vu->thread);
}

static const char vhost_user_blk[] =
    "{ 'driver': 'vhost-user-blk-pci', 'id': 'vu0', 'chardev': 'c0' }";

/*
 * A vhost-user back-end maps guest RAM from the file descriptors QEMU
 * sends it.  On secret RAM, a vhost-user-blk device is refused before
 * QEMU says a word to the back-end; with plaintext-export=on (the
 * control) it is realized.  With the device present, secret memory is
 * refused, unless plaintext-export=on; not after the device failed.
 */
static void test_plaintext_vhost_user(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-vu-XXXXXX", NULL);
    const char *backends[] = {
        "memory-backend-secret", "memory-backend-secret,plaintext-export=on"
    };
    VhostUserBackend vu;
    QTestState *qts;
    int allowed;

    if (skip_unless_lockable(2 * RAM_SIZE)) {
        return;
    }
    for (allowed = 0; allowed < 2; allowed++) {
        qts = start_vhost_user_vm(backends[allowed], dir, false, &vu);
        g_assert_cmpint(qmp_succeeds(qts, "device_add", vhost_user_blk), ==,
                        allowed);
        stop_vhost_user_vm(qts, &vu);
        g_assert_cmpuint(vu.first_request, ==,
                         allowed ? VHOST_USER_GET_FEATURES : 0);
    }

    qts = start_vhost_user_vm("memory-backend-memfd", dir, false, &vu);
    g_assert(qmp_succeeds(qts, "device_add", vhost_user_blk));
    g_assert(!qmp_succeeds(qts, "object-add",
                           "{ 'qom-type': 'memory-backend-secret',"
                           " 'id': 's0', 'size': 67108864 }"));
    g_assert_cmpint(count_secret_fds(qtest_pid(qts)), ==, 0);
    g_assert(qmp_succeeds(qts, "object-add",
                          "{ 'qom-type': 'memory-backend-secret',"
                          " 'id': 's1', 'size': 67108864,"
                          " 'plaintext-export': true }"));
    stop_vhost_user_vm(qts, &vu);

    /* A device that failed to realize leaves secret memory possible. */
    qts = start_vhost_user_vm("memory-backend-memfd", dir, true, &vu);
    g_assert(!qmp_succeeds(qts, "device_add", vhost_user_blk));
    g_assert(qmp_succeeds(qts, "object-add",
                          "{ 'qom-type': 'memory-backend-secret',"
                          " 'id': 's0', 'size': 67108864 }"));
    stop_vhost_user_vm(qts, &vu);
    g_assert_cmpint(rmdir(dir), ==, 0);
}

/*
 * What the test's vfio-user server answers: the version; maps and unmaps
 * of guest RAM, which it accepts without looking; and an error for
 * everything else, so that the device never realizes.
 */
#define VFIO_USER_VERSION   1
#define VFIO_USER_DMA_MAP   2
#define VFIO_USER_DMA_UNMAP 3
#define VFIO_USER_REPLY     0x1
#define VFIO_USER_NO_REPLY  0x10
#define VFIO_USER_ERROR     0x20
#define VFIO_USER_TIMEOUT_S 30      /* QEMU silent that long: it hung */

typedef struct VfioUserHeader {
    uint16_t id;
    uint16_t command;
    uint32_t size;
    uint32_t flags;
    uint32_t error_reply;
} VfioUserHeader;

typedef struct VfioUserVersion {
    VfioUserHeader hdr;
    uint16_t major;
    uint16_t minor;
    char capabilities[4];   /* "{}" */
} VfioUserVersion;

typedef struct VfioUserServer {
    int listener;
    GThread *thread;
    bool connected;
    bool version_seen;
    int requests;           /* after the version */
    uint16_t fd_command;    /* the first request that came with an fd */
    char *fd_target;        /* where that fd leads, from /proc/self/fd */
} VfioUserServer;

/*
 * One request of QEMU's, and the file descriptor that came with it (-1
 * for none); false when the connection ended.
 */
static bool vfio_user_receive(int conn, VfioUserHeader *hdr, int *fd)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(*hdr) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control, .msg_controllen = sizeof(control),
    };
    struct cmsghdr *cmsg;
    g_autofree char *payload = NULL;

    *fd = -1;
    if (recvmsg(conn, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC) !=
        sizeof(*hdr)) {
        return false;
    }
    cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg && cmsg->cmsg_level == SOL_SOCKET &&
        cmsg->cmsg_type == SCM_RIGHTS) {
        memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
    }
    if (hdr->size >= sizeof(*hdr) && hdr->size <= MiB) {
        payload = g_malloc(hdr->size - sizeof(*hdr));
        if (recv(conn, payload, hdr->size - sizeof(*hdr), MSG_WAITALL) ==
            hdr->size - sizeof(*hdr)) {
            return true;
        }
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return false;
}

static bool vfio_user_reply(int conn, VfioUserHeader *hdr)
{
    VfioUserVersion version = { .capabilities = "{}" };

    if (hdr->flags & VFIO_USER_NO_REPLY) {
        return true;
    }
    hdr->flags = VFIO_USER_REPLY;
    hdr->error_reply = 0;
    switch (hdr->command) {
    case VFIO_USER_VERSION:
        version.hdr = *hdr;
        version.hdr.size = sizeof(version);
        return send(conn, &version, sizeof(version), MSG_NOSIGNAL) ==
               sizeof(version);
    case VFIO_USER_DMA_MAP:
    case VFIO_USER_DMA_UNMAP:
        break;
    default:
        hdr->flags |= VFIO_USER_ERROR;
        hdr->error_reply = ENOTSUP;
    }
    hdr->size = sizeof(*hdr);
    return send(conn, hdr, sizeof(*hdr), MSG_NOSIGNAL) == sizeof(*hdr);
}

/*
 * Accept QEMU's connection, if it comes, and answer its requests until it
 * closes (or stays silent for VFIO_USER_TIMEOUT_S); count those after the
 * version, and note the first that brings a file descriptor (guest RAM
 * for the server to map).
 */
static gpointer vfio_user_server_run(gpointer opaque)
{
    VfioUserServer *server = opaque;
    struct timeval timeout = { .tv_sec = VFIO_USER_TIMEOUT_S };
    VfioUserHeader hdr;
    int conn, fd;

    conn = accept(server->listener, NULL, NULL);
    if (conn < 0) {
        return NULL;        /* QEMU did not connect */
    }
    server->connected = true;
    g_assert_cmpint(setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                               sizeof(timeout)), ==, 0);
    if (!vfio_user_receive(conn, &hdr, &fd)) {
        close(conn);
        return NULL;
    }
    g_assert_cmpint(hdr.command, ==, VFIO_USER_VERSION);
    g_assert_cmpint(fd, ==, -1);
    server->version_seen = true;
    g_assert(vfio_user_reply(conn, &hdr));

    while (vfio_user_receive(conn, &hdr, &fd)) {
        server->requests++;
        if (fd >= 0) {
            g_autofree char *link = g_strdup_printf("/proc/self/fd/%d", fd);

            if (!server->fd_target) {
                server->fd_command = hdr.command;
                server->fd_target = g_file_read_link(link, NULL);
            }
            close(fd);
        }
        if (!vfio_user_reply(conn, &hdr)) {
            break;
        }
    }
    close(conn);
    return NULL;
}

static const char vfio_user_pci[] =
    "{ 'driver': 'vfio-user-pci', 'id': 'vfu0',"
    " 'socket': { 'type': 'unix', 'path': '%s' } }";

/*
 * device_add of a vfio-user-pci device against the server that the test
 * plays; whether QEMU realized it.
 */
static bool add_vfio_user_device(QTestState *qts, const char *dir,
                                 VfioUserServer *server)
{
    g_autofree char *path = g_build_filename(dir, "vfu.sock", NULL);
    g_autofree char *args = NULL;
    bool ok;

    memset(server, 0, sizeof(*server));
    server->listener = qtest_socket_server(path);
    g_assert_cmpint(server->listener, >=, 0);
    server->thread = g_thread_new("vfio-user", vfio_user_server_run, server);
    args = g_strdup_printf(vfio_user_pci, path);
    ok = qmp_succeeds(qts, "device_add", args);
    shutdown(server->listener, SHUT_RDWR);  /* ends a pending accept() */
    g_thread_join(server->thread);
    close(server->listener);
    unlink(path);
    return ok;
}

/*
 * A vfio-user server maps guest RAM from the file descriptors QEMU sends
 * it (VFIO_USER_DMA_MAP).  On secret RAM, a vfio-user-pci device is
 * refused before QEMU connects to the server.  With plaintext-export=on
 * (the control) QEMU connects, and maps guest RAM with the secret
 * memory's file descriptor; the device itself does not realize, as the
 * server refuses to describe it.  On memfd RAM, devices that failed to
 * realize (no server; the test's server) leave secret memory possible.
 */
static void test_plaintext_vfio_user(void)
{
    g_autofree char *dir = g_dir_make_tmp("secret-vfu-XXXXXX", NULL);
    g_autofree char *missing = g_build_filename(dir, "missing.sock", NULL);
    g_autofree char *no_server = g_strdup_printf(vfio_user_pci, missing);
    VfioUserServer server;
    QTestState *qts;

    if (!qtest_has_device("vfio-user-pci")) {
        g_test_skip("QEMU built without vfio-user-pci");
        goto out;
    }
    if (skip_unless_lockable(RAM_SIZE)) {
        goto out;
    }
    qts = start_vm("memory-backend-secret", "");
    g_assert(!add_vfio_user_device(qts, dir, &server));
    g_assert_false(server.connected);
    qtest_quit(qts);

    qts = start_vm("memory-backend-secret,plaintext-export=on", "");
    g_assert(!add_vfio_user_device(qts, dir, &server));
    g_assert_true(server.version_seen);
    g_assert_cmpint(server.fd_command, ==, VFIO_USER_DMA_MAP);
    g_assert_nonnull(server.fd_target);
    g_assert(g_str_has_prefix(server.fd_target, SECRET_MAP));
    g_free(server.fd_target);
    qtest_quit(qts);

    qts = start_vm("memory-backend-memfd", "");
    g_assert(!qmp_succeeds(qts, "device_add", no_server));
    g_assert(!add_vfio_user_device(qts, dir, &server));
    g_assert_nonnull(server.fd_target);
    g_assert(g_str_has_prefix(server.fd_target, MEMFD_MAP));
    g_free(server.fd_target);
    g_assert(qmp_succeeds(qts, "object-add",
                          "{ 'qom-type': 'memory-backend-secret',"
                          " 'id': 's0', 'size': 67108864 }"));
    qtest_quit(qts);
out:
    g_assert_cmpint(rmdir(dir), ==, 0);
}

/*
 * cpr-exec: QEMU execs the new QEMU, which inherits the secret memory's
 * file descriptor and reads back what the old one wrote; the state file
 * holds no RAM.  With @add_late, a cpr=on backend object-added after
 * migrate wrote the CPR state (while the migration waits before
 * switchover) is not in that state: its fd must not survive the exec.
 */
static void cpr_exec(bool add_late)
{
    g_autofree char *dir = g_dir_make_tmp("secret-cprexec-XXXXXX", NULL);
    g_autofree char *state = g_build_filename(dir, "state", NULL);
    g_autofree char *vm_args = NULL;
    g_autofree char *qemu_args = NULL;
    g_autofree char *exec_args = NULL;
    g_autofree uint64_t *words = g_new(uint64_t, RAM_SIZE / (4 * MiB));
    g_auto(GStrv) argv = NULL;
    QTestState *src, *dst;
    QDict *rsp, *params = qdict_new();
    QList *cmd = qlist_new();
    const char *status;
    int i;

    if (skip_unless_lockable(RAM_SIZE)) {
        return;
    }
    vm_args = g_strdup_printf("-nodefaults -machine pc,memory-backend=m0,"
                              "aux-ram-share=on -m %" PRIu64 "M "
                              "-object memory-backend-secret,id=m0,"
                              "size=%" PRIu64 "M,cpr=on",
                              RAM_SIZE / MiB, RAM_SIZE / MiB);
    src = qtest_init(vm_args);
    write_words(src, words);

    qemu_args = qtest_qemu_args(vm_args);
    exec_args = g_strconcat(qtest_qemu_binary(NULL), " -incoming defer ",
                            qemu_args, NULL);
    argv = g_strsplit(exec_args, " ", -1);
    for (i = 0; argv[i]; i++) {
        if (*argv[i]) {
            qlist_append_str(cmd, argv[i]);
        }
    }
    qdict_put_str(params, "mode", "cpr-exec");
    qdict_put(params, "cpr-exec-command", cmd);
    qtest_qmp_assert_success(src, "{ 'execute': 'migrate-set-parameters', "
                             "'arguments': %p }", params);
    qtest_qmp_assert_success(src, "{ 'execute': 'migrate-set-capabilities', "
                             "'arguments': { 'capabilities': [ "
                             "{ 'capability': 'events', 'state': true }, "
                             "{ 'capability': 'pause-before-switchover', "
                             "'state': %i } ] } }", add_late);
    qtest_qmp_assert_success(src, "{ 'execute': 'migrate', 'arguments': "
                             "{ 'channels': [ { 'channel-type': 'main', "
                             "'addr': { 'transport': 'file', "
                             "'filename': %s, 'offset': 0 } } ] } }", state);
    do {
        rsp = qtest_qmp_eventwait_ref(src, "MIGRATION");
        status = qdict_get_str(qdict_get_qdict(rsp, "data"), "status");
        g_assert_cmpstr(status, !=, "failed");
        if (!strcmp(status, "pre-switchover")) {
            QDict *props = sized(4 * MiB);

            qdict_put_str(props, "id", "m1");
            qdict_put_bool(props, "cpr", true);
            qtest_qmp_assert_success(src, "{ 'execute': 'object-add', "
                                     "'arguments': %p }", props);
            g_assert_cmpint(count_secret_fds(qtest_pid(src)), ==, 2);
            qtest_qmp_assert_success(src, "{ 'execute': "
                                     "'migrate-continue', 'arguments': "
                                     "{ 'state': 'pre-switchover' } }");
        }
        i = strcmp(status, "completed");
        qobject_unref(rsp);
    } while (i);

    dst = qtest_init_after_exec(src);
    /* The old QEMU's m0 only: m1 was not in the CPR state */
    g_assert_cmpint(count_secret_fds(qtest_pid(dst)), ==, 1);
    qtest_qmp_assert_success(dst, "{ 'execute': 'migrate-incoming', "
                             "'arguments': { 'channels': [ "
                             "{ 'channel-type': 'main', 'addr': "
                             "{ 'transport': 'file', 'filename': %s, "
                             "'offset': 0 } } ] } }", state);
    g_free(wait_migration(dst));
    g_assert_cmpint(count_secret_fds(qtest_pid(dst)), ==, 1);
    check_words(dst, words);
    qtest_quit(dst);
    qtest_quit(src);
    unlink(state);
    rmdir(dir);
}

static void test_cpr_exec(void)
{
    cpr_exec(false);
}

static void test_cpr_exec_added_late(void)
{
    cpr_exec(true);
}

/* The pc machine's PIIX IDE controller: task file and bus-master DMA. */
#define IDE_DEVFN           QPCI_DEVFN(1, 1)
#define IDE_BASE            0x1f0
#define IDE_SECTOR          512
enum {
    IDE_NSECTORS = 2, IDE_LBA_LOW, IDE_LBA_MID, IDE_LBA_HIGH, IDE_DEVICE,
    IDE_COMMAND, IDE_STATUS = IDE_COMMAND,
};
#define IDE_STATUS_ERR      0x01
#define IDE_DEVICE_LBA      0x40
#define IDE_CMD_READ_DMA    0xc8
#define IDE_CMD_WRITE_DMA   0xca
enum { BM_CMD = 0, BM_STATUS = 2, BM_PRDT = 4 };
#define BM_CMD_START        0x1
#define BM_CMD_TO_MEMORY    0x8
#define BM_STATUS_ACTIVE    0x1
#define BM_STATUS_ERROR     0x2
#define BM_STATUS_INTR      0x4
#define PRD_EOT             0x80000000u

#define DISK_SIZE           (1 * MiB)
#define PRD_GPA             0x10000
#define IO_GPA              (2 * MiB)
#define IO_SECTORS          16

/* The byte every sector of the test disk is filled with. */
static uint8_t disk_byte(uint64_t sector)
{
    return sector * 7 + 1;
}

static char *make_disk(const char *dir)
{
    g_autofree uint8_t *data = g_malloc(DISK_SIZE);
    char *path = g_build_filename(dir, "disk.raw", NULL);
    uint64_t sector;

    for (sector = 0; sector < DISK_SIZE / IDE_SECTOR; sector++) {
        memset(data + sector * IDE_SECTOR, disk_byte(sector), IDE_SECTOR);
    }
    g_assert(g_file_set_contents(path, (char *)data, DISK_SIZE, NULL));
    return path;
}

/*
 * One READ DMA or WRITE DMA of IO_SECTORS sectors at @sector, to or from
 * guest RAM at IO_GPA; returns whether the disk and the DMA engine
 * reported success.
 */
static bool ide_dma(QTestState *qts, uint8_t cmd, uint64_t sector)
{
    QPCIBus *bus = qpci_new_pc(qts, NULL);
    QPCIDevice *dev = qpci_device_find(bus, IDE_DEVFN);
    uint32_t prd[2] = { cpu_to_le32(IO_GPA),
                        cpu_to_le32(IO_SECTORS * IDE_SECTOR | PRD_EOT) };
    QPCIBar bm, ide;
    uint8_t bm_status, ide_status;
    int polls;

    g_assert(dev);
    qpci_device_enable(dev);
    bm = qpci_iomap(dev, 4, NULL);
    ide = qpci_legacy_iomap(dev, IDE_BASE);

    qpci_io_writeb(dev, ide, IDE_DEVICE, IDE_DEVICE_LBA);
    qpci_io_writeb(dev, bm, BM_CMD, 0);
    qpci_io_writeb(dev, bm, BM_STATUS, BM_STATUS_INTR | BM_STATUS_ERROR);
    qtest_memwrite(qts, PRD_GPA, prd, sizeof(prd));
    qpci_io_writel(dev, bm, BM_PRDT, PRD_GPA);

    qpci_io_writeb(dev, ide, IDE_NSECTORS, IO_SECTORS);
    qpci_io_writeb(dev, ide, IDE_LBA_LOW, sector & 0xff);
    qpci_io_writeb(dev, ide, IDE_LBA_MID, (sector >> 8) & 0xff);
    qpci_io_writeb(dev, ide, IDE_LBA_HIGH, (sector >> 16) & 0xff);
    qpci_io_writeb(dev, ide, IDE_COMMAND, cmd);
    qpci_io_writeb(dev, bm, BM_CMD, BM_CMD_START |
                   (cmd == IDE_CMD_READ_DMA ? BM_CMD_TO_MEMORY : 0));
    for (polls = 0; polls < 1000000; polls++) {
        bm_status = qpci_io_readb(dev, bm, BM_STATUS);
        if ((bm_status & (BM_STATUS_ACTIVE | BM_STATUS_INTR)) !=
            BM_STATUS_ACTIVE) {
            break;
        }
    }
    g_assert_cmpint(polls, <, 1000000);
    qpci_io_writeb(dev, bm, BM_CMD, 0);
    ide_status = qpci_io_readb(dev, ide, IDE_STATUS);
    g_test_message("%s at sector %" PRIu64 ": IDE status 0x%02x, "
                   "bus-master status 0x%02x",
                   cmd == IDE_CMD_READ_DMA ? "READ DMA" : "WRITE DMA",
                   sector, ide_status, bm_status);

    g_free(dev);
    qpci_free_pc(bus);
    return !(ide_status & IDE_STATUS_ERR) && !(bm_status & BM_STATUS_ERROR);
}

/*
 * The test means something only where O_DIRECT reads really go to the
 * buffer by reference: on tmpfs, for one, the kernel copies, and secret
 * memory works without a bounce.  Check that an O_DIRECT read into secret
 * memory fails with EFAULT in @dir, and skip otherwise.
 */
static bool skip_unless_direct_io_faults(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, "probe", NULL);
    g_autofree char *reason = NULL;
    int fd, secret_fd, err = 0;
    void *buf = MAP_FAILED;
    ssize_t n = -1;

    g_assert(g_file_set_contents(path, "probe", -1, NULL));
    g_assert(truncate(path, IDE_SECTOR * 8) == 0);
    fd = open(path, O_RDONLY | O_DIRECT);
    secret_fd = syscall(SYS_memfd_secret, 0);
    g_assert_cmpint(secret_fd, >=, 0);
    g_assert_cmpint(ftruncate(secret_fd, 4096), ==, 0);
    buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, secret_fd, 0);
    g_assert(buf != MAP_FAILED);
    if (fd >= 0) {
        n = pread(fd, buf, 4096, 0);
        err = n < 0 ? errno : 0;
        close(fd);
    }
    munmap(buf, 4096);
    close(secret_fd);
    unlink(path);
    if (fd >= 0 && n < 0 && err == EFAULT) {
        return false;
    }
    reason = g_strdup_printf("an O_DIRECT read into secret memory in %s "
                             "%s, not EFAULT: this filesystem cannot show "
                             "whether QEMU bounces", dir,
                             fd < 0 ? "cannot be opened" :
                             n < 0 ? strerror(err) : "succeeds");
    g_test_skip(reason);
    return true;
}

/*
 * Disk I/O with cache=none (O_DIRECT) into and out of guest RAM, through
 * the PIIX IDE controller, for the aio engine in @data.  On secret RAM the
 * kernel cannot reach the buffers, so the block layer must bounce them;
 * memfd RAM, where the kernel reads them in place, is the control.
 */
static void check_direct_io(const char *backend, const char *aio)
{
    g_autofree char *dir = g_dir_make_tmp("secret-blk-XXXXXX", NULL);
    g_autofree uint8_t *buf = g_malloc(IO_SECTORS * IDE_SECTOR);
    g_autofree char *written = NULL;
    g_autofree char *disk = NULL;
    QTestState *qts;
    int i;

    if (skip_unless_direct_io_faults(dir)) {
        rmdir(dir);
        return;
    }
    disk = make_disk(dir);

    qts = qtest_initf("-machine pc,memory-backend=m0 -m %" PRIu64 "M "
                      "-object %s,id=m0,size=%" PRIu64 "M "
                      "-drive file=%s,if=ide,format=raw,cache=none,aio=%s",
                      RAM_SIZE / MiB, backend, RAM_SIZE / MiB, disk, aio);

    g_assert(ide_dma(qts, IDE_CMD_READ_DMA, 8));
    qtest_memread(qts, IO_GPA, buf, IO_SECTORS * IDE_SECTOR);
    for (i = 0; i < IO_SECTORS * IDE_SECTOR; i++) {
        g_assert_cmpuint(buf[i], ==, disk_byte(8 + i / IDE_SECTOR));
    }

    memset(buf, 0x5e, IO_SECTORS * IDE_SECTOR);
    qtest_memwrite(qts, IO_GPA, buf, IO_SECTORS * IDE_SECTOR);
    g_assert(ide_dma(qts, IDE_CMD_WRITE_DMA, 64));
    qtest_quit(qts);

    g_assert(g_file_get_contents(disk, &written, NULL, NULL));
    g_assert(!memcmp(written + 64 * IDE_SECTOR, buf,
                     IO_SECTORS * IDE_SECTOR));
    g_assert_cmpuint((uint8_t)written[80 * IDE_SECTOR], ==, disk_byte(80));
    unlink(disk);
    rmdir(dir);
}

static bool skip_unless_aio(const char *aio)
{
    g_autofree char *disabled = NULL;

#ifndef CONFIG_LINUX_AIO
    if (!strcmp(aio, "native")) {
        g_test_skip("QEMU is built without linux-aio (--enable-linux-aio)");
        return true;
    }
#endif
#ifndef CONFIG_LINUX_IO_URING
    if (!strcmp(aio, "io_uring")) {
        g_test_skip("QEMU is built without io_uring "
                    "(--enable-linux-io-uring)");
        return true;
    }
#endif
    if (strcmp(aio, "io_uring") ||
        !g_file_get_contents("/proc/sys/kernel/io_uring_disabled", &disabled,
                             NULL, NULL) || atoi(disabled) == 0) {
        return false;
    }
    g_test_skip("io_uring is disabled (kernel.io_uring_disabled)");
    return true;
}

static void test_direct_io_secret(const void *aio)
{
    if (skip_unless_lockable(RAM_SIZE) || skip_unless_aio(aio)) {
        return;
    }
    check_direct_io("memory-backend-secret", aio);
}

static void test_direct_io_memfd(const void *aio)
{
    if (skip_unless_aio(aio)) {
        return;
    }
    check_direct_io("memory-backend-memfd", aio);
}

static void add_tests(void)
{
    static const char *const aio_engines[] = {
        "threads", "native", "io_uring",
    };
    int i;

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
#ifdef CONFIG_NUMA
    qtest_add_func("/memory-backend-secret/host-nodes/placement",
                   test_host_nodes_placement);
    qtest_add_func("/memory-backend-secret/host-nodes/missing-node",
                   test_host_nodes_missing);
    qtest_add_func("/memory-backend-secret/host-nodes/needs-prealloc",
                   test_host_nodes_need_prealloc);
#endif
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
    qtest_add_func("/memory-backend-secret/errors/live-properties",
                   test_live_properties);
    qtest_add_func("/memory-backend-secret/refused/migration",
                   test_migration_refused);
    qtest_add_func("/memory-backend-secret/refused/postcopy-destination",
                   test_postcopy_destination_refused);
    qtest_add_func("/memory-backend-secret/refused/background-snapshot",
                   test_background_snapshot_refused);
    qtest_add_func("/memory-backend-secret/refused/virtio-mem",
                   test_virtio_mem_refused);
    qtest_add_func("/memory-backend-secret/cpr-transfer", test_cpr_transfer);
    qtest_add_func("/memory-backend-secret/fd/cpr-refused", test_cpr_refused);
    qtest_add_func("/memory-backend-secret/fd/cpr-refused-added",
                   test_cpr_refused_added);
    qtest_add_func("/memory-backend-secret/errors/cpr-fixed",
                   test_cpr_property_fixed);
    qtest_add_func("/memory-backend-secret/fd/cpr-bad-plaintext-name",
                   test_cpr_bad_plaintext_name);
    qtest_add_func("/memory-backend-secret/fd/cpr-plaintext-from-old",
                   test_cpr_plaintext_from_old);
    qtest_add_func("/memory-backend-secret/fd/cpr-type-mismatch",
                   test_cpr_type_mismatch);
    qtest_add_func("/memory-backend-secret/fd/cpr-plaintext-export",
                   test_cpr_plaintext_export);
    qtest_add_func("/memory-backend-secret/fd/file-backend",
                   test_fd_file_backend);
    qtest_add_func("/memory-backend-secret/cpr-exec", test_cpr_exec);
    qtest_add_func("/memory-backend-secret/fd/cpr-exec-added-late",
                   test_cpr_exec_added_late);
    qtest_add_func("/memory-backend-secret/plaintext/monitor",
                   test_plaintext_monitor);
    qtest_add_func("/memory-backend-secret/plaintext/debug-reads",
                   test_plaintext_debug_reads);
    qtest_add_func("/memory-backend-secret/plaintext/migration",
                   test_plaintext_migration);
    qtest_add_func("/memory-backend-secret/plaintext/snapshot",
                   test_plaintext_snapshot);
#ifdef CONFIG_GNUTLS
    qtest_add_func("/memory-backend-secret/plaintext/tls-migration",
                   test_tls_migration);
    qtest_add_func("/memory-backend-secret/plaintext/tls-refused",
                   test_tls_refused);
    qtest_add_func("/memory-backend-secret/plaintext/incoming-retry",
                   test_incoming_retry);
    qtest_add_func("/memory-backend-secret/plaintext/cpr-parameters",
                   test_plaintext_cpr_parameters);
    qtest_add_func("/memory-backend-secret/plaintext/tls-verify-peer-fixed",
                   test_tls_verify_peer_fixed);
    qtest_add_func("/memory-backend-secret/plaintext/cpr-reboot-tls",
                   test_cpr_reboot_tls);
#endif
    qtest_add_func("/memory-backend-secret/plaintext/unused-backend",
                   test_plaintext_unused_backend);
    qtest_add_func("/memory-backend-secret/plaintext/vhost-user",
                   test_plaintext_vhost_user);
    qtest_add_func("/memory-backend-secret/plaintext/vfio-user",
                   test_plaintext_vfio_user);
    for (i = 0; i < ARRAY_SIZE(aio_engines); i++) {
        g_autofree char *secret = g_strdup_printf(
            "/memory-backend-secret/direct-io/%s/secret", aio_engines[i]);
        g_autofree char *memfd = g_strdup_printf(
            "/memory-backend-secret/direct-io/%s/memfd-control",
            aio_engines[i]);

        qtest_add_data_func(secret, aio_engines[i], test_direct_io_secret);
        qtest_add_data_func(memfd, aio_engines[i], test_direct_io_memfd);
    }
}

#endif /* SYS_memfd_secret */

static void skip_no_secretmem(void)
{
    g_test_skip("host kernel has no memfd_secret(2): enable CONFIG_SECRETMEM "
                "(and secretmem.enable=1 before Linux 6.5)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

#ifdef SYS_memfd_secret
    if (host_has_memfd_secret()) {
        add_tests();
        return g_test_run();
    }
#endif
    qtest_add_func("/memory-backend-secret/skipped", skip_no_secretmem);
    return g_test_run();
}
