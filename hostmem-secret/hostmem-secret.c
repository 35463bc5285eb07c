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
#include "qom/object_interfaces.h"
#include "qemu/cutils.h"
#include "qapi/error.h"
#include "qom/object.h"
#include <sys/syscall.h>
#include <sys/resource.h>
#ifdef CONFIG_NUMA
#include <numaif.h>
#endif

#define TYPE_MEMORY_BACKEND_SECRET "memory-backend-secret"

OBJECT_DECLARE_SIMPLE_TYPE(HostMemoryBackendSecret, MEMORY_BACKEND_SECRET)

struct HostMemoryBackendSecret {
    HostMemoryBackend parent_obj;
};

/*
 * memfd_secret(2) flag from <linux/secretmem.h> of the kernel series in
 * kernel/: KVM may map the memory into guests.  Kernels without the series
 * reject it with EINVAL.
 */
#ifndef SECRETMEM_ALLOW_KVM
#define SECRETMEM_ALLOW_KVM 0x1U
#endif

/* The same series' KVM capability: KVM maps such memory into guests. */
#ifndef KVM_CAP_SECRETMEM
#define KVM_CAP_SECRETMEM 249
#endif

static void (*secret_backend_parent_complete)(UserCreatable *uc,
                                              Error **errp);

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
    unsigned int flags = 0;
    int fd;

    if (kvm_enabled()) {
        if (kvm_check_extension(kvm_state, KVM_CAP_SECRETMEM) <= 0) {
            error_setg(errp, "memory-backend-secret: the host's KVM cannot "
                       "map secret memory into guests (no "
                       "KVM_CAP_SECRETMEM); boot a kernel with the series "
                       "in kernel/, or use accel=tcg");
            return -1;
        }
        flags = SECRETMEM_ALLOW_KVM;
    }
    fd = secret_backend_memfd_secret(flags);
    if (fd >= 0) {
        return fd;
    }
    if (errno == ENOSYS) {
        error_setg(errp, "memory-backend-secret: the host kernel has no "
                   "memfd_secret(2) (ENOSYS); enable it with "
                   "CONFIG_SECRETMEM=y and, on kernels older than 6.5, "
                   "the boot option secretmem.enable=1");
    } else if (errno == EINVAL && flags) {
        error_setg(errp, "memory-backend-secret: KVM reports "
                   "KVM_CAP_SECRETMEM but memfd_secret() refuses "
                   "SECRETMEM_ALLOW_KVM (EINVAL); the kernel's series is "
                   "incomplete, boot one with the whole series in kernel/, "
                   "or use accel=tcg");
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
    error_setg(errp, "memory-backend-secret: %s exceeds RLIMIT_MEMLOCK (%s, "
               "including memory this process already locked); raise it "
               "(ulimit -l, LimitMEMLOCK=, libvirt hard_limit)",
               size_str, limit_str);
    return false;
}

static bool secret_backend_check_size(uint64_t size, Error **errp)
{
    uint64_t pagesize = qemu_real_host_page_size();
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * pagesize;
    g_autofree char *size_str = size_to_str(size);

    if (!size) {
        error_setg(errp, "memory-backend-secret: size must not be 0");
        return false;
    }
    if (!QEMU_IS_ALIGNED(size, pagesize)) {
        error_setg(errp, "memory-backend-secret: size %" PRIu64 " is not a "
                   "multiple of the host page size (%" PRIu64 "); secret "
                   "memory is mapped in host pages", size, pagesize);
        return false;
    }
    if (size > ram) {
        g_autofree char *ram_str = size_to_str(ram);

        error_setg(errp, "memory-backend-secret: size %s exceeds the host's "
                   "RAM (%s); secret memory is locked and cannot be swapped "
                   "or overcommitted", size_str, ram_str);
        return false;
    }
    return true;
}

static bool secret_backend_check_options(HostMemoryBackend *backend,
                                         Error **errp)
{
    if (!backend->share) {
        error_setg(errp, "memory-backend-secret: share=off is not supported: "
                   "secret memory can only be mapped shared; drop share=off");
        return false;
    }
    if (backend->merge) {
        error_setg(errp, "memory-backend-secret: merge=on is not supported: "
                   "KSM cannot merge secret memory; drop merge=on");
        return false;
    }
    if (backend->dump) {
        error_setg(errp, "memory-backend-secret: dump=on is not supported: "
                   "secret memory never appears in core dumps; drop dump=on");
        return false;
    }
    if (!backend->reserve) {
        error_setg(errp, "memory-backend-secret: reserve=off is not "
                   "supported: secret memory is always locked; drop "
                   "reserve=off");
        return false;
    }
    return secret_backend_check_size(backend->size, errp);
}

static bool
secret_backend_memory_alloc(HostMemoryBackend *backend, Error **errp)
{
    g_autofree char *name = host_memory_backend_get_name(backend);
    int fd;

    if (!secret_backend_check_options(backend, errp)) {
        return false;
    }

    fd = secret_backend_create_fd(errp);
    if (fd < 0) {
        return false;
    }
    if (ftruncate(fd, backend->size)) {
        error_setg_errno(errp, errno, "memory-backend-secret: cannot size "
                         "secret memory");
        goto err_close;
    }
    if (!secret_backend_check_memlock(fd, backend->size, errp)) {
        goto err_close;
    }

    backend->aligned = true;
    if (!memory_region_init_ram_from_fd(&backend->mr, OBJECT(backend), name,
                                        backend->size, RAM_SHARED, fd, 0,
                                        errp)) {
        goto err_close;
    }
    return true;

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
    unsigned long lastbit = find_last_bit(backend->host_nodes, MAX_NODES);
    unsigned long maxnode = (lastbit + 1) % (MAX_NODES + 1);

    saved->mode = -1;
    if (!maxnode) {
        return true;
    }
    if (!backend->prealloc) {
        error_setg(errp, "memory-backend-secret: host-nodes needs "
                   "prealloc=on: secret memory is placed by the thread that "
                   "first touches it, not by mbind(); add prealloc=on");
        return false;
    }
    if (backend->prealloc_context) {
        error_setg(errp, "memory-backend-secret: host-nodes cannot be "
                   "combined with prealloc-context: the context's threads "
                   "do not inherit the node policy; drop one of them");
        return false;
    }
    if (get_mempolicy(&saved->mode, saved->nodes, MAX_NODES + 1, NULL, 0)) {
        error_setg_errno(errp, errno, "memory-backend-secret: cannot read "
                         "the thread's NUMA policy");
        return false;
    }
    if (set_mempolicy(backend->policy, backend->host_nodes, maxnode + 1)) {
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
    HostMemoryBackend *backend = MEMORY_BACKEND(uc);
    SecretTaskPolicy saved;

    if (!secret_backend_bind_task(backend, &saved, errp)) {
        return;
    }
    secret_backend_parent_complete(uc, errp);
    secret_backend_restore_task(&saved);
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
    HostMemoryBackendClass *bc = MEMORY_BACKEND_CLASS(oc);
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    bc->alloc = secret_backend_memory_alloc;
    secret_backend_parent_complete = ucc->complete;
    ucc->complete = secret_backend_complete;
}

static const TypeInfo secret_backend_info = {
    .name = TYPE_MEMORY_BACKEND_SECRET,
    .parent = TYPE_MEMORY_BACKEND,
    .instance_init = secret_backend_instance_init,
    .class_init = secret_backend_class_init,
    .instance_size = sizeof(HostMemoryBackendSecret),
};

static void register_types(void)
{
    type_register_static(&secret_backend_info);
}

type_init(register_types);
