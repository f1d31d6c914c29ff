/* The Vulkan backend's device side: instance and device selection, the limits it works within
 * (read from the device, never assumed), device memory in blocks, buffers, staging copies, the
 * command frames ops are recorded into, and the pipeline cache (one pipeline per shader and set
 * of specialization constants, built on first use). Ops (vk_ops.c) only record dispatches;
 * submission happens when a frame fills up, on synchronize, and before every upload/download. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"
#include "backends/vulkan/vk_spirv.h"
#include "engine/alloc.h"
#include "engine/quant.h"

/* Shared blocks for small buffers; a buffer over half a block gets its own allocation. */
#define VK_BLOCK_SIZE ((VkDeviceSize)256 << 20)
/* Host-visible bounce buffer for upload/download; bigger copies go through it in pieces. */
#define VK_STAGING_SIZE ((VkDeviceSize)16 << 20)
/* Initial per-frame arena for host parameters (positions, ids, cos/sin tables). */
#define VK_ARENA_SIZE ((VkDeviceSize)1 << 20)

static const char *vk_result_name(VkResult r) {
  switch (r) {
  case VK_SUCCESS: return "VK_SUCCESS";
  case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
  case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
  case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
  case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
  case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
  case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
  case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
  case VK_TIMEOUT: return "VK_TIMEOUT";
  default: return "VkResult";
  }
}

static int vk_fail(struct aug_err *err, VkResult r, const char *what) {
  int code = r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? AUG_ENOMEM
                                                                                    : AUG_EDEVICE;
  return aug_err_set(err, code, "vulkan: %s: %s (%d)", what, vk_result_name(r), (int)r);
}

/* A device failure is sticky: later ops fail fast and synchronize reports the first message. */
static int vk_lose(struct backend *be, VkResult r, const char *what) {
  if (!be->lost) {
    be->lost = r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? AUG_ENOMEM
                                                                                      : AUG_EDEVICE;
    snprintf(be->lost_msg, sizeof be->lost_msg, "vulkan: %s: %s (%d)", what, vk_result_name(r),
             (int)r);
  }
  return be->lost;
}

/* ---- options and device selection ----------------------------------------------------------- */

struct vk_options {
  long device;         /* -1: preferred */
  long long max_bind;  /* 0: the device limit */
  long long max_buf;   /* 0: the device limit */
  long long as_gpu;    /* 1: do not report a CPU implementation as one (tests of placement) */
  long long subgroups; /* 0: take the shaders that need no subgroup operations (tests of both) */
  long long fail_alloc, fail_submit; /* fault injection: fail the N-th of them (0: never) */
};

static int vk_parse_options(const char *options, struct vk_options *opt, struct aug_err *err) {
  opt->device = -1;
  opt->max_bind = 0;
  opt->max_buf = 0;
  opt->as_gpu = 0;
  opt->subgroups = 1;
  opt->fail_alloc = opt->fail_submit = 0;
  if (!options) return 0;
  const char *p = options;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[64];
    if (len >= sizeof item) {
      return aug_err_set(err, AUG_EINVAL, "vulkan: option '%.*s' is too long", (int)len, p);
    }
    memcpy(item, p, len);
    item[len] = '\0';
    if (len > 0) {
      char *eq = strchr(item, '=');
      if (!eq) return aug_err_set(err, AUG_EINVAL, "vulkan: option '%s' has no '=value'", item);
      *eq = '\0';
      char *stop = NULL;
      errno = 0;
      long long v = strtoll(eq + 1, &stop, 10);
      if (errno || stop == eq + 1 || *stop || v < 0) {
        return aug_err_set(err, AUG_EINVAL, "vulkan: option '%s' value '%s' is not a count", item,
                           eq + 1);
      }
      if (!strcmp(item, "device")) {
        opt->device = (long)v;
      } else if (!strcmp(item, "max_binding")) {
        if (v < 4096) return aug_err_set(err, AUG_EINVAL, "vulkan: max_binding=%lld < 4096", v);
        opt->max_bind = v;
      } else if (!strcmp(item, "max_buffer")) {
        if (v < 65536) return aug_err_set(err, AUG_EINVAL, "vulkan: max_buffer=%lld < 65536", v);
        opt->max_buf = v;
      } else if (!strcmp(item, "as_gpu")) {
        opt->as_gpu = v;
      } else if (!strcmp(item, "subgroups")) {
        opt->subgroups = v;
      } else if (!strcmp(item, "fail_alloc")) {
        opt->fail_alloc = v;
      } else if (!strcmp(item, "fail_submit")) {
        opt->fail_submit = v;
      } else {
        return aug_err_set(err, AUG_EINVAL,
                           "vulkan: unknown option '%s' (known: device, max_binding, max_buffer, "
                           "as_gpu, subgroups, fail_alloc, fail_submit)",
                           item);
      }
    }
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

static int vk_device_rank(VkPhysicalDeviceType t) {
  switch (t) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
  case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
  default: return 0;
  }
}

