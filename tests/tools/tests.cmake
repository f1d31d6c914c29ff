# Debugging tools, built on demand:
#   cmake --build build --target dump_forward
add_executable(dump_forward EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/tools/dump_forward.c)
target_link_libraries(dump_forward PRIVATE augury_lib)
set_target_properties(dump_forward PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
