# Every dependency is a Debian 12 package (see scripts/setup). Each becomes a target here,
# found the way that package ships it (see shared/FACTS.md).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(HS REQUIRED IMPORTED_TARGET libhs)
find_package(CURL REQUIRED)
find_package(RapidJSON CONFIG REQUIRED)
find_package(tomlplusplus CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
# librocksdb-dev's config needs gflags, snappy, zlib, bz2, lz4 and zstd dev packages (setup).
find_package(RocksDB CONFIG REQUIRED)

# libcaf-dev 0.17 ships no CMake config and no .pc file.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(tc::caf INTERFACE IMPORTED)
target_include_directories(tc::caf INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(tc::caf INTERFACE ${CAF_IO_LIBRARY} ${CAF_CORE_LIBRARY} Threads::Threads)

# libhttp-parser-dev: header + library, no config.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(tc::http_parser INTERFACE IMPORTED)
target_include_directories(tc::http_parser INTERFACE ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(tc::http_parser INTERFACE ${HTTP_PARSER_LIBRARY})

# libhnswlib-dev: headers only. Included by actors/semantic_index.cpp alone (FACTS: a second
# including translation unit fails to link), compiled with -march=native for its SIMD kernels.
find_path(HNSWLIB_INCLUDE_DIR hnswlib/hnswlib.h REQUIRED)

# rapidjson-dev's config gives only include dirs.
add_library(tc::rapidjson INTERFACE IMPORTED)
target_include_directories(tc::rapidjson INTERFACE ${RAPIDJSON_INCLUDE_DIRS})
target_compile_definitions(tc::rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)

if(TC_TESTS)
  find_package(doctest CONFIG REQUIRED)
endif()
