// RUN: bmsys-opt %s --bmsys-bound-shapes="max-batch=4 max-seq=128" | FileCheck %s
// RUN: bmsys-opt %s --bmsys-bound-shapes="max-batch=2" | FileCheck %s --check-prefix=DEFAULT

// CHECK: module attributes {bmsys.max_batch = 4 : i64, bmsys.max_positions = 64 : i64, bmsys.max_seq = 128 : i64}
// DEFAULT: module attributes {bmsys.max_batch = 2 : i64, bmsys.max_positions = 64 : i64, bmsys.max_seq = 64 : i64}
module attributes {bmsys.max_positions = 64 : i64} {
}
