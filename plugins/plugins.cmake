# plugins/: the remote completion provider speaks HTTP through libcurl; the host opens plugin
# libraries with dlopen.
pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl)
target_link_libraries(augury_lib PUBLIC PkgConfig::LIBCURL ${CMAKE_DL_LIBS})
