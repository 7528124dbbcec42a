# fuzz/fuzz_<name>.c -> fuzz_<name>, seeded from fuzz/corpus/<name>/.
file(GLOB SMG_FUZZERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(f ${SMG_FUZZERS})
  get_filename_component(n ${f} NAME_WE)
  add_executable(${n} ${f})
  target_link_libraries(${n} PRIVATE secmig_lib)
  target_link_options(${n} PRIVATE -fsanitize=fuzzer)
endforeach()

# Seed generators that need the library (fuzz/tools/gen_dest_corpus.c).
add_executable(gen_dest_corpus ${CMAKE_SOURCE_DIR}/fuzz/tools/gen_dest_corpus.c)
target_link_libraries(gen_dest_corpus PRIVATE secmig_lib)