static bool vk_compute_family(VkPhysicalDevice pd, uint32_t *family) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
  VkQueueFamilyProperties fams[16];
  if (n > 16) n = 16;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, fams);
  /* a compute queue without graphics is the one that does not share time with a display */
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < n; i++) {
      bool compute = fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT;
      bool graphics = fams[i].queueFlags & VK_QUEUE_GRAPHICS_BIT;
      if (compute && fams[i].queueCount > 0 && (pass == 1 || !graphics)) {
        *family = i;
        return true;
      }
    }
  }
  return false;
}

/* Why a device cannot run our shaders, or NULL. */
static const char *vk_device_unfit(VkPhysicalDevice pd) {
  VkPhysicalDeviceProperties p;
  vkGetPhysicalDeviceProperties(pd, &p);
  uint32_t family;
  if (p.apiVersion < VK_API_VERSION_1_2) return "Vulkan 1.2 not supported";
  if (!vk_compute_family(pd, &family)) return "no compute queue";
  if (p.limits.maxPerStageDescriptorStorageBuffers < VK_BINDINGS)
    return "fewer than 5 storage buffers per stage";
  if (p.limits.maxComputeSharedMemorySize < 16384) return "less than 16 KiB of shared memory";
  if (p.limits.maxComputeWorkGroupInvocations < 128) return "fewer than 128 invocations";
  if (p.limits.maxComputeWorkGroupSize[0] < 128) return "workgroup x size below 128";
  return NULL;
}

static int vk_pick_device(struct backend *be, long wanted, struct aug_err *err) {
  uint32_t n = 0;
  VkResult r = vkEnumeratePhysicalDevices(be->instance, &n, NULL);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkEnumeratePhysicalDevices");
  if (n == 0) return aug_err_set(err, AUG_ENOTFOUND, "vulkan: no Vulkan device");
  VkPhysicalDevice devs[16];
  if (n > 16) n = 16;
  r = vkEnumeratePhysicalDevices(be->instance, &n, devs);
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return vk_fail(err, r, "vkEnumeratePhysicalDevices");
  if (wanted >= 0) {
    if (wanted >= (long)n) {
      return aug_err_set(err, AUG_ENOTFOUND, "vulkan: device=%ld but only %u devices", wanted, n);
    }
    const char *why = vk_device_unfit(devs[wanted]);
    if (why) return aug_err_set(err, AUG_EUNSUPPORTED, "vulkan: device %ld: %s", wanted, why);
    be->physical = devs[wanted];
    return 0;
  }
  int best = -1, best_rank = -1;
  const char *why = "no device";
  for (uint32_t i = 0; i < n; i++) {
    const char *unfit = vk_device_unfit(devs[i]);
    if (unfit) {
      why = unfit;
      continue;
    }
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(devs[i], &p);
    if (vk_device_rank(p.deviceType) > best_rank) {
      best_rank = vk_device_rank(p.deviceType);
      best = (int)i;
    }
  }
  if (best < 0)
    return aug_err_set(err, AUG_ENOTFOUND, "vulkan: no usable device among %u (%s)", n, why);
  be->physical = devs[best];
  return 0;
}

static int vk_memory_type(const struct backend *be, uint32_t bits, VkMemoryPropertyFlags want,
                          VkMemoryPropertyFlags avoid) {
  for (uint32_t i = 0; i < be->mem_props.memoryTypeCount; i++) {
    VkMemoryPropertyFlags f = be->mem_props.memoryTypes[i].propertyFlags;
    if ((bits & (1u << i)) && (f & want) == want && !(f & avoid)) return (int)i;
  }
  return -1;
}

/* ---- host-visible buffers ------------------------------------------------------------------ */

static int vk_host_buffer_create(struct backend *be, VkDeviceSize size, struct vk_host_buffer *hb,
                                 struct aug_err *err) {
  memset(hb, 0, sizeof *hb);
  VkBufferCreateInfo bi = {
      .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
      .size = size,
      .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT,
      .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
  };
  VkResult r = vkCreateBuffer(be->device, &bi, NULL, &hb->buffer);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreateBuffer (host)");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(be->device, hb->buffer, &req);
  VkMemoryPropertyFlags want =
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  /* cached memory makes downloads read at host speed */
  int type = vk_memory_type(be, req.memoryTypeBits, want | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
  if (type < 0) type = vk_memory_type(be, req.memoryTypeBits, want, 0);
  if (type < 0) {
    return aug_err_set(err, AUG_EUNSUPPORTED, "vulkan: no host-visible coherent memory type");
  }
  VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                             .allocationSize = req.size,
                             .memoryTypeIndex = (uint32_t)type};
  r = vkAllocateMemory(be->device, &ai, NULL, &hb->memory);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkAllocateMemory (host)");
  r = vkBindBufferMemory(be->device, hb->buffer, hb->memory, 0);
  if (r == VK_SUCCESS) r = vkMapMemory(be->device, hb->memory, 0, VK_WHOLE_SIZE, 0, &hb->map);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkMapMemory (host)");
  hb->size = size;
  return 0;
}

