# Headless Neovim end-to-end tests of the plugin (editors/nvim). Each test is a Lua script run with
# `nvim --headless -u NONE -i NONE` (Neovim 0.7.2 has no -l); it exits with :cq on failure.
# The fake-server tests always run; real_no_model runs the augury executable with a missing model;
# the real-model acceptance test needs the executable and AUGURY_TEST_MODEL_SMALL (skips with 77
# without them unless AUGURY_REQUIRE_MODELS=1; label slow).
find_program(AUGURY_NVIM nvim)
find_package(Python3 COMPONENTS Interpreter)

if(NOT AUGURY_NVIM OR NOT Python3_Interpreter_FOUND)
  message(WARNING "nvim or python3 not found: the Neovim end-to-end tests are not registered (scripts/bootstrap installs them)")
else()
  set(AUGURY_E2E_DIR ${CMAKE_SOURCE_DIR}/tests/e2e)
  set(AUGURY_E2E_ENV
    "AUGURY_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    "AUGURY_PYTHON=${Python3_EXECUTABLE}"
    "AUGURY_BIN=${CMAKE_BINARY_DIR}/augury")
  foreach(name util plugin keymaps explain encoding missing_binary health real_no_model real_model)
    add_test(NAME e2e/nvim_${name}
      COMMAND ${AUGURY_NVIM} --headless -u NONE -i NONE
              --cmd "set rtp+=${CMAKE_SOURCE_DIR}/editors/nvim"
              -c "luafile ${AUGURY_E2E_DIR}/test_${name}.lua"
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(e2e/nvim_${name} PROPERTIES ENVIRONMENT "${AUGURY_E2E_ENV}" TIMEOUT 120)
  endforeach()
  # Another Neovim to run the same plugin tests with (e.g. -DAUGURY_E2E_NVIM_EXTRA=/opt/nvim/bin/nvim
  # for 0.10+, where ghost text is inline): tests e2e/nvim_extra_<name>. A relocated build finds its
  # runtime next to it (../share/nvim/runtime).
  if(AUGURY_E2E_NVIM_EXTRA)
    get_filename_component(extra_bin_dir ${AUGURY_E2E_NVIM_EXTRA} DIRECTORY)
    set(extra_env ${AUGURY_E2E_ENV})
    if(EXISTS ${extra_bin_dir}/../share/nvim/runtime)
      get_filename_component(extra_runtime ${extra_bin_dir}/../share/nvim/runtime ABSOLUTE)
      list(APPEND extra_env "VIMRUNTIME=${extra_runtime}")
    endif()
    foreach(name util plugin keymaps explain encoding missing_binary health real_no_model)
      add_test(NAME e2e/nvim_extra_${name}
        COMMAND ${AUGURY_E2E_NVIM_EXTRA} --headless -u NONE -i NONE
                --cmd "set rtp+=${CMAKE_SOURCE_DIR}/editors/nvim"
                -c "luafile ${AUGURY_E2E_DIR}/test_${name}.lua"
        WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
      set_tests_properties(e2e/nvim_extra_${name} PROPERTIES
        ENVIRONMENT "${extra_env}" TIMEOUT 120 SKIP_RETURN_CODE 77)
    endforeach()
  endif()
  # The real server without a model: fast, needs only the executable.
  set_tests_properties(e2e/nvim_real_no_model PROPERTIES SKIP_RETURN_CODE 77)
  # The real server loads the model in the background, then completes on the CPU.
  set_tests_properties(e2e/nvim_real_model PROPERTIES
    TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS slow)
endif()
