# Every test is its own executable: test/<module>/test_*.c builds to
# test_<module>_<name>; test/<module>/test_*.sh runs under bash with the
# secmig binary in $SECMIG. Exit 0 pass, 1 fail, 77 skip.
# The TSan stage's tests (label tsan): the threads of the core that the
# engine's destination and source run on -- leaves set by channel threads
# while a hasher folds (test_base_merkle: the destination's hasher and
# channel threads), the channel send queue, io_uring and receive threads
# (pipeline), sessions with their data channels (session), the session's
# one liveness record fed by every channel (liveness). They link
# secmig_core only, so the stage compiles base, proto and transport.
set(SMG_TSAN_TESTS test_base_merkle test_transport_pipeline test_transport_session
  test_transport_liveness)
# Test tooling that is no part of the product: smg-nettool (the network
# bed's proxy, capture, probe, udp-echo), in $SMG_NETTOOL for every test.
add_executable(smg-nettool ${CMAKE_SOURCE_DIR}/test/tools/nettool.c
  ${CMAKE_SOURCE_DIR}/test/tools/net_proxy.c ${CMAKE_SOURCE_DIR}/test/tools/net_tools.c)
target_link_libraries(smg-nettool PRIVATE secmig_lib)
file(GLOB SMG_TEST_DIRS LIST_DIRECTORIES true ${CMAKE_SOURCE_DIR}/test/*)
foreach(d ${SMG_TEST_DIRS})
  if(NOT IS_DIRECTORY ${d})
    continue()
  endif()
  get_filename_component(mod ${d} NAME)
  file(GLOB csrc CONFIGURE_DEPENDS ${d}/test_*.c)
  foreach(t ${csrc})
    get_filename_component(n ${t} NAME_WE)
    set(tgt ${n})
    string(REGEX REPLACE "^test_" "test_${mod}_" tgt ${n})
    add_executable(${tgt} ${t})
    target_include_directories(${tgt} PRIVATE ${CMAKE_SOURCE_DIR}/test)
    if(SMG_TSAN AND ${tgt} IN_LIST SMG_TSAN_TESTS)
      target_link_libraries(${tgt} PRIVATE secmig_core)
    else()
      target_link_libraries(${tgt} PRIVATE secmig_lib)
    endif()
    add_test(NAME ${tgt} COMMAND ${tgt})
    if(${tgt} IN_LIST SMG_TSAN_TESTS)
      set_tests_properties(${tgt} PROPERTIES LABELS tsan)
    endif()
    set_tests_properties(${tgt} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      ENVIRONMENT "SECMIG=$<TARGET_FILE:secmig>;SMG_NETTOOL=$<TARGET_FILE:smg-nettool>;SMG_SRC=${CMAKE_SOURCE_DIR};SMG_BUILD=${CMAKE_BINARY_DIR};SECMIG_CONFIG=")
  endforeach()
  file(GLOB ssrc CONFIGURE_DEPENDS ${d}/test_*.sh)
  foreach(t ${ssrc})
    get_filename_component(n ${t} NAME_WE)
    string(REGEX REPLACE "^test_" "test_${mod}_" tgt ${n})
    add_test(NAME ${tgt} COMMAND bash ${t})
    set_tests_properties(${tgt} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
      ENVIRONMENT "SECMIG=$<TARGET_FILE:secmig>;SMG_NETTOOL=$<TARGET_FILE:smg-nettool>;SMG_SRC=${CMAKE_SOURCE_DIR};SMG_BUILD=${CMAKE_BINARY_DIR};SECMIG_CONFIG=")
  endforeach()
endforeach()

# scripts/build.sh tsan builds this target only.
add_custom_target(tsan_tests DEPENDS ${SMG_TSAN_TESTS})

# Seconds the long tests take on a 2-core machine. A fresh clone has no
# ctest history, so without a COST `ctest -j 2` runs tests in name order
# and a long test that starts last sets the whole run's length; with one,
# the costliest start first and the short ones fill the other core
# (the CI budget in scripts/test.sh). The nested Xen bed goes first, beside
# the fault matrix: its guests run under TCG and take a core's worth of CPU,
# and beside CPU-bound tests instead of the matrix's mostly waiting beds it
# took 419 s instead of about 220 (a fresh-clone run, 78b5d12).
set(SMG_TEST_COSTS
  test_xen_nested 500
  test_net_net_faults 360
  test_engine_faults 100
  test_engine_migrate 80
  test_storage_engine_disk 90
  test_qemu_faults 300
  test_qemu_migrate 150
  test_pkg_deb 40)
while(SMG_TEST_COSTS)
  list(POP_FRONT SMG_TEST_COSTS name cost)
  if(TEST ${name})
    set_tests_properties(${name} PROPERTIES COST ${cost})
  endif()
endwhile()