static void vk_host_buffer_destroy(struct backend *be, struct vk_host_buffer *hb) {
  if (hb->buffer) vkDestroyBuffer(be->device, hb->buffer, NULL);
  if (hb->memory) vkFreeMemory(be->device, hb->memory, NULL);
  memset(hb, 0, sizeof *hb);
}

/* ---- device buffers ------------------------------------------------------------------------- */

static struct vk_block *vk_block_new(struct backend *be, VkDeviceSize size, uint32_t type,
                                     struct aug_err *err) {
  struct vk_block *b = aug_calloc(1, sizeof *b);
  if (!b) {
    aug_err_set(err, AUG_ENOMEM, "vulkan: cannot allocate a block descriptor");
    return NULL;
  }
  VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                             .allocationSize = size,
                             .memoryTypeIndex = type};
  VkResult r = vkAllocateMemory(be->device, &ai, NULL, &b->memory);
  if (r != VK_SUCCESS) {
    aug_free(b);
    vk_fail(err, r, "vkAllocateMemory");
    aug_err_prefix(err, "vulkan: %llu bytes", (unsigned long long)size);
    return NULL;
  }
  b->size = size;
  b->type_index = type;
  b->next = be->blocks;
  be->blocks = b;
  be->allocated += size;
  return b;
}

static void vk_block_release(struct backend *be, struct vk_block *b) {
  if (--b->live > 0) return;
  struct vk_block **pp = &be->blocks;
  while (*pp && *pp != b)
    pp = &(*pp)->next;
  if (*pp) *pp = b->next;
  vkFreeMemory(be->device, b->memory, NULL);
  be->allocated -= b->size;
  aug_free(b);
}

