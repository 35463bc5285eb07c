/*
 * QEMU host secret memory backend (memfd_secret(2))
 *
 * Guest RAM that is mapped only in QEMU's own page tables: the host kernel
 * removes it from its direct map, refuses to hand it to other processes
 * (/proc/PID/mem, ptrace, process_vm_readv), never swaps it and leaves it
 * out of core dumps.
 *
 * Copyright (C) 2026 Secret VM Developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "system/hostmem.h"
#include "system/kvm.h"
#include "migration/cpr.h"
#include "qom/object_interfaces.h"
#include "qemu/cutils.h"
#include "qapi/error.h"
#include "qom/object.h"
#include <sys/syscall.h>
#include <sys/resource.h>
#include <linux/secretmem.h>
#ifdef CONFIG_NUMA
#include <numaif.h>
#include <numa.h>
#endif

#define TYPE_MEMORY_BACKEND_SECRET "memory-backend-secret"

OBJECT_DECLARE_TYPE(HostMemoryBackendSecret, HostMemoryBackendSecretClass,
                    MEMORY_BACKEND_SECRET)

struct HostMemoryBackendSecret {
    HostMemoryBackend parent_obj;

    bool plaintext_export;
    bool cpr;
};

struct HostMemoryBackendSecretClass {
    HostMemoryBackendClass parent_class;

    void (*parent_complete)(UserCreatable *uc, Error **errp);
};

static int secret_backend_memfd_secret(unsigned int flags)
{
#ifdef SYS_memfd_secret
    return syscall(SYS_memfd_secret, flags | O_CLOEXEC);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static int secret_backend_create_fd(Error **errp)
{
    ERRP_GUARD();
    unsigned int flags = 0;
    int fd;

    if (kvm_enabled()) {
        if (!kvm_has_secretmem()) {
            error_setg(errp, "memory-backend-secret: KVM cannot map secret "
                       "memory into guests");
            error_append_hint(errp, "The host kernel lacks "
                              "KVM_CAP_SECRETMEM; boot a kernel with the "
                              "secretmem KVM series, or use accel=tcg.\n");
            return -1;
        }
        flags = SECRETMEM_ALLOW_KVM;
    }
    fd = secret_backend_memfd_secret(flags);
    if (fd >= 0) {
        return fd;
    }
    if (errno == EINVAL && flags) {
        error_setg(errp, "memory-backend-secret: memfd_secret() refuses "
                   "SECRETMEM_ALLOW_KVM");
        error_append_hint(errp, "KVM reports KVM_CAP_SECRETMEM, so the host "
                          "kernel carries only part of the secretmem KVM "
                          "series; boot a kernel with all of it, or use "
                          "accel=tcg.\n");
    } else {
        error_setg_errno(errp, errno,
                         "memory-backend-secret: memfd_secret() failed");
    }
    return -1;
}

/*
 * secretmem charges the whole mapping to RLIMIT_MEMLOCK at mmap() time and
 * fails with EAGAIN past it.  Probe with a throw-away mapping so the user
 * gets the limit and the ways to raise it instead of a bare mmap error.
 */
