# Every cmocka test program gets this: VOLT_TEST_FILTER=glob selects tests.
set(VOLT_TEST_FILTER_SRC ${CMAKE_CURRENT_LIST_DIR}/volt-test-filter.c)

# volt_unit_test(NAME src... LIBS lib...): a cmocka test beside the code it tests.
function(volt_unit_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "LIBS;LABELS" ${ARGN})
  if(NOT CMOCKA_FOUND)
    message(WARNING "cmocka not found: skipping ${name}")
    return()
  endif()
  add_executable(${name} ${T_UNPARSED_ARGUMENTS} ${VOLT_TEST_FILTER_SRC})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "unit;${T_LABELS}")
endfunction()

# volt_fuzz_target(NAME src LIBS lib... [CORPUS dir]): a libFuzzer target,
# built only with -DVOLT_FUZZ=ON (clang). The seed corpus directory is
# recorded so the CI fuzz run can find it (see contrib/ci/fuzz.sh).
function(volt_fuzz_target name src)
  cmake_parse_arguments(F "" "CORPUS" "LIBS" ${ARGN})
  if(NOT VOLT_FUZZ)
    return()
  endif()
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  set_property(GLOBAL APPEND PROPERTY VOLT_FUZZ_TARGETS "${name}=${F_CORPUS}")
endfunction()