int vk_buffer_create(struct backend *be, enum backend_buffer_kind kind, size_t size,
                     struct backend_buffer **out, struct aug_err *err) {
  *out = NULL;
  if (be->fail_alloc && ++be->n_allocs == be->fail_alloc)
    return aug_err_set(err, AUG_ENOMEM, "vulkan: allocation %llu failed (injected: fail_alloc)",
                       (unsigned long long)be->n_allocs);
  /* rounded to 16 so a binding may always end on a whole word */
  VkDeviceSize capacity = ((VkDeviceSize)(size ? size : 1) + 15) & ~(VkDeviceSize)15;
  if (capacity > be->max_buffer) {
    return aug_err_set(err, AUG_ERANGE,
                       "vulkan: a buffer of %zu bytes exceeds the device's largest allocation "
                       "(%llu bytes)",
                       size, (unsigned long long)be->max_buffer);
  }
  struct backend_buffer *buf = aug_calloc(1, sizeof *buf);
  if (!buf) return aug_err_set(err, AUG_ENOMEM, "vulkan: cannot allocate a buffer descriptor");
  buf->size = size;
  buf->capacity = capacity;
  buf->kind = kind;
  VkBufferCreateInfo bi = {
      .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
      .size = capacity,
      .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT,
      .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
  };
  VkResult r = vkCreateBuffer(be->device, &bi, NULL, &buf->buffer);
  if (r != VK_SUCCESS) {
    aug_free(buf);
    return vk_fail(err, r, "vkCreateBuffer");
  }
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(be->device, buf->buffer, &req);
  int type = vk_memory_type(be, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
  if (type < 0) type = vk_memory_type(be, req.memoryTypeBits, 0, 0);
  struct vk_block *block = NULL;
  VkDeviceSize at = 0;
  if (type >= 0 && req.size <= be->block_size / 2) {
    for (struct vk_block *b = be->blocks; b; b = b->next) {
      VkDeviceSize a = (b->used + req.alignment - 1) / req.alignment * req.alignment;
      if (b->type_index == (uint32_t)type && b->size >= be->block_size && a + req.size <= b->size) {
        block = b;
        at = a;
        break;
      }
    }
    if (!block) block = vk_block_new(be, be->block_size, (uint32_t)type, err);
  } else if (type >= 0) {
    block = vk_block_new(be, req.size, (uint32_t)type, err);
  } else {
    aug_err_set(err, AUG_EUNSUPPORTED, "vulkan: no memory type for a storage buffer");
  }
  if (!block) {
    vkDestroyBuffer(be->device, buf->buffer, NULL);
    aug_free(buf);
    return err ? err->code : AUG_ENOMEM;
  }
  r = vkBindBufferMemory(be->device, buf->buffer, block->memory, at);
  if (r != VK_SUCCESS) {
    if (block->live == 0) {
      block->live = 1;
      vk_block_release(be, block);
    }
    vkDestroyBuffer(be->device, buf->buffer, NULL);
    aug_free(buf);
    return vk_fail(err, r, "vkBindBufferMemory");
  }
  block->used = at + req.size;
  block->live++;
  buf->block = block;
  *out = buf;
  return 0;
}

void vk_buffer_destroy(struct backend *be, struct backend_buffer *buf) {
  if (!buf) return;
  /* ops recorded earlier may still read it */
  vk_flush(be, NULL);
  vkDestroyBuffer(be->device, buf->buffer, NULL);
  vk_block_release(be, buf->block);
  aug_free(buf);
}

/* ---- frames and submission ------------------------------------------------------------------ */

static int vk_frame_wait(struct backend *be, struct vk_frame *f) {
  if (!f->pending) return 0;
  VkResult r = vkWaitForFences(be->device, 1, &f->fence, VK_TRUE, UINT64_MAX);
  f->pending = false;
  if (r != VK_SUCCESS) return vk_lose(be, r, "vkWaitForFences");
  return 0;
}

/* The current frame, begun for recording (waiting for its previous use first). */
static int vk_frame_begin(struct backend *be, struct vk_frame **out) {
  struct vk_frame *f = &be->frames[be->frame];
  *out = f;
  if (be->lost) return be->lost;
  if (f->recording) return 0;
  int rc = vk_frame_wait(be, f);
  if (rc) return rc;
  VkResult r = vkResetFences(be->device, 1, &f->fence);
  if (r == VK_SUCCESS) r = vkResetDescriptorPool(be->device, f->pool, 0);
  if (r == VK_SUCCESS) r = vkResetCommandBuffer(f->cmd, 0);
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  if (r == VK_SUCCESS) r = vkBeginCommandBuffer(f->cmd, &bi);
  if (r != VK_SUCCESS) return vk_lose(be, r, "beginning a command buffer");
  f->sets_used = 0;
  f->arena_used = 0;
  f->recording = true;
  return 0;
}

/* Submits the current frame (if it recorded anything) and moves on to the next one. */
static int vk_frame_submit(struct backend *be) {
  struct vk_frame *f = &be->frames[be->frame];
  if (!f->recording) return be->lost;
  f->recording = false;
  VkResult r = vkEndCommandBuffer(f->cmd);
  VkSubmitInfo si = {
      .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &f->cmd};
  if (r == VK_SUCCESS && be->fail_submit && ++be->n_submits == be->fail_submit)
    return vk_lose(be, VK_ERROR_DEVICE_LOST, "vkQueueSubmit (injected: fail_submit)");
  if (r == VK_SUCCESS) r = vkQueueSubmit(be->queue, 1, &si, f->fence);
  if (r != VK_SUCCESS) return vk_lose(be, r, "vkQueueSubmit");
  f->pending = true;
  be->frame = (be->frame + 1) % VK_FRAMES;
  return 0;
}

int vk_flush(struct backend *be, struct aug_err *err) {
  int rc = vk_frame_submit(be);
  for (int i = 0; i < VK_FRAMES; i++) {
    int w = vk_frame_wait(be, &be->frames[i]);
    if (!rc) rc = w;
  }
  if (be->lost) return aug_err_set(err, be->lost, "%s", be->lost_msg);
  return rc;
}

/* One copy on the transfer command buffer, waited for. */
static int vk_copy_now(struct backend *be, VkBuffer src, VkDeviceSize src_off, VkBuffer dst,
                       VkDeviceSize dst_off, VkDeviceSize size) {
  VkResult r = vkResetFences(be->device, 1, &be->transfer_fence);
  if (r == VK_SUCCESS) r = vkResetCommandBuffer(be->transfer_cmd, 0);
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  if (r == VK_SUCCESS) r = vkBeginCommandBuffer(be->transfer_cmd, &bi);
  if (r != VK_SUCCESS) return vk_lose(be, r, "transfer command buffer");
  VkBufferCopy region = {.srcOffset = src_off, .dstOffset = dst_off, .size = size};
  vkCmdCopyBuffer(be->transfer_cmd, src, dst, 1, &region);
  r = vkEndCommandBuffer(be->transfer_cmd);
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                     .commandBufferCount = 1,
                     .pCommandBuffers = &be->transfer_cmd};
  if (r == VK_SUCCESS) r = vkQueueSubmit(be->queue, 1, &si, be->transfer_fence);
  if (r == VK_SUCCESS) r = vkWaitForFences(be->device, 1, &be->transfer_fence, VK_TRUE, UINT64_MAX);
  if (r != VK_SUCCESS) return vk_lose(be, r, "copy through the staging buffer");
  return 0;
}

/* Uploads and downloads are ordered after every op recorded before them: the stream is flushed
 * first (uploads are rare in decode: weights at load, nothing per token). */
