# The example plugin (tests/fixtures/plugins/example_context.c) as loadable modules, one per
# variant the tests need: as written, built for another ABI, slow, failing; and as a completion
# provider, answering, slow and failing. They go to
# <build>/test-plugins, where tests/unit/plugins/test_host.c and the plugin_* LSP transcripts
# (AUGURY_TEST_PLUGINS) find them. Outside plugins/ because plugins/**/*.c is libaugury's.
set(AUGURY_TEST_PLUGIN_DIR ${CMAKE_BINARY_DIR}/test-plugins)

function(augury_example_plugin target)
  add_library(${target} MODULE ${CMAKE_SOURCE_DIR}/tests/fixtures/plugins/example_context.c)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  if(ARGN)
    target_compile_definitions(${target} PRIVATE ${ARGN})
  endif()
  set_target_properties(${target} PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY
                        ${AUGURY_TEST_PLUGIN_DIR})
  if(TARGET unit_plugins_test_host)
    add_dependencies(unit_plugins_test_host ${target})
  endif()
endfunction()

augury_example_plugin(example_context)
augury_example_plugin(example_abi EXAMPLE_ABI=999 EXAMPLE_NAME="example-abi")
augury_example_plugin(example_slow EXAMPLE_SLOW_MS=400 EXAMPLE_NAME="example-slow")
augury_example_plugin(example_fail EXAMPLE_FAIL=1 EXAMPLE_NAME="example-fail")
augury_example_plugin(example_complete EXAMPLE_COMPLETE=1 EXAMPLE_NAME="example-complete")
augury_example_plugin(example_complete_slow EXAMPLE_COMPLETE=1 EXAMPLE_SLOW_MS=150
                      EXAMPLE_NAME="example-complete-slow")
augury_example_plugin(example_complete_fail EXAMPLE_COMPLETE=1 EXAMPLE_FAIL=1
                      EXAMPLE_NAME="example-complete-fail")
