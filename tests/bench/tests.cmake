# Benchmarks are executables, not tests: built on request, never registered with ctest.
#   cmake --build build --target bench_kernels && ./build/bench_kernels [threads]
add_executable(bench_kernels EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/bench/bench_kernels.c)
target_link_libraries(bench_kernels PRIVATE augury_lib)
set_target_properties(bench_kernels PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
#   cmake --build build --target bench_vulkan && ./build/bench_vulkan [vulkan options] [rounds]
if(AUGURY_HAVE_VULKAN)
  add_executable(bench_vulkan EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/bench/bench_vulkan.c)
  target_link_libraries(bench_vulkan PRIVATE augury_lib)
  set_target_properties(bench_vulkan PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  #   cmake --build build --target bench_gpu_agreement && ./build/bench_gpu_agreement MODEL
  add_executable(bench_gpu_agreement EXCLUDE_FROM_ALL
                 ${CMAKE_SOURCE_DIR}/tests/bench/bench_gpu_agreement.c)
  target_link_libraries(bench_gpu_agreement PRIVATE augury_lib)
  set_target_properties(bench_gpu_agreement PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
endif()