int vk_buffer_upload(struct backend *be, struct backend_buffer *buf, size_t offset, const void *src,
                     size_t size) {
  if (!buf || offset > buf->size || size > buf->size - offset) return AUG_EINVAL;
  int rc = vk_flush(be, NULL);
  for (size_t done = 0; rc == 0 && done < size;) {
    size_t n = size - done < be->staging.size ? size - done : (size_t)be->staging.size;
    memcpy(be->staging.map, (const char *)src + done, n);
    rc = vk_copy_now(be, be->staging.buffer, 0, buf->buffer, offset + done, n);
    done += n;
  }
  return rc;
}

int vk_buffer_download(struct backend *be, struct backend_buffer *buf, size_t offset, void *dst,
                       size_t size) {
  if (!buf || offset > buf->size || size > buf->size - offset) return AUG_EINVAL;
  int rc = vk_flush(be, NULL);
  for (size_t done = 0; rc == 0 && done < size;) {
    size_t n = size - done < be->staging.size ? size - done : (size_t)be->staging.size;
    rc = vk_copy_now(be, buf->buffer, offset + done, be->staging.buffer, 0, n);
    if (rc == 0) memcpy((char *)dst + done, be->staging.map, n);
    done += n;
  }
  return rc;
}

/* ---- bindings, parameters, pipelines, dispatch ----------------------------------------------- */

int vk_bind_range(struct backend *be, struct backend_buffer *buf, size_t first, size_t end,
                  struct vk_binding *b) {
  if (end < first || end > buf->capacity) return AUG_EINVAL;
  VkDeviceSize off = first / be->binding_align * be->binding_align;
  VkDeviceSize range = ((VkDeviceSize)end - off + 3) & ~(VkDeviceSize)3;
  if (range == 0) range = 4;
  if (off + range > buf->capacity) range = buf->capacity - off;
  if (range > be->max_binding) return AUG_ERANGE;
  b->buffer = buf->buffer;
  b->offset = off;
  b->range = range;
  b->base = (uint32_t)(first - off);
  return 0;
}

static VkDeviceSize vk_arena_at(const struct backend *be, const struct vk_frame *f) {
  return (f->arena_used + be->binding_align - 1) / be->binding_align * be->binding_align;
}

int vk_reserve(struct backend *be, uint32_t n_sets, size_t param_bytes) {
  if (n_sets > VK_SETS_PER_FRAME) return AUG_EINVAL;
  struct vk_frame *f;
  int rc = vk_frame_begin(be, &f);
  if (rc) return rc;
  VkDeviceSize need = ((VkDeviceSize)param_bytes + 15) & ~(VkDeviceSize)15;
  if (f->sets_used + n_sets <= VK_SETS_PER_FRAME && vk_arena_at(be, f) + need <= f->arena.size)
    return 0;
  /* run what this frame holds; the next one starts empty (its arena grown if one op's
   * parameters alone do not fit) */
  rc = vk_frame_submit(be);
  if (rc) return rc;
  f = &be->frames[be->frame];
  if (need > f->arena.size) {
    rc = vk_frame_wait(be, f);
    if (rc) return rc;
    VkDeviceSize grown = f->arena.size;
    while (grown < need)
      grown *= 2;
    vk_host_buffer_destroy(be, &f->arena);
    struct aug_err err;
    if (vk_host_buffer_create(be, grown, &f->arena, &err))
      return vk_lose(be, VK_ERROR_OUT_OF_HOST_MEMORY, "growing the parameter arena");
  }
  return vk_frame_begin(be, &f);
}

int vk_host_param(struct backend *be, const void *data, size_t size, struct vk_binding *b,
                  void **map) {
  int rc = vk_reserve(be, 1, size);
  if (rc) return rc;
  struct vk_frame *f = &be->frames[be->frame];
  VkDeviceSize need = ((VkDeviceSize)size + 15) & ~(VkDeviceSize)15;
  VkDeviceSize at = vk_arena_at(be, f);
  if (data) memcpy((char *)f->arena.map + at, data, size);
  if (map) *map = (char *)f->arena.map + at;
  f->arena_used = at + need;
  b->buffer = f->arena.buffer;
  b->offset = at;
  b->range = need ? need : 16;
  b->base = 0;
  return 0;
}

static VkShaderModule vk_module(struct backend *be, const char *shader) {
  for (unsigned i = 0; i < vk_spirv_count && i < 32; i++) {
    if (strcmp(vk_spirv_table[i].name, shader)) continue;
    if (!be->modules[i]) {
      VkShaderModuleCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = vk_spirv_table[i].size,
                                     .pCode = vk_spirv_table[i].code};
      if (vkCreateShaderModule(be->device, &ci, NULL, &be->modules[i]) != VK_SUCCESS) return NULL;
    }
    return be->modules[i];
  }
  return NULL;
}

