/* The CPU backend's table: options, device description, host-memory buffers and the op entry
 * points (which live in cpu_ops.c and cpu_matmul.c). Kernels are chosen once at create time:
 * AVX2/FMA/F16C when the CPU has them (checked with __builtin_cpu_supports), else the portable
 * scalar ones; with AVX512-VNNI (and VL/BW) the same kernels with fused int8/int16 dot steps.
 * "scalar=1" forces the scalar kernels and "avx512=0" the AVX2 ones, so tests can compare them. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "backends/cpu/cpu_internal.h"
#include "engine/alloc.h"

/* Physical cores available to this process: CPUs in our affinity mask divided by the SMT
 * siblings of cpu0 (hyper-threads share the FMA units the kernels saturate). */
static int cpu_physical_cores(void) {
  int online = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) online = CPU_COUNT(&set);
  if (online <= 0) online = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (online <= 0) return 1;
  int siblings = 1;
  FILE *f = fopen("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "r");
  if (f) {
    /* "0,64" or "0-1" or "0" */
    char line[128];
    if (fgets(line, sizeof line, f)) {
      int a, b;
      if (sscanf(line, "%d-%d", &a, &b) == 2 && b >= a) {
        siblings = b - a + 1;
      } else {
        siblings = 1;
        for (const char *p = line; *p; p++)
          siblings += *p == ',';
      }
    }
    fclose(f);
  }
  int cores = online / (siblings > 0 ? siblings : 1);
  return cores > 0 ? cores : 1;
}

static bool cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  /* clang 14's __builtin_cpu_supports does not know "f16c": read CPUID leaf 1 ECX bit 29. */
  unsigned eax, ebx, ecx, edx;
  bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false; /* the AVX2 table is x86-only; other CPUs use the scalar kernels */
#endif
}

