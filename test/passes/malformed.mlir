// Malformed input: a parse error with the file and line, a non-zero exit.
// RUN: not bmsys-opt %s 2>&1 | FileCheck %s
// CHECK: malformed.mlir:6:{{[0-9]+}}: error:
func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %y = bmsys.silu %x : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32
}
