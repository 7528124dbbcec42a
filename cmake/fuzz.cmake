# fuzz/fuzz_<name>.c -> fuzz_<name>, seeded from fuzz/corpus/<name>/.
file(GLOB SMG_FUZZERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(f ${SMG_FUZZERS})
  get_filename_component(n ${f} NAME_WE)
  add_executable(${n} ${f})
  target_link_libraries(${n} PRIVATE secmig_lib)
  target_link_options(${n} PRIVATE -fsanitize=fuzzer)
endforeach()
