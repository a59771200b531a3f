# LLVM/MLIR set-up for the compiler subtree only (included after runtime/).
find_package(MLIR REQUIRED CONFIG HINTS /usr/lib/llvm-22/lib/cmake/mlir)
message(STATUS "bmsys: MLIR from ${MLIR_DIR}")
list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
set(LLVM_RUNTIME_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/bin)
set(LLVM_LIBRARY_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/lib)
set(MLIR_BINARY_DIR ${CMAKE_BINARY_DIR})
include(TableGen)
include(AddLLVM)
include(AddMLIR)
include(HandleLLVMOptions)

include_directories(${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
include_directories(${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
# LLVM_DEFINITIONS is one space-separated string ("-D_GNU_SOURCE -D__STDC_..."):
# passed as is, it becomes a single, mangled definition (the compiler then warns
# that _GLIBCXX_USE_CXX11_ABI is redefined); split it into one flag each.
separate_arguments(BMSYS_LLVM_DEFINITIONS NATIVE_COMMAND "${LLVM_DEFINITIONS}")
add_definitions(${BMSYS_LLVM_DEFINITIONS})

add_subdirectory(dialects)
add_subdirectory(passes)
add_subdirectory(frontends)
add_subdirectory(tools/compiler)