static VkPipeline vk_pipeline(struct backend *be, const char *shader,
                              const uint32_t spec[VK_MAX_SPEC]) {
  for (uint32_t i = 0; i < be->n_pipelines; i++) {
    struct vk_pipeline *p = &be->pipelines[i];
    if (!strcmp(p->shader, shader) && !memcmp(p->spec, spec, sizeof p->spec)) return p->pipeline;
  }
  VkShaderModule module = vk_module(be, shader);
  if (!module) return VK_NULL_HANDLE;
  if (be->n_pipelines == be->cap_pipelines) {
    uint32_t cap = be->cap_pipelines ? 2 * be->cap_pipelines : 32;
    struct vk_pipeline *grown = aug_realloc(be->pipelines, cap * sizeof *grown);
    if (!grown) return VK_NULL_HANDLE;
    be->pipelines = grown;
    be->cap_pipelines = cap;
  }
  VkSpecializationMapEntry entries[VK_MAX_SPEC];
  for (uint32_t i = 0; i < VK_MAX_SPEC; i++) {
    entries[i] = (VkSpecializationMapEntry){
        .constantID = i, .offset = i * (uint32_t)sizeof(uint32_t), .size = sizeof(uint32_t)};
  }
  VkSpecializationInfo si = {.mapEntryCount = VK_MAX_SPEC,
                             .pMapEntries = entries,
                             .dataSize = VK_MAX_SPEC * sizeof(uint32_t),
                             .pData = spec};
  VkComputePipelineCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = module,
                .pName = "main",
                .pSpecializationInfo = &si},
      .layout = be->pipeline_layout,
  };
  struct vk_pipeline *p = &be->pipelines[be->n_pipelines];
  memset(p, 0, sizeof *p);
  snprintf(p->shader, sizeof p->shader, "%s", shader);
  memcpy(p->spec, spec, sizeof p->spec);
  if (vkCreateComputePipelines(be->device, VK_NULL_HANDLE, 1, &ci, NULL, &p->pipeline) !=
      VK_SUCCESS) {
    return VK_NULL_HANDLE;
  }
  be->n_pipelines++;
  return p->pipeline;
}

void vk_groups_2d(const struct backend *be, uint64_t n, uint32_t groups[3]) {
  uint64_t x = n < be->max_groups[0] ? n : be->max_groups[0];
  if (x == 0) x = 1;
  groups[0] = (uint32_t)x;
  groups[1] = (uint32_t)((n + x - 1) / x);
  groups[2] = 1;
}

int vk_dispatch(struct backend *be, const char *shader, const uint32_t spec[VK_MAX_SPEC],
                const struct vk_binding *bindings[VK_BINDINGS], const uint32_t *push,
                size_t push_words, const uint32_t groups[3]) {
  for (int i = 0; i < 3; i++) {
    if (groups[i] == 0) return 0;
    if (groups[i] > be->max_groups[i]) return AUG_ERANGE;
  }
  if (push_words > VK_PUSH_WORDS) return AUG_EINVAL;
  VkPipeline pipe = vk_pipeline(be, shader, spec);
  if (!pipe) return AUG_EDEVICE;
  struct vk_frame *f;
  int rc = vk_frame_begin(be, &f);
  if (rc) return rc;
  /* the op reserved its sets (vk_reserve): switching frames here would strand its parameters */
  if (f->sets_used == VK_SETS_PER_FRAME) return AUG_EINVAL;
  VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                    .descriptorPool = f->pool,
                                    .descriptorSetCount = 1,
                                    .pSetLayouts = &be->set_layout};
  VkDescriptorSet set;
  VkResult r = vkAllocateDescriptorSets(be->device, &ai, &set);
  if (r != VK_SUCCESS) return vk_lose(be, r, "vkAllocateDescriptorSets");
  f->sets_used++;
  VkDescriptorBufferInfo infos[VK_BINDINGS];
  VkWriteDescriptorSet writes[VK_BINDINGS];
  for (int i = 0; i < VK_BINDINGS; i++) {
    const struct vk_binding *b = bindings[i];
    infos[i] = b ? (VkDescriptorBufferInfo){b->buffer, b->offset, b->range}
                 : (VkDescriptorBufferInfo){be->dummy->buffer, 0, be->dummy->capacity};
    writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                       .dstSet = set,
                                       .dstBinding = (uint32_t)i,
                                       .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &infos[i]};
  }
  vkUpdateDescriptorSets(be->device, VK_BINDINGS, writes, 0, NULL);
  uint32_t words[VK_PUSH_WORDS] = {0};
  memcpy(words, push, push_words * sizeof(uint32_t));
  vkCmdBindPipeline(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
  vkCmdBindDescriptorSets(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, be->pipeline_layout, 0, 1, &set,
                          0, NULL);
  vkCmdPushConstants(f->cmd, be->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof words,
                     words);
  vkCmdDispatch(f->cmd, groups[0], groups[1], groups[2]);
  /* every op depends on the one before it (the forward pass is a chain): one global barrier */
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
  vkCmdPipelineBarrier(f->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
  return 0;
}

/* ---- create / destroy ---------------------------------------------------------------------- */

static void vk_read_limits(struct backend *be, const struct vk_options *opt) {
  vkGetPhysicalDeviceProperties(be->physical, &be->props);
  vkGetPhysicalDeviceMemoryProperties(be->physical, &be->mem_props);
  VkPhysicalDeviceMaintenance3Properties m3 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceSubgroupProperties sg = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &m3};
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                    .pNext = &sg};
  vkGetPhysicalDeviceProperties2(be->physical, &p2);
  const VkPhysicalDeviceLimits *l = &be->props.limits;
  be->max_binding = l->maxStorageBufferRange;
  if (opt->max_bind > 0 && (VkDeviceSize)opt->max_bind < be->max_binding)
    be->max_binding = (VkDeviceSize)opt->max_bind;
  be->max_binding &= ~(VkDeviceSize)15;
  be->max_allocation = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : (1ull << 30);
  be->max_buffer = be->max_allocation;
  if (opt->max_buf > 0 && (VkDeviceSize)opt->max_buf < be->max_buffer)
    be->max_buffer = (VkDeviceSize)opt->max_buf;
  be->cpu_device = be->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU && !opt->as_gpu;
  be->binding_align = l->minStorageBufferOffsetAlignment ? l->minStorageBufferOffsetAlignment : 16;
  if (be->binding_align < 16) be->binding_align = 16;
  be->shared_memory = l->maxComputeSharedMemorySize;
  be->subgroup_size = sg.subgroupSize;
  /* matmul_vec_sg: a 64-invocation workgroup of whole subgroups, each summing rows with
   * subgroupAdd */
  bool arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
               (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  be->subgroup_rows = 0;
  if (opt->subgroups && arith && sg.subgroupSize >= 1 && sg.subgroupSize <= 64 &&
      64 % sg.subgroupSize == 0) {
    be->subgroup_rows = 64 / sg.subgroupSize;
  }
  for (int i = 0; i < 3; i++)
    be->max_groups[i] = l->maxComputeWorkGroupCount[i];
  be->block_size = VK_BLOCK_SIZE < be->max_allocation ? VK_BLOCK_SIZE : be->max_allocation;
}

