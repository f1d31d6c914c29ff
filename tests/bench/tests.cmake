# Benchmarks are executables, not tests: built on request, never registered with ctest.
#   cmake --build build --target bench_kernels && ./build/bench_kernels [threads]
add_executable(bench_kernels EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/bench/bench_kernels.c)
target_link_libraries(bench_kernels PRIVATE augury_lib)
set_target_properties(bench_kernels PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
