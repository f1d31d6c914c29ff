# LSP transcripts (tests/lsp/transcripts/*.json) replayed against `augury lsp` by driver.py, once
# plainly and once under valgrind (memcheck, leaks included) unless the transcript says
# "valgrind": false. Transcripts named model_* need AUGURY_TEST_MODEL_SMALL and skip (77) without
# it unless AUGURY_REQUIRE_MODELS=1; their valgrind runs (and those of plugin_*, which load the model too) take minutes and are labelled slow. valgrind reports errors with status 86, not 1, because
# some transcripts expect the server's own exit status 1 (exit without shutdown, EOF, parent death).
find_program(AUGURY_PYTHON3 python3)
find_program(AUGURY_VALGRIND valgrind)
if(NOT AUGURY_PYTHON3)
  message(WARNING "python3 not found: the LSP transcript tests are not registered")
  return()
endif()
file(GLOB AUGURY_LSP_TRANSCRIPTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/transcripts/*.json)
foreach(transcript ${AUGURY_LSP_TRANSCRIPTS})
  get_filename_component(name ${transcript} NAME_WE)
  add_test(NAME lsp/${name}
           COMMAND ${AUGURY_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/driver.py
                   --augury $<TARGET_FILE:augury> ${transcript})
  set_tests_properties(lsp/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
                       ENVIRONMENT "AUGURY_TEST_PLUGINS=${CMAKE_BINARY_DIR}/test-plugins")
  # Mesa's lavapipe leaves an allocation at exit that LeakSanitizer cannot name (CMakeLists.txt):
  # no leak check for the transcripts that open it; ASan and UBSan still run.
  if(AUGURY_SANITIZE AND name MATCHES "gpu")
    set_tests_properties(lsp/${name} PROPERTIES ENVIRONMENT
      "AUGURY_TEST_PLUGINS=${CMAKE_BINARY_DIR}/test-plugins;ASAN_OPTIONS=detect_leaks=0")
  endif()
  file(READ ${transcript} transcript_text)
  string(JSON under_valgrind ERROR_VARIABLE no_key GET "${transcript_text}" valgrind)
  if(no_key)
    set(under_valgrind ON)
  endif()
  # valgrind cannot run an ASan binary.
  if(AUGURY_VALGRIND AND NOT AUGURY_SANITIZE AND under_valgrind)
    add_test(NAME lsp_valgrind/${name}
             COMMAND ${AUGURY_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/driver.py
                     --augury $<TARGET_FILE:augury>
                     "--wrapper=${AUGURY_VALGRIND} -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=86"
                     --timeout-scale 30 ${transcript})
    set_tests_properties(lsp_valgrind/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 3600
                         ENVIRONMENT "AUGURY_TEST_PLUGINS=${CMAKE_BINARY_DIR}/test-plugins")
    if(name MATCHES "^(model|plugin)_")
      set_tests_properties(lsp_valgrind/${name} PROPERTIES LABELS slow)
    endif()
  endif()
endforeach()