/* The IQ3 grids as one storage buffer rather than GLSL constant arrays: a dynamically indexed
 * constant array of 256 or 512 words is copied into every invocation's private memory (glslang
 * makes it a function variable), which made lavapipe take a minute to compile each IQ3_S
 * pipeline; a buffer read costs one load. */
static int vk_upload_iq_grids(struct backend *be, struct aug_err *err) {
  size_t n_xxs = sizeof quant_iq3xxs_grid, n_s = sizeof quant_iq3s_grid;
  int rc = vk_buffer_create(be, BACKEND_BUFFER_COMPUTE, n_xxs + n_s, &be->iq_grids, err);
  if (rc) return rc;
  rc = vk_buffer_upload(be, be->iq_grids, 0, quant_iq3xxs_grid, n_xxs);
  if (rc == 0) rc = vk_buffer_upload(be, be->iq_grids, n_xxs, quant_iq3s_grid, n_s);
  if (rc) return aug_err_set(err, rc, "vulkan: cannot upload the IQ3 grids");
  return 0;
}

static int vk_create_objects(struct backend *be, struct aug_err *err) {
  VkDescriptorSetLayoutBinding lb[VK_BINDINGS];
  for (int i = 0; i < VK_BINDINGS; i++) {
    lb[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .descriptorCount = 1,
                                           .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
  }
  VkDescriptorSetLayoutCreateInfo li = {.sType =
                                            VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                        .bindingCount = VK_BINDINGS,
                                        .pBindings = lb};
  VkResult r = vkCreateDescriptorSetLayout(be->device, &li, NULL, &be->set_layout);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreateDescriptorSetLayout");
  VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
                            .offset = 0,
                            .size = VK_PUSH_WORDS * sizeof(uint32_t)};
  VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .setLayoutCount = 1,
                                    .pSetLayouts = &be->set_layout,
                                    .pushConstantRangeCount = 1,
                                    .pPushConstantRanges = &pr};
  r = vkCreatePipelineLayout(be->device, &pli, NULL, &be->pipeline_layout);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreatePipelineLayout");
  VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                 .queueFamilyIndex = be->queue_family};
  r = vkCreateCommandPool(be->device, &cpi, NULL, &be->cmd_pool);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreateCommandPool");
  VkCommandBuffer cmds[VK_FRAMES + 1];
  VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                     .commandPool = be->cmd_pool,
                                     .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                     .commandBufferCount = VK_FRAMES + 1};
  r = vkAllocateCommandBuffers(be->device, &cai, cmds);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkAllocateCommandBuffers");
  VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                             .descriptorCount = VK_SETS_PER_FRAME * VK_BINDINGS};
  VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                    .maxSets = VK_SETS_PER_FRAME,
                                    .poolSizeCount = 1,
                                    .pPoolSizes = &ps};
  for (int i = 0; i < VK_FRAMES; i++) {
    struct vk_frame *f = &be->frames[i];
    f->cmd = cmds[i];
    r = vkCreateFence(be->device, &fi, NULL, &f->fence);
    if (r == VK_SUCCESS) r = vkCreateDescriptorPool(be->device, &dpi, NULL, &f->pool);
    if (r != VK_SUCCESS) return vk_fail(err, r, "frame fence/descriptor pool");
    int rc = vk_host_buffer_create(be, VK_ARENA_SIZE, &f->arena, err);
    if (rc) return rc;
  }
  be->transfer_cmd = cmds[VK_FRAMES];
  r = vkCreateFence(be->device, &fi, NULL, &be->transfer_fence);
  if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreateFence");
  int rc = vk_host_buffer_create(be, VK_STAGING_SIZE, &be->staging, err);
  if (rc) return rc;
  rc = vk_buffer_create(be, BACKEND_BUFFER_COMPUTE, 256, &be->dummy, err);
  if (rc) return rc;
  return vk_upload_iq_grids(be, err);
}

