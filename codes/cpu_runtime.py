"""Settings of the CPU runtime that must come before torch allocates or loads (import this module first in an entry
script): how long OpenMP's idle threads spin, and how glibc's malloc serves large blocks.

**OpenMP's spin count.** After each parallel region the OpenMP threads of torch's CPU kernels spin, waiting for the next
one: GNU OpenMP (torch's Linux wheels) spins 300000 times before it sleeps. On a machine shared with other jobs (a CI
runner, a server running several deploys, the data-loader workers of the same training) the spinning threads take the
cores that the working threads need. Measured on 2 cores with 2 busy processes beside it, 2 epochs of HSENet on the
Sample took 20.7 s with no spinning (OMP_WAIT_POLICY=PASSIVE) and 43.7 s with a spin count of 30000; on idle cores the
spin count of 30000 cost nothing measurable (8.0-8.8 s, as the default's 7.6-8.7 s) where PASSIVE cost about 15 %
(8.7-10.9 s). So 30000 is the default here. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins. OpenMP reads them once,
when torch's library loads, so this must run before `import torch`.

**glibc's heap.** torch allocates every tensor with malloc, and glibc maps each block above 32 MB (sooner, before its
threshold adapts) straight from the kernel and unmaps it when freed; the next tensor of that size then faults in and
zeroes every 4 KiB page again. A super-resolution network at deploy tiles and training batches makes such blocks in
every layer: one VDSR tile of 256x256 LR pixels took 1.27 million page faults per inference. So glibc is asked to serve
every block from its heap and to keep freed memory for reuse instead of giving it back to the kernel, as onnxruntime's
arena and torch's CUDA cache do. The price is memory: the heap keeps what it once held, and its holes. `python
bench/bench_heap.py` measures both settings (see docs/performance.md). Other C libraries, a preloaded allocator
(jemalloc, tcmalloc) and any MALLOC_* setting of the user's own are left alone; MALLOC_MMAP_MAX_=65536 (glibc's default)
restores glibc's behaviour.
"""
import ctypes
import os

SPIN_COUNT = "30000"

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER = -1  # as M_TRIM_THRESHOLD: never give the heap's free top back to the kernel (mallopt(3))
USER_ALLOCATOR_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def set_openmp_spin_count():
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


def user_chose_allocator(environ):
    """Whether the user tuned glibc's malloc or preloaded another allocator (their choice wins)."""
    return (any(name in environ for name in USER_ALLOCATOR_VARIABLES)
            or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")
            or "malloc" in environ.get("LD_PRELOAD", ""))


def keep_freed_memory():
    """Ask glibc to serve large blocks from its heap and keep them for reuse; True when it applied."""
    if user_chose_allocator(os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl, macOS and Windows have allocators of their own
    except (OSError, AttributeError, TypeError):
        return False
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER) == 1


set_openmp_spin_count()
HEAP_KEPT = keep_freed_memory()