static bool secret_backend_check_memlock(int fd, uint64_t size, Error **errp)
{
    ERRP_GUARD();
    g_autofree char *size_str = size_to_str(size);
    g_autofree char *limit_str = NULL;
    struct rlimit rl;
    void *ptr;

    ptr = mmap(NULL, size, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (ptr != MAP_FAILED) {
        munmap(ptr, size);
        return true;
    }
    if (errno != EAGAIN || getrlimit(RLIMIT_MEMLOCK, &rl)) {
        error_setg_errno(errp, errno, "memory-backend-secret: cannot map "
                         "%s of secret memory", size_str);
        return false;
    }
    limit_str = size_to_str(rl.rlim_cur);
    error_setg(errp, "memory-backend-secret: %s exceeds RLIMIT_MEMLOCK (%s)",
               size_str, limit_str);
    error_append_hint(errp, "Secret memory is locked memory; the limit "
                      "includes what this process already locked.  Raise "
                      "it with ulimit -l, systemd's LimitMEMLOCK= or "
                      "libvirt's <hard_limit>.\n");
    return false;
}

static bool secret_backend_check_size(uint64_t size, Error **errp)
{
    ERRP_GUARD();
    uint64_t pagesize = qemu_real_host_page_size();
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * pagesize;
    g_autofree char *size_str = size_to_str(size);

    if (!size) {
        error_setg(errp, "memory-backend-secret: size must not be 0");
        return false;
    }
    if (!QEMU_IS_ALIGNED(size, pagesize)) {
        error_setg(errp, "memory-backend-secret: size %" PRIu64 " is not a "
                   "multiple of the host page size (%" PRIu64 ")", size,
                   pagesize);
        error_append_hint(errp, "Secret memory is mapped in host pages.\n");
        return false;
    }
    if (size > ram) {
        g_autofree char *ram_str = size_to_str(ram);

        error_setg(errp, "memory-backend-secret: size %s exceeds the host's "
                   "RAM (%s)", size_str, ram_str);
        error_append_hint(errp, "Secret memory is locked: it cannot be "
                          "swapped or overcommitted.\n");
        return false;
    }
    return true;
}

/* Refuse @property=@value, which secret memory cannot honour, with @why. */
static bool secret_backend_refuse(const char *property, const char *value,
                                  const char *why, Error **errp)
{
    ERRP_GUARD();
    error_setg(errp, "memory-backend-secret: %s=%s is not supported",
               property, value);
    error_append_hint(errp, "%s; drop %s=%s.\n", why, property, value);
    return false;
}

static bool secret_backend_check_options(HostMemoryBackend *backend,
                                         Error **errp)
{
    ERRP_GUARD();
    if (!backend->share) {
        return secret_backend_refuse("share", "off", "Secret memory can "
                                     "only be mapped shared", errp);
    }
    if (backend->merge) {
        return secret_backend_refuse("merge", "on", "KSM cannot reach "
                                     "secret memory", errp);
    }
    if (backend->dump) {
        return secret_backend_refuse("dump", "on", "Secret memory never "
                                     "appears in core dumps", errp);
    }
    if (!backend->reserve) {
        return secret_backend_refuse("reserve", "off", "Secret memory is "
                                     "always locked", errp);
    }
    if (backend->guest_memfd) {
        error_setg(errp, "memory-backend-secret: confidential guests are "
                   "not supported");
        error_append_hint(errp, "This machine keeps private guest memory in "
                          "KVM's guest_memfd, which secret memory cannot "
                          "provide; use memory-backend-memfd.\n");
        return false;
    }
    return secret_backend_check_size(backend->size, errp);
}

/*
 * After cpr-transfer or cpr-exec the memory comes from the old QEMU: it
 * must be secret memory, and a guest's memory does not become exportable
 * in the clear while the guest lives.
 */
static bool secret_backend_check_inherited(HostMemoryBackend *backend,
                                           const char *name, int fd,
                                           Error **errp)
{
    ERRP_GUARD();
    if (!qemu_ram_fd_is_secretmem(fd)) {
        error_setg(errp, "memory-backend-secret '%s' cannot take over the "
                   "old QEMU's memory: it is not secret memory", name);
        error_append_hint(errp, "Another memory backend type "
                          "(memory-backend-memfd, -file, -shm or -ram) "
                          "created it in the old QEMU; create the same "
                          "type with the same id in the new QEMU.\n");
        return false;
    }
    /* Only the old QEMU's opt-in, carried in the CPR state, allows it */
    if (MEMORY_BACKEND_SECRET(backend)->plaintext_export &&
        !cpr_find_plaintext(name)) {
        error_setg(errp, "memory-backend-secret '%s' cannot allow "
                   "plaintext copies of memory that the old QEMU kept "
                   "confidential", name);
        error_append_hint(errp, "The old QEMU's backend had "
                          "plaintext-export=off, or the old QEMU did not "
                          "say; create this one with plaintext-export=off."
                          "\n");
        return false;
    }
    return true;
}

static bool
secret_backend_memory_alloc(HostMemoryBackend *backend, Error **errp)
{
    HostMemoryBackendSecret *secret = MEMORY_BACKEND_SECRET(backend);
    g_autofree char *name = host_memory_backend_get_name(backend);
    uint32_t ram_flags = RAM_SHARED | RAM_UNPINNABLE;
    int fd;

    if (!secret_backend_check_options(backend, errp)) {
        return false;
    }

    /* With cpr-transfer and cpr-exec, the new QEMU inherits the memory. */
    fd = cpr_find_fd(name, 0);
    if (fd >= 0 && !secret_backend_check_inherited(backend, name, fd, errp)) {
        goto err_delete;
    }
    if (fd < 0) {
        fd = secret_backend_create_fd(errp);
        if (fd < 0) {
            return false;
        }
        if (ftruncate(fd, backend->size)) {
            error_setg_errno(errp, errno, "memory-backend-secret: cannot "
                             "size secret memory");
            goto err_close;
        }
    }
    /*
     * CPR hands the fds in its state to another process: the one at the
     * other end of the CPR channel, or cpr-exec-command.  Confidential
     * memory's fd goes only if the user allowed it (cpr=on), and does not
     * go on from a new QEMU that does not allow it.
     */
    if (secret->cpr || secret->plaintext_export) {
        cpr_resave_fd(name, 0, fd);
        ram_flags |= RAM_CPR_FD_EXPORT;
    } else {
        cpr_delete_fd(name, 0);
    }
    if (!secret_backend_check_memlock(fd, backend->size, errp)) {
        goto err_delete;
    }

    if (secret->plaintext_export) {
        ram_flags |= RAM_PLAINTEXT_EXPORT;
    } else {
        ram_flags |= RAM_CONFIDENTIAL;
    }
    backend->aligned = true;
    if (!memory_region_init_ram_from_fd(&backend->mr, OBJECT(backend), name,
                                        backend->size, ram_flags, fd, 0,
                                        errp)) {
        goto err_delete;
    }
    if (secret->plaintext_export) {
        cpr_save_plaintext(name);
    } else {
        cpr_delete_plaintext(name);
    }
    return true;

err_delete:
    cpr_delete_plaintext(name);
    cpr_delete_fd(name, 0);
err_close:
    close(fd);
    return false;
}

/* The calling thread's NUMA policy, saved while preallocation is bound. */
typedef struct SecretTaskPolicy {
    int mode;
    DECLARE_BITMAP(nodes, MAX_NODES + 1);
} SecretTaskPolicy;

#ifdef CONFIG_NUMA
/*
 * secretmem allocates a page with the memory policy of the task that
 * faults it in, not with the VMA policy that mbind() sets.  Bind the
 * preallocating threads instead: they inherit the policy of the thread that
 * creates them, so set it on this thread around the parent's complete().
 */
static bool secret_backend_bind_task(HostMemoryBackend *backend,
                                     SecretTaskPolicy *saved, Error **errp)
{
    ERRP_GUARD();
    unsigned long lastbit = find_last_bit(backend->host_nodes, MAX_NODES);
    unsigned long maxnode = (lastbit + 1) % (MAX_NODES + 1);
    int mode = backend->policy;

    saved->mode = -1;
    if (!maxnode || mode == MPOL_DEFAULT) {
        /* Nothing to bind; hostmem.c refuses host-nodes without a policy */
        return true;
    }
    if (!backend->prealloc) {
        error_setg(errp, "memory-backend-secret: host-nodes needs "
                   "prealloc=on");
        error_append_hint(errp, "Secret memory is placed by the thread that "
                          "first touches it, not by mbind(); add "
                          "prealloc=on.\n");
        return false;
    }
    if (backend->prealloc_context) {
        error_setg(errp, "memory-backend-secret: host-nodes cannot be "
                   "combined with prealloc-context");
        error_append_hint(errp, "The context's threads do not inherit the "
                          "node policy; drop one of them.\n");
        return false;
    }
#ifdef HAVE_NUMA_HAS_PREFERRED_MANY
    if (mode == MPOL_PREFERRED && numa_has_preferred_many() > 0) {
        /* As hostmem.c: MPOL_PREFERRED alone picks the first node. */
        mode = MPOL_PREFERRED_MANY;
    }
#endif
    if (get_mempolicy(&saved->mode, saved->nodes, MAX_NODES + 1, NULL, 0)) {
        error_setg_errno(errp, errno, "memory-backend-secret: cannot read "
                         "the thread's NUMA policy");
        return false;
    }
    if (set_mempolicy(mode, backend->host_nodes, maxnode + 1)) {
        error_setg_errno(errp, errno, "memory-backend-secret: cannot bind "
                         "preallocation to host-nodes");
        saved->mode = -1;
        return false;
    }
    return true;
}

static void secret_backend_restore_task(SecretTaskPolicy *saved)
{
    if (saved->mode >= 0) {
        set_mempolicy(saved->mode, saved->nodes, MAX_NODES + 1);
    }
}
#else
static bool secret_backend_bind_task(HostMemoryBackend *backend,
                                     SecretTaskPolicy *saved, Error **errp)
{
    saved->mode = -1;
    return true;
}

static void secret_backend_restore_task(SecretTaskPolicy *saved)
{
}
#endif

static void secret_backend_complete(UserCreatable *uc, Error **errp)
{
    HostMemoryBackendSecretClass *sc = MEMORY_BACKEND_SECRET_GET_CLASS(uc);
    HostMemoryBackend *backend = MEMORY_BACKEND(uc);
    SecretTaskPolicy saved;

    if (!secret_backend_bind_task(backend, &saved, errp)) {
        return;
    }
    sc->parent_complete(uc, errp);
    secret_backend_restore_task(&saved);
}

static bool secret_backend_get_plaintext_export(Object *obj, Error **errp)
{
    return MEMORY_BACKEND_SECRET(obj)->plaintext_export;
}

static void secret_backend_set_plaintext_export(Object *obj, bool value,
                                                Error **errp)
{
    if (host_memory_backend_mr_inited(MEMORY_BACKEND(obj))) {
        error_setg(errp, "cannot change property value");
        return;
    }
    MEMORY_BACKEND_SECRET(obj)->plaintext_export = value;
}

static bool secret_backend_get_cpr(Object *obj, Error **errp)
{
    return MEMORY_BACKEND_SECRET(obj)->cpr;
}

static void secret_backend_set_cpr(Object *obj, bool value, Error **errp)
{
    /* Setting the value it has changes nothing */
    if (host_memory_backend_mr_inited(MEMORY_BACKEND(obj)) &&
        value != MEMORY_BACKEND_SECRET(obj)->cpr) {
        error_setg(errp, "cannot change property value");
        return;
    }
    MEMORY_BACKEND_SECRET(obj)->cpr = value;
}

static void secret_backend_instance_init(Object *obj)
{
    HostMemoryBackend *backend = MEMORY_BACKEND(obj);

    /* Secret memory is shared-only, never merged and never dumped. */
    backend->share = true;
    backend->merge = false;
    backend->dump = false;
}

static void secret_backend_class_init(ObjectClass *oc, const void *data)
{
    HostMemoryBackendSecretClass *sc = MEMORY_BACKEND_SECRET_CLASS(oc);
    HostMemoryBackendClass *bc = MEMORY_BACKEND_CLASS(oc);
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    bc->alloc = secret_backend_memory_alloc;
    sc->parent_complete = ucc->complete;
    ucc->complete = secret_backend_complete;

    object_class_property_add_bool(oc, "plaintext-export",
                                   secret_backend_get_plaintext_export,
                                   secret_backend_set_plaintext_export);
    object_class_property_set_description(oc, "plaintext-export",
        "Allow copies of this memory to leave QEMU in the clear: dumps, "
        "snapshots, migration without TLS, vhost-user and vfio-user");
    object_class_property_add_bool(oc, "cpr", secret_backend_get_cpr,
                                   secret_backend_set_cpr);
    object_class_property_set_description(oc, "cpr",
        "Allow cpr-transfer and cpr-exec to hand this memory's file "
        "descriptor to the new QEMU");
}

static const TypeInfo secret_backend_info = {
    .name = TYPE_MEMORY_BACKEND_SECRET,
    .parent = TYPE_MEMORY_BACKEND,
    .instance_init = secret_backend_instance_init,
    .class_init = secret_backend_class_init,
    .instance_size = sizeof(HostMemoryBackendSecret),
    .class_size = sizeof(HostMemoryBackendSecretClass),
};

/*
 * Like memory-backend-memfd, the type exists only where the host can create
 * its memory, so that management software (libvirt probes qom-list-types)
 * does not offer it on hosts without memfd_secret(2).
 */
static bool secret_backend_host_supported(void)
{
    int fd = secret_backend_memfd_secret(0);

    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

static void register_types(void)
{
    if (secret_backend_host_supported()) {
        type_register_static(&secret_backend_info);
    }
}

type_init(register_types);
