/* Private to backends/vulkan/: the backend instance (device, limits, memory blocks, the two
 * command frames ops are recorded into, the pipeline cache) and the helpers the op drivers in
 * vk_ops.c use to bind tensors and record dispatches. Invariants: every op is recorded into the
 * current frame followed by a full compute barrier, so ops see each other's writes in order; a
 * frame's descriptor sets and host-parameter arena are reused only after its fence signalled.
 * Thread ownership: a struct backend belongs to the engine thread that created it. */
#ifndef AUGURY_BACKENDS_VULKAN_VK_INTERNAL_H
#define AUGURY_BACKENDS_VULKAN_VK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "backends/backend.h"

/* Storage buffers per dispatch (every pipeline shares one layout; unused ones get a dummy). The
 * Vulkan minimum of maxPerStageDescriptorStorageBuffers is 4: devices below 5 are refused. */
#define VK_BINDINGS 5
/* The binding of the IQ grid table in matmul_vec, matmul_vec_sg, matmul_tile and get_rows (their
 * tensors take 0..2). */
#define VK_GRID_BINDING 3
/* Push constants per dispatch: 128 bytes is the Vulkan minimum of maxPushConstantsSize. */
#define VK_PUSH_WORDS 32
#define VK_FRAMES 2
#define VK_SETS_PER_FRAME 256
#define VK_MAX_SPEC 4

/* One VkDeviceMemory. Small buffers are bump-allocated from shared blocks, freed as a whole when
 * their last buffer goes (weights, KV and scratch are allocated once at load); big buffers get a
 * dedicated block. */
struct vk_block {
  VkDeviceMemory memory;
  VkDeviceSize size, used;
  uint32_t live; /* buffers still bound into it */
  uint32_t type_index;
  void *mapped; /* host-visible blocks only */
  struct vk_block *next;
};

struct backend_buffer {
  VkBuffer buffer;
  VkDeviceSize size;     /* bytes the caller asked for */
  VkDeviceSize capacity; /* size rounded up (bindings may read the last word) */
  struct vk_block *block;
  enum backend_buffer_kind kind;
};

/* A host-visible buffer for staging copies and per-frame host parameters (positions, ids). */
struct vk_host_buffer {
  VkBuffer buffer;
  VkDeviceMemory memory;
  VkDeviceSize size;
  void *map;
};

struct vk_frame {
  VkCommandBuffer cmd;
  VkFence fence;
  VkDescriptorPool pool;
  uint32_t sets_used;
  struct vk_host_buffer arena; /* host parameters of the ops recorded in this frame */
  VkDeviceSize arena_used;
  bool recording; /* begun, not yet submitted */
  bool pending;   /* submitted, fence not yet waited on */
};

struct vk_pipeline {
  char shader[32];
  uint32_t spec[VK_MAX_SPEC];
  VkPipeline pipeline;
};

struct backend {
  VkInstance instance;
  VkPhysicalDevice physical;
  VkDevice device;
  VkQueue queue;
  uint32_t queue_family;
  VkPhysicalDeviceProperties props;
  VkPhysicalDeviceMemoryProperties mem_props;
  /* limits read from the device (never assumed) */
  VkDeviceSize max_binding;    /* maxStorageBufferRange, or less with "max_binding=" */
  VkDeviceSize max_allocation; /* maxMemoryAllocationSize (Vulkan 1.1) */
  bool cpu_device; /* a CPU implementation (lavapipe), unless the as_gpu option says otherwise */
  VkDeviceSize max_buffer;    /* min(max_allocation, maxBufferSize when known) */
  VkDeviceSize binding_align; /* minStorageBufferOffsetAlignment */
  uint32_t shared_memory;     /* maxComputeSharedMemorySize */
  uint32_t subgroup_size;
  uint32_t subgroup_rows;  /* rows per workgroup of matmul_vec_sg; 0: matmul_vec (no subgroups) */
  uint32_t max_groups[3];  /* maxComputeWorkGroupCount */
  VkDeviceSize block_size; /* shared memory blocks */
  uint32_t device_type_index, host_type_index;
  struct vk_block *blocks;
  VkDeviceSize allocated; /* bytes of device memory we hold */

