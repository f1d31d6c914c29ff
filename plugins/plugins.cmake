# plugins/: the remote completion provider speaks HTTP through libcurl; the host opens plugin
# libraries with dlopen.
pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl)
target_link_libraries(augury_lib PUBLIC PkgConfig::LIBCURL ${CMAKE_DL_LIBS})

# The workspace index on a real tree (a benchmark: built on request only).
#   cmake --build build --target bench_index && ./build/bench_index [ROOT]
add_executable(bench_index EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/bench/index/bench_index.c)
target_link_libraries(bench_index PRIVATE augury_lib)
set_target_properties(bench_index PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
