/* The SPIR-V modules compiled from shaders/NAME.comp at build time (vulkan.cmake,
 * embed_spirv.cmake) and embedded in the binary: a constant table by module name. Generated data,
 * never committed. */
#ifndef AUGURY_BACKENDS_VULKAN_VK_SPIRV_H
#define AUGURY_BACKENDS_VULKAN_VK_SPIRV_H

#include <stddef.h>
#include <stdint.h>

struct vk_spirv {
  const char *name; /* the shader's file name without .comp: "matmul_vec" */
  const uint32_t *code;
  size_t size; /* bytes */
};

extern const struct vk_spirv vk_spirv_table[];
extern const unsigned vk_spirv_count;

#endif
