# scripts/fetch-grammars and grammars/grammars.cmake (tests/grammars/fetch_test.sh): a warm cache
# needs no network; a missing or mismatched package fails the configure step with a message that
# names the package and scripts/fetch-grammars.
if(AUGURY_GRAMMARS_CACHE_DIR)
  foreach(case warm_cache_offline missing_cache wrong_sum)
    add_test(NAME grammars/fetch_${case}
      COMMAND bash ${CMAKE_SOURCE_DIR}/tests/grammars/fetch_test.sh ${case}
              ${CMAKE_SOURCE_DIR} ${AUGURY_GRAMMARS_CACHE_DIR} ${CMAKE_GENERATOR})
    set_tests_properties(grammars/fetch_${case} PROPERTIES TIMEOUT 300)
  endforeach()
endif()
