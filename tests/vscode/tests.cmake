# The VS Code extension (editors/vscode). vscode/deps installs its npm packages from the committed
# lockfile (scripts/vscode-deps: `npm ci`, once per lockfile) for the others: the strict type
# check, the extension's logic with a mocked `vscode` module against the real server (without a
# model: version refusals, missing binary and model; with AUGURY_TEST_MODEL_SMALL, label slow:
# completion, status bar, explain, toggle, restart), and the .vsix built by @vscode/vsce and
# checked. The real-VS-Code suite (code-server + chromium, tests/vscode/real) is label heavy and
# skips (77) unless `scripts/vscode-deps --real` installed its tools.
find_program(AUGURY_NODE node)
find_program(AUGURY_NPM npm)
find_package(Python3 COMPONENTS Interpreter)
if(NOT AUGURY_NODE OR NOT AUGURY_NPM OR NOT Python3_Interpreter_FOUND)
  message(WARNING "node, npm or python3 not found: the VS Code extension tests are not registered")
  return()
endif()
set(AUGURY_VSCODE_DIR ${CMAKE_SOURCE_DIR}/editors/vscode)

add_test(NAME vscode/deps COMMAND ${CMAKE_SOURCE_DIR}/scripts/vscode-deps)
set_tests_properties(vscode/deps PROPERTIES FIXTURES_SETUP vscode_deps TIMEOUT 900)

add_test(NAME vscode/typecheck COMMAND ${AUGURY_NPM} run --silent check
         WORKING_DIRECTORY ${AUGURY_VSCODE_DIR})
set_tests_properties(vscode/typecheck PROPERTIES FIXTURES_REQUIRED vscode_deps TIMEOUT 300)

# The model suite skips (77) without AUGURY_TEST_MODEL_SMALL unless AUGURY_REQUIRE_MODELS=1.
set(vscode_skip_nomodel "")
set(vscode_skip_model "[ -n \"$AUGURY_TEST_MODEL_SMALL\" ] || [ \"$AUGURY_REQUIRE_MODELS\" = 1 ] || { echo 'skip: AUGURY_TEST_MODEL_SMALL is not set'; exit 77; }; ")
foreach(suite nomodel model)
  add_test(NAME vscode/extension_${suite}
           COMMAND sh -c "${vscode_skip_${suite}}${AUGURY_NODE} esbuild.mjs --tests && ${AUGURY_NODE} --test out/test/"
           WORKING_DIRECTORY ${AUGURY_VSCODE_DIR})
  set_tests_properties(vscode/extension_${suite} PROPERTIES
    FIXTURES_REQUIRED vscode_deps TIMEOUT 600 RESOURCE_LOCK vscode_test_bundle SKIP_RETURN_CODE 77
    ENVIRONMENT "AUGURY_BIN=$<TARGET_FILE:augury>;AUGURY_VSCODE_SUITES=${suite}")
endforeach()
set_tests_properties(vscode/extension_model PROPERTIES LABELS slow)

add_test(NAME vscode/package
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/package_test.py
                 ${AUGURY_VSCODE_DIR} ${CMAKE_BINARY_DIR}/vscode)
set_tests_properties(vscode/package PROPERTIES FIXTURES_REQUIRED vscode_deps TIMEOUT 300)

add_test(NAME vscode/real
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/real/run.sh ${CMAKE_BINARY_DIR}
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(vscode/real PROPERTIES
  FIXTURES_REQUIRED vscode_deps TIMEOUT 900 SKIP_RETURN_CODE 77 LABELS "heavy;slow")