int vk_device_create(const char *options, struct backend **out, struct aug_err *err) {
  *out = NULL;
  struct vk_options opt;
  int rc = vk_parse_options(options, &opt, err);
  if (rc) return rc;
  struct backend *be = aug_calloc(1, sizeof *be);
  if (!be) return aug_err_set(err, AUG_ENOMEM, "vulkan: cannot allocate the backend");
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                           .pApplicationName = "augury",
                           .pEngineName = "augury",
                           .apiVersion = VK_API_VERSION_1_2};
  VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                              .pApplicationInfo = &app};
  VkResult r = vkCreateInstance(&ici, NULL, &be->instance);
  if (r != VK_SUCCESS) {
    aug_free(be);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
      return aug_err_set(err, AUG_ENOTFOUND, "vulkan: no Vulkan driver (vkCreateInstance: %s)",
                         vk_result_name(r));
    }
    return vk_fail(err, r, "vkCreateInstance");
  }
  rc = vk_pick_device(be, opt.device, err);
  if (rc) {
    vk_device_destroy(be);
    return rc;
  }
  vk_read_limits(be, &opt);
  be->fail_alloc = (uint64_t)opt.fail_alloc;
  be->fail_submit = (uint64_t)opt.fail_submit;
  vk_compute_family(be->physical, &be->queue_family);
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                .queueFamilyIndex = be->queue_family,
                                .queueCount = 1,
                                .pQueuePriorities = &prio};
  VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            .queueCreateInfoCount = 1,
                            .pQueueCreateInfos = &qi};
  r = vkCreateDevice(be->physical, &dci, NULL, &be->device);
  if (r != VK_SUCCESS) {
    vk_device_destroy(be);
    return vk_fail(err, r, "vkCreateDevice");
  }
  vkGetDeviceQueue(be->device, be->queue_family, 0, &be->queue);
  rc = vk_create_objects(be, err);
  if (rc) {
    vk_device_destroy(be);
    return rc;
  }
  *out = be;
  return 0;
}

void vk_device_destroy(struct backend *be) {
  if (!be) return;
  if (be->device) {
    vkDeviceWaitIdle(be->device);
    struct backend_buffer *own[] = {be->dummy, be->iq_grids};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
      if (!own[i]) continue;
      vkDestroyBuffer(be->device, own[i]->buffer, NULL);
      vk_block_release(be, own[i]->block);
      aug_free(own[i]);
    }
    for (uint32_t i = 0; i < be->n_pipelines; i++)
      vkDestroyPipeline(be->device, be->pipelines[i].pipeline, NULL);
    aug_free(be->pipelines);
    for (int i = 0; i < 32; i++)
      if (be->modules[i]) vkDestroyShaderModule(be->device, be->modules[i], NULL);
    for (int i = 0; i < VK_FRAMES; i++) {
      struct vk_frame *f = &be->frames[i];
      if (f->fence) vkDestroyFence(be->device, f->fence, NULL);
      if (f->pool) vkDestroyDescriptorPool(be->device, f->pool, NULL);
      vk_host_buffer_destroy(be, &f->arena);
    }
    if (be->transfer_fence) vkDestroyFence(be->device, be->transfer_fence, NULL);
    vk_host_buffer_destroy(be, &be->staging);
    if (be->cmd_pool) vkDestroyCommandPool(be->device, be->cmd_pool, NULL);
    if (be->pipeline_layout) vkDestroyPipelineLayout(be->device, be->pipeline_layout, NULL);
    if (be->set_layout) vkDestroyDescriptorSetLayout(be->device, be->set_layout, NULL);
    /* buffers the caller leaked still pin their blocks */
    while (be->blocks) {
      struct vk_block *b = be->blocks;
      be->blocks = b->next;
      vkFreeMemory(be->device, b->memory, NULL);
      aug_free(b);
    }
    vkDestroyDevice(be->device, NULL);
  }
  if (be->instance) vkDestroyInstance(be->instance, NULL);
  aug_free(be);
}