  VkCommandPool cmd_pool;
  struct vk_frame frames[VK_FRAMES];
  uint32_t frame; /* the one ops record into */
  VkCommandBuffer transfer_cmd;
  VkFence transfer_fence;
  struct vk_host_buffer staging;

  VkDescriptorSetLayout set_layout;
  VkPipelineLayout pipeline_layout;
  VkShaderModule modules[32]; /* by index in vk_spirv_table, created on first use */
  struct vk_pipeline *pipelines;
  uint32_t n_pipelines, cap_pipelines;

  struct backend_buffer *dummy; /* bound to unused slots */
  /* quant_iq3xxs_grid then quant_iq3s_grid (engine/quant.h), uploaded at create: binding
   * VK_GRID_BINDING of the shaders that dequantize weights (shaders/dequant.glsl) */
  struct backend_buffer *iq_grids;
  bool decode_order; /* backend_ops.set_decode_order: batches take the matvec path */
  int lost;          /* sticky: a submit or wait failed (AUG_EDEVICE); every later op fails */
  /* Fault injection (options fail_alloc=N, fail_submit=N): the N-th buffer allocation fails with
   * AUG_ENOMEM, the N-th submit loses the device, as a real driver may at any time. */
  uint64_t fail_alloc, fail_submit, n_allocs, n_submits;
  char lost_msg[256];
};

/* A tensor's bytes as a descriptor range: the buffer from offset (aligned down to
 * minStorageBufferOffsetAlignment) for range bytes, the tensor's first byte at base within it. */
struct vk_binding {
  VkBuffer buffer;
  VkDeviceSize offset, range;
  uint32_t base; /* bytes from offset to the data */
};

/* Device, memory and submission (vk_device.c). */
int vk_device_create(const char *options, struct backend **out, struct aug_err *err);
void vk_device_destroy(struct backend *be);
int vk_buffer_create(struct backend *be, enum backend_buffer_kind kind, size_t size,
                     struct backend_buffer **out, struct aug_err *err);
void vk_buffer_destroy(struct backend *be, struct backend_buffer *buf);
int vk_buffer_upload(struct backend *be, struct backend_buffer *buf, size_t offset, const void *src,
                     size_t size);
int vk_buffer_download(struct backend *be, struct backend_buffer *buf, size_t offset, void *dst,
                       size_t size);
/* Submit the current frame and wait for every frame; 0 or the sticky device error. */
int vk_flush(struct backend *be, struct aug_err *err);

/* Bytes [first, end) of buf as a binding; AUG_ERANGE when they exceed be->max_binding. */
int vk_bind_range(struct backend *be, struct backend_buffer *buf, size_t first, size_t end,
                  struct vk_binding *b);
/* Makes room in the current frame for n_sets dispatches and param_bytes of host parameters,
 * submitting it first when it lacks them. Every op calls it before its first vk_host_param or
 * vk_dispatch, so that an op never straddles two frames. */
int vk_reserve(struct backend *be, uint32_t n_sets, size_t param_bytes);
/* size bytes of the current frame's arena (aligned for a binding) as a binding, filled from data
 * when it is not NULL; *map (if map is not NULL) is where the caller may write them instead.
 * Valid until the frame's fence signals, which is after the ops recorded with it ran. May
 * submit the frame to make room, so take it before recording the dispatch that uses it. */
int vk_host_param(struct backend *be, const void *data, size_t size, struct vk_binding *b,
                  void **map);
/* Records one dispatch of shader (specialised by spec[VK_MAX_SPEC]) with the bindings (NULL
 * entries are bound to a dummy), push[VK_PUSH_WORDS] and groups[3] workgroups, followed by a
 * compute-to-compute barrier. groups beyond maxComputeWorkGroupCount are the caller's to split
 * (vk_groups_2d). */
int vk_dispatch(struct backend *be, const char *shader, const uint32_t spec[VK_MAX_SPEC],
                const struct vk_binding *bindings[VK_BINDINGS], const uint32_t *push,
                size_t push_words, const uint32_t groups[3]);
/* n workgroups as x * y <= maxComputeWorkGroupCount[0..1] (the shader folds id.y * num.x + id.x
 * back into one index and skips indices >= n). */
void vk_groups_2d(const struct backend *be, uint64_t n, uint32_t groups[3]);

#endif