static bool cpu_has_vnni(void) {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

struct cpu_options {
  int threads;
  bool scalar;
  int isa; /* highest kernel table allowed: 0 scalar, 1 AVX2, 2 AVX512-VNNI */
};

/* "threads=N,scalar=1" (either order, either absent). */
static int cpu_parse_options(const char *options, struct cpu_options *opt, struct aug_err *err) {
  opt->threads = 0;
  opt->scalar = false;
  opt->isa = 2;
  if (!options) return 0;
  const char *p = options;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[64];
    if (len >= sizeof item) {
      return aug_err_set(err, AUG_EINVAL, "cpu: option '%.*s' is too long", (int)len, p);
    }
    memcpy(item, p, len);
    item[len] = '\0';
    char *eq = strchr(item, '=');
    if (len > 0) {
      if (!eq) return aug_err_set(err, AUG_EINVAL, "cpu: option '%s' has no '=value'", item);
      *eq = '\0';
      const char *value = eq + 1;
      char *stop = NULL;
      errno = 0;
      long v = strtol(value, &stop, 10);
      if (errno || stop == value || *stop) {
        return aug_err_set(err, AUG_EINVAL, "cpu: option '%s' value '%s' is not an integer", item,
                           value);
      }
      if (!strcmp(item, "threads")) {
        if (v < 0 || v > 1024) {
          return aug_err_set(err, AUG_EINVAL, "cpu: threads=%ld is outside [0, 1024]", v);
        }
        opt->threads = (int)v;
      } else if (!strcmp(item, "scalar")) {
        if (v != 0 && v != 1)
          return aug_err_set(err, AUG_EINVAL, "cpu: scalar=%ld is not 0 or 1", v);
        opt->scalar = v == 1;
        if (opt->scalar) opt->isa = 0;
      } else if (!strcmp(item, "avx512")) {
        if (v != 0 && v != 1)
          return aug_err_set(err, AUG_EINVAL, "cpu: avx512=%ld is not 0 or 1", v);
        if (v == 0 && opt->isa > 1) opt->isa = 1;
      } else {
        return aug_err_set(err, AUG_EINVAL,
                           "cpu: unknown option '%s' (known: threads, scalar, avx512)", item);
      }
    }
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

int cpu_scratch_reserve(struct cpu_scratch *s, size_t size) {
  if (s->size >= size) return 0;
  /* Grow at least 1.5x: attention scratch follows the context one token at a time, and decode
   * must not allocate per token. */
  if (size < s->size + s->size / 2) size = s->size + s->size / 2;
  size_t rounded = (size + 63) & ~(size_t)63;
  void *data = aligned_alloc(64, rounded);
  if (!data) return AUG_ENOMEM;
  free(s->data);
  s->data = data;
  s->size = rounded;
  return 0;
}

int cpu_thread_scratch_reserve(struct backend *be, size_t size) {
  for (int i = 0; i < be->n_threads; i++) {
    int rc = cpu_scratch_reserve(&be->thread_scratch[i], size);
    if (rc) return rc;
  }
  return 0;
}

int cpu_tensor_check(const struct backend_tensor *t) {
  const struct quant_type_traits *tr = quant_traits(t->type);
  if (!tr || !t->buffer) return AUG_EINVAL;
  for (int i = 0; i < 4; i++) {
    if (t->ne[i] < 1) return AUG_EINVAL;
  }
  size_t row = quant_row_size(t->type, (uint64_t)t->ne[0]);
  if (row == 0) return AUG_EINVAL;
  /* rows must not overlap; nor may planes when their stride derives from the row stride */
  bool derived_planes = t->plane_stride == 0 && t->ne[2] * t->ne[3] > 1;
  if (t->row_stride < row && (t->ne[1] > 1 || derived_planes)) return AUG_EINVAL;
  size_t plane = t->plane_stride ? t->plane_stride : (size_t)t->ne[1] * t->row_stride;
  /* Last byte touched: the last row of the last plane. */
  size_t last = t->offset + (size_t)(t->ne[1] - 1) * t->row_stride +
                ((size_t)(t->ne[2] * t->ne[3]) - 1) * plane + row;
  if (last > t->buffer->size) return AUG_EINVAL;
  return 0;
}

static void cpu_destroy(struct backend *be) {
  if (!be) return;
  cpu_threadpool_destroy(be->pool);
  if (be->thread_scratch) {
    for (int i = 0; i < be->n_threads; i++)
      free(be->thread_scratch[i].data);
  }
  aug_free(be->thread_scratch);
  free(be->act.data);
  aug_free(be);
}

static int cpu_create(const char *options, struct backend **out, struct aug_err *err) {
  *out = NULL;
  struct cpu_options opt;
  int rc = cpu_parse_options(options, &opt, err);
  if (rc) return rc;
  struct backend *be = aug_calloc(1, sizeof *be);
  if (!be) return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate the backend");
  be->n_threads = opt.threads > 0 ? opt.threads : cpu_physical_cores();
  be->kernels = cpu_kernels_scalar();
  if (opt.isa >= 1 && cpu_has_avx2()) be->kernels = cpu_kernels_avx2();
  if (opt.isa >= 2 && cpu_has_vnni()) be->kernels = cpu_kernels_vnni();
  be->thread_scratch = aug_calloc((size_t)be->n_threads, sizeof *be->thread_scratch);
  if (!be->thread_scratch) {
    cpu_destroy(be);
    return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate scratch for %d threads",
                       be->n_threads);
  }
  rc = cpu_threadpool_create(be->n_threads, &be->pool, err);
  if (rc) {
    cpu_destroy(be);
    return rc;
  }
  *out = be;
  return 0;
}

static int cpu_device_info(struct backend *be, struct backend_device_info *info) {
  memset(info, 0, sizeof *info);
  snprintf(info->name, sizeof info->name, "CPU (%s, %d thread%s)", be->kernels->isa, be->n_threads,
           be->n_threads == 1 ? "" : "s");
  struct sysinfo si;
  if (sysinfo(&si) == 0) {
    info->total_memory = (uint64_t)si.totalram * si.mem_unit;
    info->free_memory = (uint64_t)(si.freeram + si.bufferram) * si.mem_unit;
  }
  /* MemAvailable counts reclaimable page cache (an mmapped model), which freeram does not. */
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f)) {
      if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        info->free_memory = (uint64_t)kb * 1024;
        break;
      }
    }
    fclose(f);
  }
  info->host_visible = true;
  return 0;
}

