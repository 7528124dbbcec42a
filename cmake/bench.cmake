# bench/<name>.c -> bench_<name>; run by hand (see bench/README.md), never by ctest.
file(GLOB SMG_BENCHES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/bench/*.c)
foreach(b ${SMG_BENCHES})
  get_filename_component(n ${b} NAME_WE)
  add_executable(bench_${n} ${b})
  target_link_libraries(bench_${n} PRIVATE secmig_lib)
endforeach()
