# Command-line checks (tests/cli/cli_tests.py, Python standard library only): usage errors, the
# hostile GGUF corpus through `augury info`, `info --json` against the gguf package's listing of
# the real models, `tokenize` against llama.cpp's ids, `synth` end to end, and `generate`/`bench` (greedy
# determinism, the timings line, the bench --json schema). The cases that need
# a real model read AUGURY_TEST_MODEL(_SMALL) and skip (77) unless AUGURY_REQUIRE_MODELS=1.
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(WARNING "python3 not found: the CLI tests are not registered (scripts/bootstrap installs it)")
else()
  foreach(case usage model_check bad_gguf info_json tokenize synth generate_bench version)
    add_test(NAME cli/${case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/cli/cli_tests.py
              ${CMAKE_BINARY_DIR}/augury ${AUGURY_FIXTURES_DIR} ${case})
    set_tests_properties(cli/${case} PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77)
  endforeach()
endif()
