# `augury plan` end to end (tests/plan/plan_cli_test.py, Python standard library only): usage
# errors, the memory table and JSON schema on small synth models, other quants found beside the
# model and in a Hugging Face cache layout and compared (iq3_xs: an IQ3_XS that fits whole beside a
# Q4_K_M that does not), and the default model at --vram 4G / 1G (AUGURY_TEST_MODEL; skipped (77)
# without it unless AUGURY_REQUIRE_MODELS=1).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  foreach(case usage siblings hf_cache iq3_xs default_model)
    add_test(NAME plan/${case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/plan/plan_cli_test.py
              ${CMAKE_BINARY_DIR}/augury ${case})
    set_tests_properties(plan/${case} PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
    # augury plan opens the Vulkan device (lavapipe here), whose exit-time allocation
    # LeakSanitizer cannot name (CMakeLists.txt): no leak check under the sanitizers.
    if(AUGURY_SANITIZE)
      set_tests_properties(plan/${case} PROPERTIES ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
    endif()
  endforeach()
endif()
