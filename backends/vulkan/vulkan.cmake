# Included by the top-level CMakeLists.txt when the Vulkan backend is built. Compiles every
# shaders/*.comp with glslc into SPIR-V in the build dir, then embeds all of them into one
# generated C file (vk_spirv_data.c: arrays + a name table, see vk_spirv.h). Nothing generated is
# committed. Sets AUGURY_VULKAN_SOURCES and AUGURY_VULKAN_GENERATED_DIR for the caller.
set(AUGURY_VULKAN_GENERATED_DIR ${CMAKE_BINARY_DIR}/generated/vulkan)
file(MAKE_DIRECTORY ${AUGURY_VULKAN_GENERATED_DIR})
set(vk_dir ${CMAKE_SOURCE_DIR}/backends/vulkan)
file(GLOB vk_shaders CONFIGURE_DEPENDS ${vk_dir}/shaders/*.comp)
file(GLOB vk_shader_includes CONFIGURE_DEPENDS ${vk_dir}/shaders/*.glsl)
set(vk_spv_files)
foreach(shader ${vk_shaders})
  get_filename_component(name ${shader} NAME_WE)
  set(spv ${AUGURY_VULKAN_GENERATED_DIR}/${name}.spv)
  add_custom_command(OUTPUT ${spv}
    COMMAND ${AUGURY_GLSLC} --target-env=vulkan1.2 -O -Werror -I ${vk_dir}/shaders
            -o ${spv} ${shader}
    DEPENDS ${shader} ${vk_shader_includes}
    COMMENT "glslc ${name}.comp"
    VERBATIM)
  list(APPEND vk_spv_files ${spv})
endforeach()
set(vk_embedded ${AUGURY_VULKAN_GENERATED_DIR}/vk_spirv_data.c)
add_custom_command(OUTPUT ${vk_embedded}
  COMMAND ${CMAKE_COMMAND} -DOUT=${vk_embedded} "-DINPUTS=${vk_spv_files}"
          -P ${vk_dir}/embed_spirv.cmake
  DEPENDS ${vk_spv_files} ${vk_dir}/embed_spirv.cmake
  COMMENT "embedding the SPIR-V modules"
  VERBATIM)
file(GLOB AUGURY_VULKAN_SOURCES CONFIGURE_DEPENDS ${vk_dir}/*.c)
list(APPEND AUGURY_VULKAN_SOURCES ${vk_embedded})