static int cpu_buffer_alloc(struct backend *be, enum backend_buffer_kind kind, size_t size,
                            struct backend_buffer **out, struct aug_err *err) {
  *out = NULL;
  struct backend_buffer *buf = aug_calloc(1, sizeof *buf);
  if (!buf) return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate a buffer descriptor");
  size_t rounded = ((size ? size : 1) + 63) & ~(size_t)63;
  buf->data = aligned_alloc(64, rounded);
  if (!buf->data) {
    aug_free(buf);
    return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate a buffer of %zu bytes", size);
  }
  buf->size = size;
  buf->kind = kind;
  buf->owned = true;
  *out = buf;
  return 0;
}

static int cpu_buffer_from_host(struct backend *be, const void *ptr, size_t size,
                                struct backend_buffer **out, struct aug_err *err) {
  *out = NULL;
  if (!ptr) return aug_err_set(err, AUG_EINVAL, "cpu: buffer_from_host with a NULL pointer");
  struct backend_buffer *buf = aug_calloc(1, sizeof *buf);
  if (!buf) return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate a buffer descriptor");
  buf->data = (unsigned char *)ptr; /* weights: the kernels only read them */
  buf->size = size;
  buf->kind = BACKEND_BUFFER_WEIGHTS;
  buf->owned = false;
  *out = buf;
  return 0;
}

static void cpu_buffer_free(struct backend *be, struct backend_buffer *buf) {
  if (!buf) return;
  if (buf->owned) free(buf->data);
  aug_free(buf);
}

static void *cpu_buffer_host_ptr(struct backend *be, struct backend_buffer *buf) {
  return buf ? buf->data : NULL;
}

static int cpu_upload(struct backend *be, struct backend_buffer *buf, size_t offset,
                      const void *src, size_t size) {
  if (!buf || !buf->owned || offset > buf->size || size > buf->size - offset) return AUG_EINVAL;
  memcpy(buf->data + offset, src, size);
  return 0;
}

static int cpu_download(struct backend *be, struct backend_buffer *buf, size_t offset, void *dst,
                        size_t size) {
  if (!buf || offset > buf->size || size > buf->size - offset) return AUG_EINVAL;
  memcpy(dst, buf->data + offset, size);
  return 0;
}

static bool cpu_type_readable(uint32_t type) {
  const struct quant_type_traits *tr = quant_traits(type);
  return tr && (tr->can_dequantize || type == QUANT_F32);
}

static bool cpu_supports_op(struct backend *be, enum backend_op op, uint32_t weight_type) {
  switch (op) {
  case BACKEND_OP_MATMUL:
  case BACKEND_OP_GET_ROWS: return cpu_type_readable(weight_type);
  case BACKEND_OP_ATTENTION:
  case BACKEND_OP_COPY: return cpu_kv_type(weight_type);
  case BACKEND_OP_RMS_NORM:
  case BACKEND_OP_ROPE:
  case BACKEND_OP_SILU_MUL:
  case BACKEND_OP_ADD:
  case BACKEND_OP_SOFTMAX: return weight_type == QUANT_F32;
  case BACKEND_OP_COUNT: break;
  }
  return false;
}

static void cpu_set_decode_order(struct backend *be, bool on) {
  be->decode_order = on;
}

static int cpu_synchronize(struct backend *be, struct aug_err *err) {
  return 0; /* ops run to completion before they return */
}

static const struct backend_ops cpu_ops_table = {
    .abi_version = BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct backend_ops),
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_info = cpu_device_info,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_from_host = cpu_buffer_from_host,
    .buffer_free = cpu_buffer_free,
    .buffer_host_ptr = cpu_buffer_host_ptr,
    .upload = cpu_upload,
    .download = cpu_download,
    .supports_op = cpu_supports_op,
    .matmul = cpu_matmul,
    .rms_norm = cpu_rms_norm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .get_rows = cpu_get_rows,
    .softmax = cpu_softmax,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
    .set_decode_order = cpu_set_decode_order,
};

const struct backend_ops *backend_cpu_ops(void) {
  return &cpu_ops_table;
}
