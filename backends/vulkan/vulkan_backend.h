/* The Vulkan backend's table (backends/vulkan/, built when CMake finds Vulkan and glslc). Vulkan
 * 1.2 compute on any device with a compute queue: discrete GPUs first, then integrated, virtual
 * and CPU devices (Mesa's lavapipe, which the tests run on). options, comma-separated:
 * "device=N" (index in vkEnumeratePhysicalDevices order; absent = the preferred one),
 * "max_binding=BYTES" (use bindings no larger than this, capped by the device's
 * maxStorageBufferRange: lets tests exercise the split paths on small tensors),
 * "max_buffer=BYTES" (refuse buffers larger than this, capped by the device's largest
 * allocation: lets tests exercise weights spread over several buffers), "as_gpu=1" (do not
 * report a CPU implementation as one: lets tests exercise automatic placement on lavapipe),
 * "subgroups=0" (take the shaders that need no subgroup operations, as on a device without
 * them: lets tests check both), "fail_alloc=N" / "fail_submit=N" (fault injection: the N-th
 * buffer allocation fails with AUG_ENOMEM, the N-th submit loses the device, AUG_EDEVICE from
 * then on: lets tests check that a GPU fault never takes the engine down). */
#ifndef AUGURY_BACKENDS_VULKAN_VULKAN_BACKEND_H
#define AUGURY_BACKENDS_VULKAN_VULKAN_BACKEND_H

#include "backends/backend.h"

const struct backend_ops *backend_vulkan_ops(void);

#endif
